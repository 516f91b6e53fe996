"""The audit trail's order depends on the events alone: rows at one time are ordered by
record, version and what they show, not by log position, which depends on the order
writers committed in (posting workers commit different records' lines in any order).
On SQLite and PostgreSQL, through the real `ledger` process."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent

from ledger.application import open_ledger
from tests.cli import (
    ARCHIVIST,
    BORROWER,
    EXTERNAL,
    LEADER,
    LIAISON,
    WITNESS,
    post,
    run,
    setup_office,
)
from tests.pg import fresh_database

R1 = "00000000-0000-4000-8000-0000000a0001"
R2 = "00000000-0000-4000-8000-0000000a0002"
AT = "2016-03-01T09:00:00+00:00"  # the one time of every use and attempt
AT_EAST = "2016-03-01T17:00:00+08:00"  # ... written with another offset
# At that time: no record first (by what they show, the time as written last), then by
# record, each record's uses in their order on it, then its refused attempts (likewise).
ORDER = [
    (None, "receive", "ghost"),
    (None, "receive", "ghost"),  # (at AT_EAST)
    (None, "receive", "intruder"),
    (R1, "consulted", ARCHIVIST),
    (R1, "copied", ARCHIVIST),
    (R1, "consult", ARCHIVIST),
    (R2, "consulted", ARCHIVIST),
    (R2, "lent", ARCHIVIST),
    (R2, "returned", ARCHIVIST),
    (R2, "copy", ARCHIVIST),
    (R2, "destroy", ARCHIVIST),
]


def lines() -> list[dict[str, Any]]:
    """Two records, then at one time: uses of both, refused attempts on both and on
    none (receipts by unregistered actors)."""
    found: list[dict[str, Any]] = []

    def add(command: str, at: str = AT, actor: str = ARCHIVIST, **fields: Any) -> None:
        found.append({"command": command, "id": f"o{len(found)}", "actor": actor,
                      "occurred_at": at, **fields})  # fmt: skip

    for record, code in ((R1, "O-1"), (R2, "O-2")):
        add("receive", "2016-01-04T09:00:00+00:00", record=record, title="文件",
            department="办公室", year=2015, carrier="paper", pages=10, secrecy="public",
            transferred_by=LIAISON)  # fmt: skip
        add("arrange", "2016-01-05T09:00:00+00:00", record=record, code=code,
            category="administration", retention="30y")  # fmt: skip
        add("shelve", "2016-01-06T09:00:00+00:00", record=code, location="A1-01-1-1")
    receipt = {"title": "t", "department": "d", "year": 2015, "carrier": "paper",
               "pages": 1, "secrecy": "public", "transferred_by": LIAISON}  # fmt: skip
    add("consult", record="O-1", reader=BORROWER, purpose="查阅")
    add("receive", actor="ghost", **receipt)  # refused (R19), on no record
    add("consult", record="O-2", reader=BORROWER, purpose="查阅")
    add("consult", record="O-1", reader=EXTERNAL, purpose="p")  # refused (R7)
    add("copy", record="O-1", reader=BORROWER, pages=1, purpose="p", approved_by=LEADER)
    add("copy", record="O-2", reader=BORROWER, pages=1, purpose="p", approved_by=ARCHIVIST)
    add("destroy", record="O-2", approved_by=LEADER, witness=[WITNESS, LEADER],
        register="XH-1")  # refused (R12)  # fmt: skip
    add("lend", record="O-2", to=BORROWER, due="2016-04-01", purpose="借阅", approved_by=LEADER)
    add("receive", actor="intruder", **receipt)  # refused (R19), on no record
    add("return", record="O-2", pages=10, condition="intact")
    add("receive", at=AT_EAST, actor="ghost", **receipt)  # refused (R19): differs by offset
    return found


@contextmanager
def second_store(db_url: str, folder: Path) -> Iterator[str]:
    if db_url.startswith("sqlite:"):
        yield f"sqlite:///{folder}/second.db"
        return
    with fresh_database() as url:
        yield url


def copy_in_another_order(source: str, target: str) -> None:
    """Every event of ``source`` into ``target``, each aggregate's in its order, the
    aggregates in the reverse order of their first events, one transaction each."""
    mine, theirs = open_ledger(source), open_ledger(target)
    events = mine.recorder.select_notifications(1, 100_000)
    by_aggregate: dict[UUID, list[StoredEvent]] = {}
    for n in events:
        stored = StoredEvent(n.originator_id, n.originator_version, n.topic, n.state)
        by_aggregate.setdefault(n.originator_id, []).append(stored)
    for group in reversed(list(by_aggregate.values())):
        theirs.recorder.insert_events(group)


def audit(db_url: str, form: str) -> str:
    done = run(db_url, "audit", *([f"--{form}"] if form != "table" else []))
    assert done.code == 0, done
    return done.stdout


def without_position(form: str, text: str) -> list[Any]:
    if form == "json":
        rows = run_json(text)
        return [{k: v for k, v in row.items() if k != "position"} for row in rows]
    table = list(csv.reader(io.StringIO(text)))
    at = table[0].index("position")
    return [row[:at] + row[at + 1 :] for row in table]


def run_json(text: str) -> list[dict[str, Any]]:
    import json

    rows: list[dict[str, Any]] = json.loads(text)
    return rows


def test_the_same_events_in_another_commit_order_export_the_same_audit(
    db_url: str, tmp_path: Path
) -> None:
    setup_office(db_url)
    done = post(db_url, lines(), "--jobs", "1")
    assert done.code == 3, done  # the refused attempts
    with second_store(db_url, tmp_path) as other:
        assert run(other, "init").code == 0
        copy_in_another_order(db_url, other)
        first, second = (run_json(audit(url, "json")) for url in (db_url, other))
        # The log positions differ, and so does the log's order of the rows.
        by_log = [[_shown(r) for r in sorted(rows, key=lambda r: r["position"])]
                  for rows in (first, second)]  # fmt: skip
        assert sorted(by_log[0], key=str) == sorted(by_log[1], key=str)
        assert by_log[0] != by_log[1]
        # Every byte but the positions is the same, in CSV and JSON; the table has none.
        for form in ("json", "csv"):
            mine, theirs = (audit(url, form) for url in (db_url, other))
            assert without_position(form, mine) == without_position(form, theirs)
        assert audit(db_url, "table") == audit(other, "table")
    assert [r["occurred_at"] for r in first] == [AT, AT_EAST] + [AT] * (len(ORDER) - 2)
    assert [_shown(r) for r in first] == ORDER


def _shown(row: dict[str, Any]) -> tuple[str | None, str, str]:
    return (row["record"], row["action"], row["actor"])


def _query(db_url: str, sql: str) -> None:
    if db_url.startswith("sqlite:"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            conn.execute(sql)
        return
    with psycopg.connect(db_url) as conn:
        conn.execute(sql)


def test_an_audit_table_made_before_versions_gets_the_column(db_url: str) -> None:
    """A store whose audit table has no version column (made before it) gets the column
    at its next query: earlier rows without a version until `ledger projections rebuild
    audit`, which `projections check` asks for."""
    setup_office(db_url)
    assert post(db_url, lines()[:7], "--jobs", "1").code == 0  # one consultation
    assert run(db_url, "audit").code == 0
    _query(db_url, "ALTER TABLE audit DROP COLUMN version")  # as made before
    assert post(db_url, lines()[7:], "--jobs", "1").code == 3
    done = run(db_url, "audit", "--json")
    assert done.code == 0, done
    assert len(done.json()) == len(ORDER)
    check = run(db_url, "projections", "check", "audit")
    assert check.code == 6, check
    assert run(db_url, "projections", "rebuild", "audit").code == 0
    assert run(db_url, "projections", "check", "audit").code == 0
    assert [_shown(r) for r in run_json(audit(db_url, "json"))] == ORDER
