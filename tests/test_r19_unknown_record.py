"""R19 is judged before the record a command names is looked for, through the real `ledger`
process, on SQLite and PostgreSQL.

An actor who may not act (never registered, deactivated, or without the role) naming a
record that does not exist was told "record not found" (exit 4) and nothing was kept: an
auditor never saw someone probing for records. Such an attempt is refused under R19 and
kept, as one on an existing record is, with the text it named in its reason; the one
refused is told the same as for an existing record. An actor who may act, naming a record
that does not exist, is still exit 4 with nothing written.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli import (
    APPRAISER_1,
    APPRAISER_2,
    ARCHIVIST,
    BORROWER,
    DIRECTOR,
    LEADER,
    LIAISON,
    WITNESS,
    event_count,
    last_event,
    one_line,
    post,
    posted_outcomes,
    run,
    setup_office,
)

MISSING = "NOPE-1"
GHOST = "ghost"  # never registered
# Every command that names a record, with valid options.
# fmt: off
COMMANDS: dict[str, tuple[str, ...]] = {
    "consult": ("--reader", BORROWER, "--purpose", "p"),
    "copy": ("--reader", BORROWER, "--pages", "1", "--purpose", "p", "--approved-by", LEADER),
    "lend": ("--to", BORROWER, "--due", "2099-01-01", "--purpose", "p", "--approved-by", LEADER),
    "return": ("--pages", "1", "--condition", "intact"),
    "relocate": ("--location", "A1-01-1-1"),
    "arrange": ("--category", "administration", "--retention", "10y", "--code", "X-1"),
    "shelve": ("--location", "A1-01-1-1"),
    "repair": ("--note", "n"),
    "report-loss": ("--pages", "1", "--note", "n"),
    "appraise": ("--decision", "destroy", "--appraiser", APPRAISER_1, "--appraiser",
                 APPRAISER_2, "--basis", "b"),
    "destroy": ("--approved-by", LEADER, "--witness", ARCHIVIST, "--witness", DIRECTOR,
                "--register", "XH-1"),
    "correct": ("--version", "1", "--reason", "r"),
}
# fmt: on
NOT_FOUND = f"error: record '{MISSING}' not found (no record has that id or archival code)"
KEPT_AS = f"; attempted on record '{MISSING}', which does not exist"


def refusal(actor: str, command: str) -> str:
    """The R19 refusal of ``actor``'s ``command`` (WITNESS deactivated, BORROWER no
    archivist, appraiser or director)."""
    if actor == GHOST:
        return f"refused (R19): actor '{GHOST}' is not registered and may not act"
    if actor == WITNESS:
        return f"refused (R19): actor {WITNESS} is deactivated and may not act"
    role = "appraiser" if command == "appraise" else "archivist or director"
    return f"refused (R19): actor {actor} may not {command}: it needs the role {role}"


@pytest.fixture
def office(db_url: str) -> str:
    setup_office(db_url)
    done = run(db_url, "actor", "deactivate", WITNESS, "--reason", "离职", actor=DIRECTOR)
    assert done.code == 0, done
    return db_url


@pytest.mark.parametrize("actor", [GHOST, WITNESS, BORROWER])
def test_an_attempt_on_a_missing_record_by_an_actor_who_may_not_act_is_kept(
    office: str, actor: str
) -> None:
    for command, options in COMMANDS.items():
        before = event_count(office)
        done = run(office, command, MISSING, *options, actor=actor)
        assert (done.code, done.stdout) == (3, ""), (command, done)
        assert one_line(done.stderr) == refusal(actor, command), (command, done)
        assert event_count(office) == before + 1, command
        topic, body = last_event(office)
        assert topic == "ledger/Refusal/AttemptRefused"
        assert (body["rule"], body["actor"], body["action"]) == ("R19", actor, command)
        assert (body["record_id"], body["code"], body["secrecy"]) == (None, None, None)
        told = refusal(actor, command).removeprefix("refused (R19): ")
        assert body["reason"] == told + KEPT_AS


def test_the_one_refused_is_told_the_same_whether_the_record_exists_or_not(office: str) -> None:
    """No answer tells an actor who may not act which records exist."""
    record = run(office, "receive", "--title", "t", "--department", "d", "--year", "2020",
                 "--carrier", "paper", "--pages", "3", "--secrecy", "public",
                 "--transferred-by", LIAISON, actor=ARCHIVIST)  # fmt: skip
    assert record.code == 0, record
    for actor in (GHOST, WITNESS, BORROWER):
        there = run(office, "relocate", record.stdout.strip(), "--location", "A1-01-1-1",
                    actor=actor)  # fmt: skip
        missing = run(office, "relocate", MISSING, "--location", "A1-01-1-1", actor=actor)
        told = (3, refusal(actor, "relocate") + "\n")
        assert (there.code, there.stderr) == (missing.code, missing.stderr) == told


def test_the_audit_lists_the_attempt_once_with_the_record_named(office: str) -> None:
    done = run(office, "consult", MISSING, *COMMANDS["consult"], actor=GHOST)
    assert done.code == 3, done
    for args in (("--refused",), ("--actor", GHOST)):
        listed = run(office, "audit", *args, "--json", actor=ARCHIVIST)
        assert listed.code == 0, listed
        rows: list[dict[str, Any]] = listed.json()
        assert len(rows) == 1, listed
        row = rows[0]
        assert (row["action"], row["outcome"], row["rule"], row["actor"]) == (
            "consult", "refused", "R19", GHOST,
        )  # fmt: skip
        assert (row["record"], row["reader"], row["purpose"]) == (None, BORROWER, "p")
        assert row["detail"] == f"actor '{GHOST}' is not registered and may not act" + KEPT_AS


def test_an_actor_who_may_act_naming_a_missing_record_is_not_found(office: str) -> None:
    before = event_count(office)
    for command, options in COMMANDS.items():
        actor = APPRAISER_1 if command == "appraise" else ARCHIVIST
        done = run(office, command, MISSING, *options, actor=actor)
        assert (done.code, done.stdout) == (4, ""), (command, done)
        assert one_line(done.stderr) == NOT_FOUND, (command, done)
    assert event_count(office) == before


@pytest.mark.parametrize("jobs", [("--jobs", "1"), ("--jobs", "2", "--chunk-size", "1")])
def test_a_bulk_file_keeps_each_attempt_once(office: str, jobs: tuple[str, ...]) -> None:
    """Lines by actors who may not act, on a record that does not exist, are refused and
    kept, their ids taken up: a re-run of the file names them as refused already and
    keeps nothing more. A line by the archivist on it is invalid, as before."""
    lines: list[dict[str, Any]] = [
        {"command": "consult", "id": "p-1", "actor": GHOST, "record": MISSING,
         "reader": BORROWER, "purpose": "p"},
        {"command": "relocate", "id": "p-2", "actor": WITNESS, "record": MISSING,
         "location": "A1-01-1-1"},
        {"command": "destroy", "id": "p-3", "actor": BORROWER, "record": MISSING,
         "approved_by": LEADER, "witness": [ARCHIVIST, DIRECTOR], "register": "XH-1"},
        {"command": "relocate", "id": "p-4", "actor": ARCHIVIST, "record": MISSING,
         "location": "A1-01-1-1"},
    ]  # fmt: skip
    before = event_count(office)
    first = post(office, lines, *jobs)
    assert first.code == 2, first  # a malformed line: 2 over 3
    assert first.stdout == "posted 0, skipped 0, refused 3, invalid 1 (3 events)\n", first
    assert first.stderr.splitlines() == [
        f"line 1: {refusal(GHOST, 'consult')}",
        f"line 2: {refusal(WITNESS, 'relocate')}",
        f"line 3: {refusal(BORROWER, 'destroy')}",
        f"line 4: {NOT_FOUND}",
    ], first
    assert event_count(office) == before + 3
    outcomes = posted_outcomes(office)
    assert [outcomes.get(f"p-{n}") for n in (1, 2, 3, 4)] == ["refused R19"] * 3 + [None]

    again = post(office, lines, *jobs)
    assert again.stdout == "posted 0, skipped 0, refused 3, invalid 1 (0 events)\n", again
    already = "refused (R19) already: its id was taken by a refused attempt (see ledger audit"
    problems = again.stderr.splitlines()
    assert [p.startswith(f"line {n}: {already}") for n, p in enumerate(problems[:3], 1)] == [
        True
    ] * 3, again
    assert problems[3:] == [f"line 4: {NOT_FOUND}"], again
    assert event_count(office) == before + 3
    listed = run(office, "audit", "--refused", "--json", actor=ARCHIVIST)
    assert sorted(r["actor"] for r in listed.json()) == sorted([GHOST, WITNESS, BORROWER])
