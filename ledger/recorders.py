"""Event recorders: the library's, plus the posted-lines table and append-only triggers.

Keyword arguments given to ``Application.save()`` reach ``_insert_events`` inside the
transaction that inserts the events: ``posted=[(line_id, outcome, digest), ...]`` records
bulk lines as done in that same transaction, so a re-run never posts a line twice (the
digest of the line's content tells a re-run's line from another line given the same id:
ledger.bulk);
``sole=(topic, aggregate id)`` refuses the write (ReadChanged) if another aggregate has
an event of that topic (the first director: no other actor registered meanwhile).

The PostgreSQL recorder lives in ledger.recorders_pg and is loaded on first use, so a
SQLite ledger never imports psycopg (a third of a short command's start-up).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor

APPEND_ONLY_MESSAGE = "ledger tables are append-only"
BULK_CACHE_KIB = -65536  # SQLite cache_size of bulk writes: 64 MiB at most (negative: KiB)
POSTED_TABLE = "ledger_posted"
DIGEST_COLUMN = "digest"  # added to stores made before it by `ledger init`


class PostedLine(NamedTuple):
    """What the posted-line table holds for an id: the outcome (``posted``, or
    ``refused R6`` with the rule: a refused attempt recorded; a bare ``refused`` in stores
    written before the rule was kept) and the digest of the line's content (none in rows
    written before digests were kept)."""

    outcome: str
    digest: bytes | None


Posted = tuple[str, str, bytes | None]  # (line id, outcome, digest) to insert


def insert_then_commit(
    transaction: AbstractContextManager[Any], insert: Callable[[Any], None]
) -> Callable[[], None]:
    """Run ``insert(cursor)`` in a transaction now; return what commits it.

    Bulk posting commits on a thread of its own while it checks its next lines: the
    database driver lets go of the interpreter while the database syncs. The transaction
    (and the database's write lock) stays open until then; a failed insert rolls back
    and raises here, as the library's ``insert_events`` would.
    """
    cursor = transaction.__enter__()
    try:
        insert(cursor)
    except BaseException:
        if not transaction.__exit__(*sys.exc_info()):
            raise

    def commit() -> None:
        transaction.__exit__(None, None, None)

    return commit


Row = tuple[Any, int, str, bytes]  # an event table row: id, version, topic, state
# Aggregates a write relied on without changing them: (stored id, version it read; None:
# it read that there was none).
Relied = Sequence[tuple[Any, int | None]]
# (topic, stored id): no aggregate but this one may have an event of that topic.
Sole = tuple[str, Any]


class ReadChanged(IntegrityError):
    """An aggregate that a write's commands read, and did not change, was changed by
    another writer before the write: what they checked no longer holds."""


def check_unchanged(stored: dict[Any, int], relied: Relied) -> None:
    """Raise ReadChanged unless each relied-on aggregate is stored at the version read, or
    still not stored (``stored``: the latest stored version of each, read under the write
    lock)."""
    changed = [i for i, version in relied if stored.get(i) != version]
    if changed:
        raise ReadChanged(
            f"{len(changed)} aggregate(s) read by this write changed before it was saved"
        )


def check_sole(curs: Any, select_other: Any, sole: Sole) -> None:
    """Raise ReadChanged if ``select_other`` (topic, stored id) finds an event of the
    topic by another aggregate (run under the write lock)."""
    curs.execute(select_other, sole)
    if curs.fetchone() is not None:
        raise ReadChanged(f"another aggregate has a {sole[0]} event: this one is not the first")


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    # Bulk posting inserts in its own thread: the driver lets go of the interpreter for
    # each row it inserts, and a thread inserting beside the checking thread waited for
    # the interpreter after every row (a post with one process took 10.0-10.8 s, not 8.2-8.4).
    inserts_on_commit_thread = False

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {POSTED_TABLE} ("
            "id TEXT PRIMARY KEY, outcome TEXT NOT NULL, "
            "posted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')), "
            f"{DIGEST_COLUMN} BLOB)"
        )
        for table in (self.events_table_name, POSTED_TABLE):
            for op in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} "
                    f"BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                )
        return statements

    def _create_table(self, c: SQLiteCursor) -> None:
        super()._create_table(c)
        if not self._keeps_digests(c):  # a store made before digests were kept
            c.execute(f"ALTER TABLE {POSTED_TABLE} ADD COLUMN {DIGEST_COLUMN} BLOB")

    def keeps_digests(self) -> bool:
        """Whether the posted-line table has its digest column (`ledger init` adds it to
        a store made before)."""
        with self.datastore.transaction(commit=False) as c:
            return self._keeps_digests(c)

    @staticmethod
    def _keeps_digests(c: SQLiteCursor) -> bool:
        c.execute(
            f"SELECT 1 FROM pragma_table_info('{POSTED_TABLE}') WHERE name = ?", [DIGEST_COLUMN]
        )
        return bool(c.fetchall())

    @staticmethod
    def stored_id(originator_id: UUID) -> str:
        """An originator id as this table stores it."""
        return originator_id.hex

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        rows = [
            (
                s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                s.originator_version,
                s.topic,
                s.state,
            )
            for s in stored_events
        ]
        sole = kwargs.get("sole")
        if sole is not None:
            sole = (sole[0], self.stored_id(sole[1]))
        self._insert_rows(c, rows, kwargs.get("posted"), sole=sole)
        return None

    def insert_uncommitted(
        self, rows: list[Row], posted: list[Posted], relied: Relied = ()
    ) -> Callable[[], None]:
        """The bulk write: event rows (``stored_id``, version, topic, state) and
        posted-line keys, inserted now, committed by the returned call (see
        insert_then_commit); refused (ReadChanged) if an aggregate in ``relied`` was
        changed since it was read."""
        return insert_then_commit(
            self._bulk_transaction(), lambda c: self._insert_rows(c, rows, posted, relied)
        )

    @contextmanager
    def _bulk_transaction(self) -> Iterator[SQLiteCursor]:
        """A write transaction with a page cache that holds the event table's key index:
        with SQLite's default (2 MB) a bulk post read back and wrote again most index
        pages it had evicted (an index over random ids is touched all over)."""
        with self.datastore.get_connection(commit=True) as conn:
            conn.cursor().execute(f"PRAGMA cache_size={BULK_CACHE_KIB}")
            with conn.transaction(commit=True) as curs:
                yield curs

    def _insert_rows(
        self,
        c: SQLiteCursor,
        rows: list[Row],
        posted: list[Posted] | None,
        relied: Relied = (),
        sole: Sole | None = None,
    ) -> None:
        if posted:
            # One time for the transaction, in the column default's format: evaluating the
            # default for every row cost a sixth of a bulk post's inserts.
            at = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            c.executemany(
                f"INSERT INTO {POSTED_TABLE} (id, outcome, {DIGEST_COLUMN}, posted_at) "
                "VALUES (?, ?, ?, ?)",
                [(*line, at) for line in posted],
            )
        c.executemany(self.insert_events_statement, rows)
        if relied:  # read now, with the write lock held since the first insert
            c.execute(
                f"SELECT originator_id, MAX(originator_version) FROM {self.events_table_name} "
                f"WHERE originator_id IN ({','.join('?' * len(relied))}) GROUP BY originator_id",
                [stored_id for stored_id, _ in relied],
            )
            check_unchanged({row[0]: row[1] for row in c.fetchall()}, relied)
        if sole is not None:  # likewise
            other = f"SELECT 1 FROM {self.events_table_name} WHERE topic = ? AND originator_id <> ?"
            check_sole(c, other + " LIMIT 1", sole)

    def history(self, originator_id: UUID) -> tuple[Sequence[StoredEvent], dict[int, str]]:
        """An aggregate's stored events, and the database role that wrote each: none on
        SQLite (see PostgresLedgerRecorder.history)."""
        return self.select_events(originator_id), {}

    def event_rows_of(self, originator_ids: Sequence[UUID]) -> list[tuple[UUID, str, bytes]]:
        """(originator id, topic, state) of the stored events of many aggregates, in a few
        queries (bulk posting loads a chunk's stored records at once); by aggregate, in
        version order. Rows, not StoredEvent objects: a frozen dataclass for each event
        was 8 % of loading a record."""
        found: list[tuple[UUID, str, bytes]] = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(originator_ids), 500):
                # The ids asked for, by their stored text: a look-up, not a UUID parsed
                # for every row.
                ids = {i.hex: i for i in originator_ids[start : start + 500]}
                c.execute(
                    "SELECT originator_id, topic, state "
                    f"FROM {self.events_table_name} "
                    f"WHERE originator_id IN ({','.join('?' * len(ids))}) "
                    "ORDER BY originator_id, originator_version",
                    list(ids),
                )
                found += [(ids[r[0]], r[1], r[2]) for r in c.fetchall()]
        return found

    def posted_ids(self, ids: Sequence[str]) -> dict[str, PostedLine]:
        """The line ids among ``ids`` that the store holds, with what it holds of each."""
        found: dict[str, PostedLine] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                c.execute(
                    f"SELECT id, outcome, {DIGEST_COLUMN} FROM {POSTED_TABLE} "
                    f"WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update((row[0], PostedLine(row[1], row[2])) for row in c.fetchall())
        return found


def __getattr__(name: str) -> Any:
    """``ledger.recorders:PostgresLedgerRecorder`` (the configured topic), loaded lazily."""
    if name == "PostgresLedgerRecorder":
        from ledger.recorders_pg import PostgresLedgerRecorder

        return PostgresLedgerRecorder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
