"""The log's positions follow the lines that made its events: a chunk of many aggregates
is written in the order of its lines, not grouped by aggregate, so a reader of the log in
position order sees an actor's new clearance before the consultation it allowed."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from aggregates import base
from aggregates.values import Retention
from ledger.application import open_ledger
from ledger.batch import Batch
from tests.cli import BACKENDS, DIRECTOR, fresh_store, generate, jsonl, run, setup_office
from tests.test_bulk_parallel import tricky_lines
from tests.test_rules import ARCHIVIST, later, received


def log(db_url: str) -> list[tuple[str, dict[str, Any]]]:
    """(topic, body) of every stored event, in position order."""
    if db_url.startswith("sqlite:"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            rows = conn.execute("SELECT topic, state FROM stored_events ORDER BY rowid").fetchall()
    else:
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT topic, state FROM ledger_events ORDER BY notification_id"
            ).fetchall()
    return [(str(topic), json.loads(bytes(state))["body"]) for topic, state in rows]


@pytest.mark.parametrize("jobs", [("--jobs", "1"), ()], ids=["jobs 1", "workers"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_logs_positions_follow_the_lines(
    backend: str, jobs: tuple[str, ...], tmp_path: Path
) -> None:
    generated = generate(tmp_path / "gen.jsonl", 12)
    path = tmp_path / "file.jsonl"
    # t-3 consults a secret record and is refused (R6); t-9 raises the reader's
    # clearance; t-10 consults again and is allowed.
    path.write_text(generated.path.read_text() + jsonl(tricky_lines(generated.path)))
    with fresh_store(backend, tmp_path) as url:
        setup_office(url)
        before = len(log(url))
        done = run(url, "post", str(path), *jobs, actor=DIRECTOR)
        assert done.code == 2, done  # a malformed line (t-8), refused ones, the rest posted
        events = log(url)[before:]

    topics = [topic for topic, _ in events]
    raised = topics.index("ledger/Actor/ClearanceChanged")
    visits = [
        n
        for n, (topic, body) in enumerate(events)
        if body.get("reader") == "g.visitor"
        and topic in ("ledger/Record/Consulted", "ledger/Refusal/AttemptRefused")
    ]
    refused, allowed = visits[-2:]  # t-3's refused attempt, t-10's consultation
    assert topics[refused] == "ledger/Refusal/AttemptRefused"
    assert topics[allowed] == "ledger/Record/Consulted"
    assert refused < raised < allowed, (refused, raised, allowed)
    if jobs:  # one process: every event in the order it was made, line by line
        recorded = [body["timestamp"] for _, body in events]
        assert recorded == sorted(recorded), "positions do not follow recorded times"
        assert len(set(recorded)) == len(recorded)


class TwoHoursAhead(datetime):
    """The clock of a host two hours ahead (or of this one before it was stepped back)."""

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.now(tz) + timedelta(hours=2)


def test_a_chunk_is_written_in_the_order_its_events_were_made_whatever_their_times(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record last recorded two hours ahead of this clock (by a host whose clock ran
    ahead): its next event is recorded a microsecond after that, later than the events
    made after it here. A chunk is still written in the order its events were made: a
    sort by recorded time put the arrangement after the next line's receipt."""
    monkeypatch.setattr(base, "datetime", TwoHoursAhead)
    ahead = received()
    monkeypatch.undo()
    ahead.collect_events()  # stored, as if by that host
    ledger = open_ledger(f"sqlite:///{tmp_path}/ledger.db", must_exist=False)
    try:
        ahead.arrange(actor=ARCHIVIST, occurred_at=later(ahead), category="administration",
                      retention=Retention.YEARS_10, code="Z001-WS·2000-D10-BGS-0001")  # fmt: skip
        other = received()  # the next line's record
        batch = Batch(ledger)
        for aggregate in (other, ahead):  # the batch knows them in another order
            batch.add(aggregate)
        events = batch.collect()[1]
    finally:
        ledger.close()
    assert [(e.originator_id, e.originator_version) for e in events] == [
        (ahead.id, 2),
        (other.id, 1),
    ]
    assert events[0].timestamp > events[1].timestamp  # recorded ahead of the clock
