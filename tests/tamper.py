"""Tampering with a store the way an intruder with database access would: raw SQL on the
event table, bypassing the ledger (its append-only triggers disabled first, as the owner or
a superuser can), on SQLite and on PostgreSQL.

``build_scenario`` writes a small archive through the application itself (in-process, for
speed): actors, record A (versions 1-5) and record B (1-3), then seal 1, then record A's
version 6 and record C after the seal.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import psycopg

from aggregates.chain import GENESIS, canonical, digest, envelope
from ledger import requests as rq
from ledger.application import Ledger
from ledger.config import store_from_url
from ledger.seal import seal_log
from tests.pg import create_database, drop_database, fresh_database, require_pg

CODE_A = "Z001-WS·2020-D10-BGS-0001"
CODE_B = "Z001-WS·2020-D10-BGS-0002"
TIME = "2024-03-0{}T09:00:00+08:00"


@dataclass(frozen=True)
class Scenario:
    a: UUID
    b: UUID
    c: UUID
    seal_position: int
    seal_digest: str


def build_scenario(url: str, cipher_key: str | None = None, seal_at_end: bool = False) -> Scenario:
    ledger = Ledger(store_from_url(url, cipher_key=cipher_key))
    ledger.create_tables()
    ledger.initialise("dir", "王主任")
    for actor_id, role, clearance in [
        ("arch", "archivist", "secret"),
        ("liz", "liaison", "internal"),
        ("reader", "borrower", "secret"),
        ("audit", "auditor", "top-secret"),
    ]:
        request = rq.AddActor(actor_id=actor_id, name=actor_id, role=[role], clearance=clearance)
        ledger.execute(request, "dir")
    a = _record(ledger, "2020年办公会议纪要", CODE_A)
    ledger.execute(rq.Relocate(record=CODE_A, location="A1-01-1-2"), "arch")
    ledger.execute(rq.Consult(record=CODE_A, reader="reader", purpose="研究"), "arch")
    b = _record(ledger, "2020年财务报告", CODE_B)
    receipt = seal_log(ledger, "audit")
    ledger.execute(rq.Relocate(record=CODE_A, location="A1-01-1-3"), "arch")
    c = _receive(ledger, "2021年人事通知")
    if seal_at_end:
        seal_log(ledger, "arch")
    ledger.close()
    return Scenario(a, b, c, receipt.position, receipt.digest)


def _receive(ledger: Any, title: str) -> UUID:
    request = rq.Receive(
        title=title,
        department="办公室",
        year=2020,
        carrier="paper",
        pages=12,
        secrecy="internal",
        transferred_by="liz",
    )
    return UUID(ledger.execute(request, "arch")["record"])


def _record(ledger: Any, title: str, code: str) -> UUID:
    record = _receive(ledger, title)
    arrange = rq.Arrange(record=str(record), category="administration", retention="10y", code=code)
    ledger.execute(arrange, "arch")
    ledger.execute(rq.Shelve(record=code, location="A1-01-1-1"), "arch")
    return record


@contextmanager
def copies(
    backend: str, folder: Path, cipher_key: str | None = None, seal_at_end: bool = False
) -> Iterator[tuple[Scenario, Any]]:
    """A golden store built once; ``make()`` gives a fresh copy's URL for each use."""
    if backend == "sqlite":
        golden = f"sqlite:///{folder}/golden.db"
        scenario = build_scenario(golden, cipher_key, seal_at_end)
        counter = iter(range(1_000_000))

        def make_sqlite() -> str:
            target = folder / f"copy{next(counter)}.db"
            shutil.copyfile(folder / "golden.db", target)
            return f"sqlite:///{target}"

        yield scenario, make_sqlite
        return
    require_pg()
    made: list[str] = []
    with fresh_database() as golden:
        scenario = build_scenario(golden, cipher_key, seal_at_end)
        template = golden.rsplit("/", 1)[1]

        def make_pg() -> str:
            name = f"{template}_c{len(made)}"
            url = create_database(name, template)
            made.append(name)
            return url

        try:
            yield scenario, make_pg
        finally:
            for name in made:
                drop_database(name)


# -- raw access, as an intruder -------------------------------------------------


