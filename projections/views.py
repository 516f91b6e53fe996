"""Materialised views: the library's tracking recorders, one subclass per backend
(PostgreSQL's in :mod:`projections.views_pg`, imported only for a PostgreSQL store).

A view owns a projection's tables and its tracking table ``<name>_tracking`` in the
database of the events. ``write()`` puts a page's rows and the new position in one
transaction, and moves the position only from the one the page started at (a
compare-and-set), so two runners never apply the same events twice: the slower one's
transaction fails with ``PositionMoved`` and changes nothing.

A view with a ``suffix`` (``_new``, ``_check``) is a scratch copy: rebuilds and checks
build into it, and ``swap()`` renames it over the live tables in one transaction.
``enlisted()`` has views read and write in a transaction of the caller's (a swap's, a
check's snapshot) instead of their own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from operator import itemgetter
from typing import Any

from eventsourcing.persistence import IntegrityError, Tracking, TrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder

from aggregates.errors import LedgerError
from projections.tables import Changes, Row, Table, ViewSpec

APPLICATION = "Ledger"  # the application whose log the views track
FETCH_CHUNK = 500  # SQLite's limit on bound parameters is generous, but keep IN lists short
# Log pages (4 KiB) after which a commit checkpoints the SQLite write-ahead log.
LIVE_CHECKPOINT = 1000  # SQLite's default
SCRATCH_CHECKPOINT = 262144  # 1 GiB: about one checkpoint per million events
SQL_TYPES = {
    "sqlite": {"text": "TEXT", "int": "INTEGER", "big": "INTEGER"},
    "postgres": {"text": "TEXT", "int": "INTEGER", "big": "BIGINT"},
}


class NeverBuilt(LedgerError):
    """Projections never built, opened by a role that may not create their tables (an
    officer's: README "Who wrote it"); exit 1, saying what the owner runs once."""

    def __init__(self, *names: str) -> None:
        super().__init__(*names)  # the args: a helper process's error is pickled
        self.names = names

    def __str__(self) -> str:
        it, its, was = ("it", "its", "was") if len(self.names) == 1 else ("them", "their", "were")
        return (
            f"permission denied: projection{'s' * (len(self.names) > 1)} "
            f"{', '.join(self.names)} {was} never built, and this database role may not create "
            f"{its} tables: the tables' owner builds {it} once, with `ledger projections "
            f"rebuild {' '.join(self.names)}` or any query of {it}"
        )


class PositionMoved(Exception):
    """Another runner moved this projection's position first; nothing was written."""


class View(TrackingRecorder, ABC):
    """A projection's tables and position; the parts that differ per backend are abstract."""

    spec: ViewSpec
    suffix: str
    backend: str
    ph: str  # the driver's parameter placeholder
    datastore: Any
    cursor: Any = None  # the caller's transaction, while enlisted()
    snapshot_writes = False  # whether a snapshot() may write (scratch tables)
    add_column = "ADD COLUMN"

    def name(self, table: Table) -> str:
        return self.qualified(table.name + self.suffix)

    @property
    def tracking_name(self) -> str:
        return self.qualified(f"{self.spec.name}_tracking{self.suffix}")

    def qualified(self, name: str) -> str:
        return name

    def position(self) -> int | None:
        if self.cursor is None:
            return self.max_tracking_id(APPLICATION)
        return self.position_in(self.cursor)

    def position_in(self, curs: Any) -> int | None:
        """The position as the transaction of ``curs`` sees it."""
        sql = f"SELECT max(notification_id) AS n FROM {self.tracking_name} "
        curs.execute(sql + f"WHERE application_name = {self.ph}", (APPLICATION,))
        found = curs.fetchone()
        return None if found is None else found["n"]

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[Any]:
        """A transaction on a cursor whose reads all see the database as at its first."""

    @abstractmethod
    def hold(self, curs: Any) -> int:
        """Keep runners from moving this (live) view until the transaction of ``curs``
        ends; its position then. The first statement of the transaction, on SQLite."""

    def writable(self) -> bool:
        """Whether this session may move the view (catch it up): on PostgreSQL a role
        granted only SELECT on the views (an officer's, README "Who wrote it") may not."""
        return True

    def readable(self) -> bool:
        """Whether this session may read every table of the view that exists: on
        PostgreSQL a role may lack SELECT on them (SQLite has no roles)."""
        return True

    @abstractmethod
    def create_table(self) -> None:
        """Create the tracking table and the view's tables, if missing."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Any]:
        """A write transaction on a cursor."""

    def add_columns(self) -> None:
        """Give a live table made before some of its columns (``Table.added``) those
        columns, empty: rows written before keep them empty until a rebuild fills them.
        Looked up first without a lock; added under the table's write lock, where it is
        looked up again (another process may have added them meanwhile)."""
        tables = [t for t in self.spec.tables if t.added]
        if self.suffix or not tables:
            return
        with self._reading() as curs:
            if all(set(t.added) <= self._columns(curs, t) for t in tables):
                return
        with self.transaction() as curs:
            self._lock_for_ddl(curs)
            for table in tables:
                have = self._columns(curs, table)
                for column in (c for c in table.added if c not in have):
                    kind = SQL_TYPES[self.backend][table.type_of(column)]
                    curs.execute(
                        f"ALTER TABLE {self.name(table)} {self.add_column} {column} {kind}"
                    )

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Any]:
        """A cursor to read with (the enlisted transaction's, if any)."""

    @abstractmethod
    def _columns(self, curs: Any, table: Table) -> set[str]:
        """The names of the columns the stored ``table`` has."""

    @abstractmethod
    def _lock_for_ddl(self, curs: Any) -> None:
        """Take the lock under which columns are added."""

    @abstractmethod
    def fetch(self, table: Table, column: str, values: Sequence[Any], where: str = "") -> list[Row]:
        """Stored rows of ``table`` whose ``column`` is one of ``values``."""

    @abstractmethod
    def select(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query written with ``?`` placeholders, as dicts."""

    @abstractmethod
    def _insert(self, curs: Any, table: Table, rows: Sequence[Row]) -> None: ...

    def write(self, changes: Changes, tracking: Tracking, expected: int | None) -> None:
        with self.transaction() as curs:
            self.write_into(curs, changes, tracking, expected)

    def write_into(
        self, curs: Any, changes: Changes, tracking: Tracking, expected: int | None
    ) -> None:
        """Move the position from ``expected`` to the tracking's, and write the rows."""
        self._advance(curs, tracking, expected)
        for table in self.spec.tables:
            change = changes.get(table.name)
            if change and change.updates:
                sql = _update_sql(table, self.name(table), self.ph)
                curs.executemany(sql, _update_params(table, change.updates))
            if change and change.inserts:
                self._insert(curs, table, change.inserts)

    def _advance(self, curs: Any, tracking: Tracking, expected: int | None) -> None:
        ph = self.ph
        if expected is None:
            sql = f"INSERT INTO {self.tracking_name} VALUES ({ph}, {ph}) "
            sql += "ON CONFLICT DO NOTHING RETURNING 1"
            params: tuple[Any, ...] = (tracking.application_name, tracking.notification_id)
        else:
            sql = f"UPDATE {self.tracking_name} SET notification_id = {ph} "
            sql += f"WHERE application_name = {ph} AND notification_id = {ph} RETURNING 1"
            params = (tracking.notification_id, tracking.application_name, expected)
        curs.execute(sql, params)
        if curs.fetchone() is None:
            raise PositionMoved(f"{self.spec.name} moved past {expected}")

    def drop_tables(self) -> None:
        with self.transaction() as curs:
            for name in [self.tracking_name, *(self.name(t) for t in self.spec.tables)]:
                curs.execute(f"DROP TABLE IF EXISTS {name}")

    def swap(self, curs: Any, scratch: Sequence[View]) -> None:
        """Rename each scratch view's tables over the live ones, in the transaction of
        ``curs``."""
        for view in scratch:
            for live, new in _pairs(view):
                curs.execute(f"DROP TABLE IF EXISTS {self.qualified(live)}")
                curs.execute(f"ALTER TABLE {self.qualified(new)} RENAME TO {live}")
                self._renamed(curs, live, new)
            for table in view.spec.tables:
                for ddl in index_ddl(table, self.qualified(table.name)):
                    curs.execute(ddl)

    def _renamed(self, curs: Any, live: str, new: str) -> None:
        """After a table took its live name."""

    def index_scratch(self) -> None:
        """Make the live tables' secondary indexes on these scratch tables, where the swap
        can carry them over (PostgreSQL renames them; SQLite makes them at the swap)."""

    def differences(self, table: Table, other: View, limit: int = 5) -> tuple[int, list[Row]]:
        """Rows of ``table`` here that ``other`` lacks: their count and the first keys."""
        key = ", ".join(table.key)
        diff = f"SELECT * FROM {self.name(table)} EXCEPT SELECT * FROM {other.name(table)}"
        counted = self.select(f"SELECT count(*) AS n FROM ({diff}) d")
        keys = self.select(f"SELECT {key} FROM ({diff}) d ORDER BY {key} LIMIT {int(limit)}")
        return int(counted[0]["n"]), [tuple(row.values()) for row in keys]


@contextmanager
def enlisted(views: Iterable[View], curs: Any) -> Iterator[None]:
    """Have the views read and write in the transaction of ``curs``."""
    chosen = list(views)
    for view in chosen:
        view.cursor = curs
    try:
        yield
    finally:
        for view in chosen:
            view.cursor = None


def create_racing(create: Any) -> None:
    """The library's ``create_table``, run again if it lost a race: it reads whether the
    tracking table exists, then makes it and inserts its migration row, so of two
    processes making a projection never built (a query and `follow`, a rebuild's swap)
    the later collides on that row. Run again, it finds the tables made."""
    try:
        create()
    except IntegrityError:
        create()


def table_ddl(table: Table, name: str, backend: str) -> str:
    types = SQL_TYPES[backend]
    columns = ", ".join(f"{n} {types[t]}" for n, t in table.columns)
    key = ", ".join(table.key)
    if backend == "postgres":
        constraint = name.split(".")[-1] + "_pkey"
        return (
            f"CREATE TABLE IF NOT EXISTS {name} ({columns}, "
            f"CONSTRAINT {constraint} PRIMARY KEY ({key}))"
        )
    # A rowid table: rows are stored in insertion order and the key is a separate index.
    # Keys are random (record ids), so a clustered (WITHOUT ROWID) table would rewrite
    # pages all over the file on every commit of a rebuild; the key index is much smaller.
    columns = ", ".join(
        f"{n} {types[t]}{' NOT NULL' if n in table.key else ''}" for n, t in table.columns
    )
    return f"CREATE TABLE IF NOT EXISTS {name} ({columns}, PRIMARY KEY ({key}))"


def index_ddl(table: Table, qualified: str, prefix: str = "") -> list[str]:
    """Secondary indexes: made on live tables, or on a rebuild's scratch tables once they
    are loaded (named after them, ``prefix``; they take the live names with the table)."""
    return [
        f"CREATE INDEX IF NOT EXISTS {prefix or table.name}_{'_'.join(cols)}_idx "
        f"ON {qualified} ({', '.join(cols)})"
        for cols in table.indexes
    ]


def _update_sql(table: Table, name: str, ph: str) -> str:
    sets = ", ".join(f"{c} = {ph}" for c in table.values)
    where = " AND ".join(f"{c} = {ph}" for c in table.key)
    return f"UPDATE {name} SET {sets} WHERE {where}"


def _update_params(table: Table, rows: Sequence[Row]) -> list[Row]:
    """Rows in column order -> (values..., key...) for _update_sql."""
    order = itemgetter(*[table.position(c) for c in (*table.values, *table.key)])
    return [order(row) for row in rows]


class SQLiteView(SQLiteTrackingRecorder, View):
    backend = "sqlite"
    ph = "?"

    def __init__(self, datastore: SQLiteDatastore, spec: ViewSpec, suffix: str = "") -> None:
        self.spec = spec
        self.suffix = suffix
        super().__init__(datastore)
        # The library's SQLite tracking table is one fixed "tracking"; each view has its own.
        tt = self.tracking_name
        self.insert_tracking_statement = (
            f"INSERT INTO {tt} VALUES (:application_name, :notification_id) "
            "ON CONFLICT (application_name) DO UPDATE SET notification_id = :notification_id "
            f"WHERE {tt}.notification_id < :notification_id RETURNING notification_id"
        )
        self.select_max_tracking_id_statement = (
            f"SELECT MAX(notification_id) FROM {tt} WHERE application_name=?"
        )

    def create_table(self) -> None:
        create_racing(super().create_table)
        self.add_columns()

    def _columns(self, curs: Any, table: Table) -> set[str]:
        curs.execute("SELECT name FROM pragma_table_info(?)", (self.name(table),))
        return {row[0] for row in curs.fetchall()}

    def _lock_for_ddl(self, curs: Any) -> None:
        """A write (of nothing) takes the database's write lock first: the columns are
        then looked up as they are, not as at a snapshot another writer has changed."""
        curs.execute(f"UPDATE {self.tracking_name} SET notification_id = notification_id")

    def construct_create_table_statements(self) -> list[str]:
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.tracking_name} (application_name TEXT, "
            "notification_id INTEGER, PRIMARY KEY (application_name)) WITHOUT ROWID"
        ]
        statements += [table_ddl(t, self.name(t), "sqlite") for t in self.spec.tables]
        if not self.suffix:
            statements += [ddl for t in self.spec.tables for ddl in index_ddl(t, t.name)]
        return statements

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction. Views are rebuildable, so a power cut may lose the last
        commits (rows and position together, atomically): synchronous=NORMAL, no fsync."""
        if self.cursor is not None:
            yield self.cursor
            return
        with self.datastore.get_connection(commit=True) as conn:
            conn.cursor().execute("PRAGMA synchronous=NORMAL")
            conn.cursor().execute("PRAGMA cache_size=-32768")
            # Views hold nothing the events do not: no need to zero the pages they free
            # (SQLite built with SECURE_DELETE, as Debian's is, does by default; a rebuild's
            # swap then wrote every page of the tables it dropped once more).
            conn.cursor().execute("PRAGMA secure_delete=OFF")
            # A scratch build commits a page at a time: checkpoint the log rarely (each
            # checkpoint copies pages into the file and syncs it), live views as usual.
            pages = SCRATCH_CHECKPOINT if self.suffix else LIVE_CHECKPOINT
            conn.cursor().execute(f"PRAGMA wal_autocheckpoint={pages}")
            with conn.transaction(commit=True) as curs:
                yield curs

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A read transaction: in WAL mode its reads see the database as at its first."""
        with self.datastore.transaction(commit=False) as curs:
            yield curs

    def hold(self, curs: Any) -> int:
        """A write (of nothing) takes the database's write lock: no runner commits."""
        curs.execute(f"UPDATE {self.tracking_name} SET notification_id = notification_id")
        return self.position_in(curs) or 0

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        if self.cursor is not None:
            yield self.cursor
            return
        with self.datastore.transaction(commit=False) as curs:
            yield curs

    def _insert(self, curs: Any, table: Table, rows: Sequence[Row]) -> None:
        marks = ",".join("?" * len(table.columns))
        curs.executemany(f"INSERT INTO {self.name(table)} VALUES ({marks})", rows)

    def fetch(self, table: Table, column: str, values: Sequence[Any], where: str = "") -> list[Row]:
        found: list[Row] = []
        with self._reading() as curs:
            for start in range(0, len(values), FETCH_CHUNK):
                chunk = values[start : start + FETCH_CHUNK]
                marks = ",".join("?" * len(chunk))
                curs.execute(
                    f"SELECT * FROM {self.name(table)} WHERE {column} IN ({marks}) {where}",
                    chunk,
                )
                found.extend(tuple(row) for row in curs.fetchall())
        return found

    def select(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._reading() as curs:
            curs.execute(sql, params)
            return [dict(row) for row in curs.fetchall()]


def _pairs(view: View) -> list[tuple[str, str]]:
    """(live name, scratch name) of a scratch view's tracking table and tables."""
    names = [f"{view.spec.name}_tracking", *(t.name for t in view.spec.tables)]
    return [(name, name + view.suffix) for name in names]
