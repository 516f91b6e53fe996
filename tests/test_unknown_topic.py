"""A stored event whose topic column was rewritten to one the ledger never writes (tampering,
or corruption): no command that reads the log may pass over it. `show`, `custody` and
`verify` always refused it (tests/test_unreadable.py); a rebuild and a check skipped it as
an event of no interest (on SQLite the page query asks only for the topics the projections
read, on PostgreSQL the decoder left out every other topic), so the rebuilt catalog
silently lost the record and the check passed; a seal sealed the log with it; a catch-up
(`projections follow`, a query's) stepped over it. Each now exits 6 with the one line of
an event that cannot be read, naming its position, and writes nothing."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from aggregates.errors import IntegrityFailure
from ledger.application import Ledger
from ledger.config import store_from_url
from projections.runner import PROJECTIONS, Runner, open_projections
from tests.cli import TIMEOUT, one_line, run, start
from tests.tamper import RawStore, Scenario

# (value as SQL writes it, as the error line names it, whether PostgreSQL can store it)
TOPICS = [
    ("'ledger/Record/Bogus'", "'ledger/Record/Bogus'", True),
    ("NULL", "NULL", True),
    # A known topic's bytes stored as a blob: SQLite compares it with no text as equal.
    ("CAST('ledger/Record/Received' AS BLOB)", f"x'{b'ledger/Record/Received'.hex()}'", False),
]
IDS = ["unknown name", "NULL", "a blob"]


def unreadable_line(position: int, shown: str) -> str:
    return (
        f"error: a stored event could not be read (position {position}: unknown topic "
        f"{shown}): its bytes were changed, or it was written with another key; "
        "`ledger verify` names every such event"
    )


def set_topic(raw: RawStore, position: int, value: str) -> None:
    raw.tamper(f"UPDATE {raw.table} SET topic = {value} WHERE {raw.position} = {position}")


def tables(raw: RawStore) -> set[str]:
    if raw.sqlite:
        found = raw.query("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        found = raw.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    return {str(row[0]) for row in found}


def tracked(raw: RawStore) -> dict[str, int | None]:
    """Each projection's stored position (None: never built)."""
    found: dict[str, int | None] = {}
    for name in PROJECTIONS:
        try:
            rows = raw.query(f"SELECT notification_id FROM {name}_tracking")
        except (sqlite3.Error, psycopg.Error):
            rows = []
        found[name] = int(rows[0][0]) if rows else None
    return found


def refused(done: Any, line: str) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done
    assert (done.code, done.stdout) == (6, ""), done
    assert one_line(done.stderr) == line, done


def tampered(
    golden: tuple[Scenario, Callable[[], str]], value: str, on_pg: bool, *, built: bool = True
) -> tuple[Scenario, str, RawStore, int]:
    """A fresh copy (its projections rebuilt first, if ``built``) with record C's receipt,
    after seal 1, stored under the topic ``value``."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    if not raw.sqlite and not on_pg:
        pytest.skip("PostgreSQL's column types refuse such values")
    if built:
        assert run(url, "projections", "rebuild", "--jobs", "1").code == 0
    position = raw.row(scenario.c, 1)[0]
    set_topic(raw, position, value)
    return scenario, url, raw, position


@pytest.mark.parametrize(
    ("value", "shown", "on_pg", "jobs"),
    [(*TOPICS[0], "1"), (*TOPICS[0], "2"), (*TOPICS[1], "2"), (*TOPICS[2], "1")],
    ids=[f"{IDS[0]}-1", f"{IDS[0]}-2", f"{IDS[1]}-2", f"{IDS[2]}-1"],
)
def test_rebuild_and_check_refuse_an_event_of_an_unknown_topic(
    golden: tuple[Scenario, Callable[[], str]], value: str, shown: str, on_pg: bool, jobs: str
) -> None:
    """Both exited 0: the rebuild swapped in a catalog without record C, and the check
    then found it equal to a rebuild. Now: exit 6, the live projections as they were, no
    scratch table made."""
    scenario, url, raw, position = tampered(golden, value, on_pg)
    catalog = run(url, "catalog", "--no-catch-up", "--json")
    assert str(scenario.c) in {row["id"] for row in catalog.json()}
    before = tables(raw), tracked(raw)
    for command in ("rebuild", "check"):
        refused(run(url, "projections", command, "--jobs", jobs), unreadable_line(position, shown))
        assert (tables(raw), tracked(raw)) == before, command
    assert run(url, "catalog", "--no-catch-up", "--json").stdout == catalog.stdout
    # Each projection alone too, whether or not it reads receipts.
    for name in ("destruction", "loans"):
        done = run(url, "projections", "rebuild", name, "--jobs", jobs)
        refused(done, unreadable_line(position, shown))


@pytest.mark.parametrize("where", ["after the last seal", "in a sealed segment"])
@pytest.mark.parametrize(("value", "shown", "on_pg"), TOPICS, ids=IDS)
def test_seal_refuses_a_log_with_an_event_of_an_unknown_topic(
    golden: tuple[Scenario, Callable[[], str]], value: str, shown: str, on_pg: bool, where: str
) -> None:
    """`ledger seal` sealed such a log (exit 0); in a sealed segment the digest, which covers
    the events' hashes and not their topic column, still matched. Now it is refused as a
    row with a column the ledger never writes, and nothing is sealed."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    if not raw.sqlite and not on_pg:
        pytest.skip("PostgreSQL's column types refuse such values")
    record, version = (scenario.c, 1) if where == "after the last seal" else (scenario.a, 3)
    position = raw.row(record, version)[0]
    assert (position > scenario.seal_position) == (where == "after the last seal")
    set_topic(raw, position, value)
    rows = raw.snapshot()
    done = run(url, "seal", actor="audit")
    refused(
        done,
        f"error: the event at position {position} has a version, originator or topic the "
        "ledger never writes; run `ledger verify`; nothing was sealed",
    )
    assert raw.snapshot() == rows
    assert run(url, "verify").code == 6


@pytest.mark.parametrize(("value", "shown", "on_pg"), TOPICS, ids=IDS)
def test_a_catch_up_stops_before_an_event_of_an_unknown_topic(
    golden: tuple[Scenario, Callable[[], str]], value: str, shown: str, on_pg: bool
) -> None:
    """A query's catch-up and `projections follow` moved every projection past the event
    (exit 0, record C missing from the catalog). Now they exit 6 and no projection's
    position passes it; the pages before it are applied."""
    _, url, raw, position = tampered(golden, value, on_pg, built=False)
    refused(run(url, "catalog"), unreadable_line(position, shown))
    follower = start(url, "projections", "follow", "--interval", "0.05")
    try:
        _, err = follower.communicate(timeout=TIMEOUT)
    finally:
        if follower.poll() is None:
            follower.send_signal(signal.SIGTERM)
            follower.communicate(timeout=TIMEOUT)
    assert follower.returncode == 6, err
    assert err.splitlines()[-1] == unreadable_line(position, shown), err
    assert all(p is None or p < position for p in tracked(raw).values()), tracked(raw)
    # In pages of 2 events: the runner applies the pages before the event, then stops.
    ledger = Ledger(store_from_url(url))
    try:
        projections = open_projections(ledger, list(PROJECTIONS))
        with pytest.raises(IntegrityFailure, match=f"position {position}: unknown topic"):
            Runner(ledger, projections, page_size=2).run()
        reached = set(tracked(raw).values())
        assert len(reached) == 1 and 0 < (reached.pop() or 0) < position, tracked(raw)
    finally:
        ledger.close()