class RawStore:
    """The event table of one store, written with its guards off."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite:")
        self.table = "stored_events" if self.sqlite else "ledger_events"
        self.position = "rowid" if self.sqlite else "notification_id"

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        if self.sqlite:
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"))
            try:
                yield conn
                conn.commit()
            finally:
                conn.close()
        else:
            with psycopg.connect(self.url) as pg:
                yield pg

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        statement = statement.replace("?", "%s") if not self.sqlite else statement
        with self._conn() as conn:
            return list(conn.execute(statement, params).fetchall())

    def tamper(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        """Run one statement with the append-only triggers out of the way."""
        self.tamper_all([(statement, [params])])

    def tamper_all(self, steps: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """Run statements (each with its list of parameter rows), guards off, in one go."""
        with self._conn() as conn:
            if self.sqlite:
                triggers = conn.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                ).fetchall()
                for name, _ in triggers:
                    conn.execute(f"DROP TRIGGER {name}")
            else:
                conn.execute(f"ALTER TABLE {self.table} DISABLE TRIGGER USER")
            for statement, rows in steps:
                if not self.sqlite:
                    statement = statement.replace("?", "%s")
                for params in rows:
                    conn.execute(statement, params)
            if self.sqlite:
                for _, create in triggers:
                    conn.execute(create)
            else:
                conn.execute(f"ALTER TABLE {self.table} ENABLE TRIGGER USER")

    def snapshot(self) -> list[tuple[Any, ...]]:
        """Every row as stored, to put back with ``restore``."""
        role = "" if self.sqlite else ", db_role"
        return self.query(
            f"SELECT {self.position}, originator_id, originator_version, topic, state{role} "
            f"FROM {self.table}"
        )

    def restore(self, rows: list[tuple[Any, ...]]) -> None:
        role = "" if self.sqlite else ", db_role"
        marks = ",".join("?" * len(rows[0]))
        insert = (
            f"INSERT INTO {self.table} ({self.position}, originator_id, originator_version, "
            f"topic, state{role}) VALUES ({marks})"
        )
        self.tamper_all([(f"DELETE FROM {self.table}", [()]), (insert, rows)])

    def key(self, originator: UUID) -> Any:
        return originator.hex if self.sqlite else originator

    def row(self, originator: UUID, version: int) -> tuple[int, str, bytes]:
        """(position, topic, state) of one event."""
        found = self.query(
            f"SELECT {self.position}, topic, state FROM {self.table} "
            "WHERE originator_id = ? AND originator_version = ?",
            (self.key(originator), version),
        )
        position, topic, state = found[0]
        return int(position), str(topic), bytes(state)

    def body(self, originator: UUID, version: int) -> dict[str, Any]:
        fields: dict[str, Any] = orjson.loads(self.row(originator, version)[2])["body"]
        return fields

    def set_state(self, originator: UUID, version: int, state: bytes) -> None:
        self.tamper(
            f"UPDATE {self.table} SET state = ? WHERE originator_id = ? AND originator_version = ?",
            (state, self.key(originator), version),
        )

    def delete(self, originator: UUID, version: int) -> int:
        position = self.row(originator, version)[0]
        self.tamper(f"DELETE FROM {self.table} WHERE {self.position} = ?", (position,))
        return position

    def insert(self, fields: dict[str, Any], position: int | None = None) -> bytes:
        """Add a forged event whose hash is right for its body (the algorithm is public)."""
        body = canonical(fields)
        state = envelope(body, digest(body))
        columns = ["originator_id", "originator_version", "topic", "state"]
        values: list[Any] = [
            self.key(UUID(fields["originator_id"])),
            fields["originator_version"],
            fields["topic"],
            state,
        ]
        if position is not None:
            columns.append(self.position)
            values.append(position)
        marks = ",".join("?" * len(values))
        statement = f"INSERT INTO {self.table} ({','.join(columns)}) VALUES ({marks})"
        if not self.sqlite:
            statement = statement.replace("?", "%s")
        with self._conn() as conn:  # appending needs no trigger out of the way
            conn.execute(statement, tuple(values))
        return state

    def rewrite(self, originator: UUID, version: int, **changes: Any) -> str:
        """Change an event's body and give it a correct hash; returns the new hash."""
        fields = {**self.body(originator, version), **changes}
        body = canonical(fields)
        self.set_state(originator, version, envelope(body, digest(body)))
        return digest(body)

    def positions(self) -> list[int]:
        return [int(r[0]) for r in self.query(f"SELECT {self.position} FROM {self.table}")]


def forged_received(originator: UUID, when: str = "2024-03-01T09:00:00+00:00") -> dict[str, Any]:
    """The body of a new record's first event, made outside the ledger."""
    return {
        "actor": "arch",
        "carrier": "paper",
        "class_version": 1,
        "department": "办公室",
        "late": False,
        "occurred_at": when,
        "originator_id": str(originator),
        "originator_topic": "ledger/Record",
        "originator_version": 1,
        "pages": 3,
        "prev_hash": GENESIS,
        "secrecy": "public",
        "timestamp": when,
        "title": "伪造的档案",
        "topic": "ledger/Record/Received",
        "transferred_by": "liz",
        "year": 2020,
    }
