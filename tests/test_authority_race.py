"""R6 and R19 under concurrency: a command checked against an actor who changes before
it is saved.

A command is checked against the actors it reads (the acting actor's roles, a reader's
clearance), then saved. Another writer revokes the role, or lowers the clearance, in
between: the save must not go through on what the check read. Before the ledger checked
at the save that the actors it read are unchanged, the command's events were stored after
the revocation, and the log showed an archivist acting after losing the role. The
interleavings are made deterministic, on SQLite and PostgreSQL; each fails without the
check.
"""

from __future__ import annotations

from itertools import count
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from aggregates.errors import RuleViolation
from ledger import requests as rq
from ledger.application import Ledger, open_ledger
from ledger.batch import Batch
from ledger.bulk import BulkPoster
from ledger.handlers import handle
from tests.cli import ARCHIVIST, BORROWER, DIRECTOR, LEADER, LIAISON, post, run, setup_office


def received(db_url: str, secrecy: str = "internal") -> str:
    """A record received and arranged; its archival code."""
    code = f"Z01-WS·2025-Y-{secrecy}-0001"
    record = "5e0c1c43-8d1d-4f7e-9a31-0c1f3e6d2b01"
    receipt = {"command": "receive", "id": "r", "record": record, "title": "会议纪要",
               "department": "办公室", "year": 2025, "carrier": "paper", "pages": 4,
               "secrecy": secrecy, "transferred_by": LIAISON}  # fmt: skip
    arrangement = {"command": "arrange", "id": "a", "record": record, "code": code,
                   "category": "administration", "retention": "permanent"}  # fmt: skip
    shelving = {"command": "shelve", "id": "s", "record": code, "location": "A1-01-1-1"}
    done = post(db_url, [receipt, arrangement, shelving], actor=ARCHIVIST)
    assert done.code == 0, done
    return code


def checked(ledger: Ledger, request: rq.Request, actor: str) -> Batch:
    """A command checked against the store as it is now, not saved yet."""
    batch = Batch(ledger)
    handle(request, batch, actor)
    return batch


def race(db_url: str, change: tuple[rq.Request, str], command: tuple[rq.Request, str]) -> Any:
    """``command`` is checked, then ``change`` (of an actor it read) is saved, then
    ``command``'s save must fail; run again as the ledger runs a command, it is checked
    against the changed actor: its result, or its refusal."""
    mine, theirs = open_ledger(db_url), open_ledger(db_url)
    try:
        batch = checked(mine, *command)
        theirs.execute(*change)
        with pytest.raises(IntegrityError):
            batch.save()
        try:
            return mine.execute(*command)
        except RuleViolation as refused:
            return refused
    finally:
        mine.close()
        theirs.close()


def relocate(code: str) -> rq.Relocate:
    return rq.Relocate(record=code, location="A1-03-2-4")


def test_a_role_revoked_while_a_command_is_checked_stops_it(db_url: str) -> None:
    setup_office(db_url)
    code = received(db_url)
    granted = run(db_url, "actor", "grant", ARCHIVIST, "--role", "borrower", actor=DIRECTOR)
    assert granted.code == 0, granted
    revoke = rq.RevokeRoles(actor_id=ARCHIVIST, role=["archivist"])
    refused = race(db_url, (revoke, DIRECTOR), (relocate(code), ARCHIVIST))
    assert isinstance(refused, RuleViolation) and refused.rule == "R19", refused
    shown = run(db_url, "custody", code, "--json")
    assert shown.code == 0, shown
    assert [e["event"] for e in shown.json()["events"]] == ["received", "arranged", "shelved"]
    refusals = run(db_url, "audit", "--refused", "--json", actor=DIRECTOR)
    assert refusals.code == 0, refusals
    assert [(r["actor"], r["rule"]) for r in refusals.json()] == [(ARCHIVIST, "R19")]
    assert run(db_url, "verify").code == 0


def test_a_clearance_lowered_while_a_consultation_is_checked_stops_it(db_url: str) -> None:
    setup_office(db_url)
    code = received(db_url, secrecy="secret")
    lower = rq.ChangeClearance(actor_id=BORROWER, clearance="internal")
    consult = rq.Consult(record=code, reader=BORROWER, purpose="查考", approved_by=LEADER)
    refused = race(db_url, (lower, DIRECTOR), (consult, ARCHIVIST))
    assert isinstance(refused, RuleViolation) and refused.rule == "R6", refused
    used = run(db_url, "audit", "--json", actor=DIRECTOR)
    assert used.code == 0, used
    assert [(u["reader"], u["outcome"]) for u in used.json() if u.get("reader")] == [
        (BORROWER, "refused")
    ], used.json()


def test_a_change_of_an_actor_the_command_did_not_read_does_not_stop_it(db_url: str) -> None:
    setup_office(db_url)
    code = received(db_url)
    lower = rq.ChangeClearance(actor_id=BORROWER, clearance="internal")
    done = race_without_conflict(db_url, (lower, DIRECTOR), (relocate(code), ARCHIVIST))
    assert done.code == 0, done


def race_without_conflict(
    db_url: str, change: tuple[rq.Request, str], command: tuple[rq.Request, str]
) -> Any:
    mine, theirs = open_ledger(db_url), open_ledger(db_url)
    try:
        batch = checked(mine, *command)
        theirs.execute(*change)
        batch.save()
    finally:
        mine.close()
        theirs.close()
    return run(db_url, "verify")


def test_a_bulk_chunk_checked_before_a_revocation_is_checked_again(db_url: str) -> None:
    """One process, a chunk of relocations by the archivist: the revocation commits after
    the chunk was checked, before it is written. The chunk is checked again: every line
    is refused under R19, none is posted."""
    setup_office(db_url)
    code = received(db_url)
    lines = [
        (n, f'{{"command": "relocate", "id": "m{n}", "record": "{code}", '
            f'"location": "A1-03-2-{n}"}}'.encode())
        for n in (1, 2, 3)
    ]  # fmt: skip
    calls = count()

    def revoke_once(problems: Any) -> None:
        if next(calls) == 0:
            other = open_ledger(db_url)
            try:
                other.execute(rq.DeactivateActor(actor_id=ARCHIVIST, reason="调离"), DIRECTOR)
            finally:
                other.close()

    poster = BulkPoster(open_ledger(db_url), ARCHIVIST, before_commit=revoke_once)
    try:
        poster.post_numbered([lines])
    finally:
        poster.ledger.close()
    summary = poster.summary
    assert (summary.posted, summary.refused) == (0, 3), summary
    assert {p.message.split(":")[0] for p in summary.problems} == {"refused (R19)"}, summary
    assert next(calls) == 2  # checked twice
    shown = run(db_url, "custody", code, "--json")
    assert [e["event"] for e in shown.json()["events"]] == ["received", "arranged", "shelved"]
    assert run(db_url, "verify").code == 0
