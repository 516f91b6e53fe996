"""Who approves a use (R5-R7): a leader of the office (经单位领导批准), never one of an
external unit, whose own staff it would let in. Through the real `ledger` process on
SQLite and PostgreSQL; a refusal is kept as a refused attempt (R18) and changes nothing
on the record."""

from __future__ import annotations

import pytest

from tests.cli import (
    ARCHIVIST,
    BORROWER,
    DIRECTOR,
    EXTERNAL,
    LEADER,
    LIAISON,
    event_count,
    last_event,
    one_line,
    post,
    run,
    setup_office,
)

CONFIDENTIAL = "R-USE-0001"
INTERNAL = "R-USE-0002"
LEND = ("lend", INTERNAL, "--due", "2099-01-01")
OUTSIDER = "ext.lead"  # a leader of the external unit EXTERNAL comes from


@pytest.fixture
def office(db_url: str) -> str:
    setup_office(db_url)
    leader = ("--name", "设计院院长", "--role", "leader", "--clearance", "top-secret")
    external = ("--external", "--unit", "市设计院")
    done = run(db_url, "actor", "add", OUTSIDER, *leader, *external, actor=DIRECTOR)
    assert done.code == 0, done
    steps: list[dict[str, object]] = []
    for n, (code, secrecy) in enumerate([(CONFIDENTIAL, "confidential"), (INTERNAL, "internal")]):
        record = f"00000000-0000-4000-8000-0000000000f{n}"
        steps += [
            {"command": "receive", "record": record, "title": "文件", "department": "办公室",
             "year": 2019, "carrier": "paper", "pages": 10, "secrecy": secrecy,
             "transferred_by": LIAISON},
            {"command": "arrange", "record": record, "code": code,
             "category": "administration", "retention": "30y"},
            {"command": "shelve", "record": code, "location": "A1-01-1-1"},
        ]  # fmt: skip
    lines = [{"id": f"use-{n}", "actor": ARCHIVIST, **step} for n, step in enumerate(steps)]
    assert post(db_url, lines).code == 0
    return db_url


@pytest.mark.parametrize(
    ("args", "rule"),
    [
        (("consult", CONFIDENTIAL, "--reader", BORROWER), "R6"),
        (("copy", INTERNAL, "--reader", BORROWER, "--pages", "1"), "R5"),
        ((*LEND, "--to", EXTERNAL, "--letter", "设计院函〔2024〕3号"), "R7"),
    ],
    ids=["consult", "copy", "lend"],
)
def test_a_leader_of_an_external_unit_approves_no_use(
    office: str, args: tuple[str, ...], rule: str
) -> None:
    """It was taken as any leader's approval: an external unit's leader let its own
    staff borrow the office's records."""
    before = event_count(office)
    done = run(office, *args, "--purpose", "p", "--approved-by", OUTSIDER, actor=ARCHIVIST)
    assert done.code == 3, done
    assert one_line(done.stderr) == (
        f"refused ({rule}): {OUTSIDER} is of an external unit (市设计院) and cannot approve a "
        "use of the office's records"
    )
    assert done.stdout == ""
    assert event_count(office) == before + 1  # the refused attempt alone
    topic, body = last_event(office)
    assert (topic, body["rule"], body["approved_by"]) == (
        "ledger/Refusal/AttemptRefused",
        rule,
        OUTSIDER,
    )
    # The office's own leader approves it.
    done = run(office, *args, "--purpose", "p", "--approved-by", LEADER, actor=ARCHIVIST)
    assert done.code == 0, done
