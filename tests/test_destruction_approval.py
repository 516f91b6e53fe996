"""A destruction approved by a leader not cleared for the record is refused under R12,
through the real `ledger` process, on SQLite and PostgreSQL.

The approval of a destruction (R12) comes from a leader whose clearance covers the record;
one that did not was refused naming R6, the rule of consulting, copying and lending, and
its refused attempt was kept under R6, so `audit --refused` listed an improper destruction
as an improper use.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import (
    APPRAISER_1,
    APPRAISER_2,
    ARCHIVIST,
    BACKENDS,
    DIRECTOR,
    LIAISON,
    WITNESS,
    event_count,
    fresh_store,
    last_event,
    one_line,
    post,
    run,
    setup_office,
)

RECORD = "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e"
CODE = "Z01-WS·2000-D10-BGS-0001"
LOW_LEADER = "leader.low"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_destruction_approved_by_a_leader_not_cleared_is_refused_under_r12(
    backend: str, tmp_path: Path
) -> None:
    with fresh_store(backend, tmp_path) as url:
        setup_office(url)
        added = run(url, "actor", "add", LOW_LEADER, "--name", "低密级领导", "--role", "leader",
                    "--clearance", "internal", actor=DIRECTOR)  # fmt: skip
        assert added.code == 0, added
        at = {"record": RECORD}
        lines = [
            {"command": "receive", "id": "r", "title": "t", "department": "办公室",
             "year": 2000, "carrier": "paper", "pages": 3, "secrecy": "confidential",
             "transferred_by": LIAISON, "occurred_at": "2001-02-01T09:00:00+08:00", **at},
            {"command": "arrange", "id": "a", "category": "administration", "retention": "10y",
             "code": CODE, "occurred_at": "2001-02-02T09:00:00+08:00", **at},
            {"command": "shelve", "id": "s", "location": "A1-01-1-1",
             "occurred_at": "2001-02-03T09:00:00+08:00", **at},
            {"command": "appraise", "id": "p", "actor": APPRAISER_1, "decision": "destroy",
             "appraiser": [APPRAISER_1, APPRAISER_2], "basis": "期满",
             "occurred_at": "2012-01-05T09:00:00+08:00", **at},
        ]  # fmt: skip
        done = post(url, lines, actor=ARCHIVIST)
        assert done.code == 0, done
        before = event_count(url)

        done = run(url, "destroy", CODE, "--approved-by", LOW_LEADER, "--witness", WITNESS,
                   "--witness", DIRECTOR, "--register", "XH-2012-001", actor=ARCHIVIST)  # fmt: skip
        assert (done.code, done.stdout) == (3, ""), done
        assert one_line(done.stderr) == (
            f"refused (R12): approver {LOW_LEADER} (clearance internal) is not cleared for "
            f"confidential record {CODE}"
        ), done
        assert event_count(url) == before + 1  # the refused attempt, once
        topic, body = last_event(url)
        assert topic == "ledger/Refusal/AttemptRefused"
        assert (body["action"], body["rule"], body["approved_by"]) == (
            "destroy",
            "R12",
            LOW_LEADER,
        )
        shown = run(url, "show", CODE, "--json")
        assert shown.code == 0 and '"status": "shelved"' in shown.stdout, shown
