"""The PostgreSQL view: apart, so that a SQLite store's commands never import psycopg."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

from eventsourcing.persistence import ProgrammingError
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from psycopg.errors import InsufficientPrivilege
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from projections.tables import Row, Table, ViewSpec
from projections.views import NeverBuilt, View, create_racing, index_ddl, table_ddl


class PostgresView(PostgresTrackingRecorder, View):
    backend = "postgres"
    ph = "%s"
    snapshot_writes = True
    add_column = "ADD COLUMN IF NOT EXISTS"  # under the table's lock: the later adds none

    def __init__(
        self, datastore: PostgresDatastore, spec: ViewSpec, suffix: str = "", *, events: str
    ) -> None:
        self.spec = spec
        self.suffix = suffix
        self.schema = datastore.schema
        self.events = f"{datastore.schema}.{events}"  # the event table: its owner owns these
        self.makes: str | None = None  # the role the tables are made as (_create_table)
        super().__init__(datastore, tracking_table_name=f"{spec.name}_tracking{suffix}")
        ddl = [table_ddl(t, self.name(t), "postgres") for t in spec.tables]
        if not suffix:
            ddl += [i for t in spec.tables for i in index_ddl(t, self.qualified(t.name))]
        self.sql_create_statements.extend(SQL(cast(Any, s)).format() for s in ddl)

    def qualified(self, name: str) -> str:
        return f"{self.schema}.{name}"

    def create_table(self) -> None:
        """Create what is missing (the owner's session, as ever). A session of another
        role (an officer's, README "Who wrote it") may not run DDL here, even IF NOT
        EXISTS, and needs none once the tables exist: it creates nothing."""
        names = [self.tracking_name, *(self.name(t) for t in self.spec.tables)]
        sql = (
            "SELECT bool_and(c.oid IS NOT NULL) AS present, "
            "bool_or(pg_has_role(c.relowner, 'USAGE')) AS owner, "
            "(SELECT pg_get_userbyid(e.relowner) FROM pg_class e WHERE e.oid = to_regclass(%s) "
            "AND pg_has_role(e.relowner, 'MEMBER')) AS makes "  # the role that makes them
            "FROM unnest(%s::text[]) n LEFT JOIN pg_class c ON c.oid = to_regclass(n)"
        )
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            found = curs.execute(sql, (self.events, names)).fetchone()
        if found and found["present"] and not found["owner"]:
            return
        self.makes = found["makes"] if found else None
        try:
            create_racing(super().create_table)
        except ProgrammingError as error:
            if self.suffix or not isinstance(error.__cause__, InsufficientPrivilege):
                raise  # a rebuild's or check's tables: the owner's work
            raise NeverBuilt(self.spec.name) from None
        self.add_columns()

    def _create_table(self, curs: Any) -> None:
        """Made as the role that owns the event table (the one that ran `ledger init`),
        when the session's role is a member of it (a superuser's, say): tables of the
        session's own role were out of reach of the owner's catch-ups and rebuilds
        (permission denied), and of the default privileges that let officers read them
        (README "Who wrote it"). Another role may not take it, and creates nothing. The
        role is found by ``create_table``'s look-up (``makes``)."""
        if self.makes is not None:
            curs.execute(SQL("SET LOCAL ROLE {0}").format(Identifier(self.makes)))
        super()._create_table(curs)

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        if self.cursor is not None:
            yield self.cursor
            return
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            yield curs

    def _columns(self, curs: Any, table: Table) -> set[str]:
        curs.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped",
            (self.name(table),),
        )
        return {row["attname"] for row in curs.fetchall()}

    def _lock_for_ddl(self, curs: Any) -> None:
        """None but ALTER TABLE's own (``add_column``)."""

    def writable(self) -> bool:
        return self._of_every_table(
            "SELECT bool_and(has_table_privilege(n, 'INSERT') "
            "AND has_table_privilege(n, 'UPDATE')) AS ok FROM unnest(%s::text[]) n"
        )

    def readable(self) -> bool:
        return self._of_every_table(
            "SELECT bool_and(c.oid IS NULL OR has_table_privilege(c.oid, 'SELECT')) AS ok "
            "FROM unnest(%s::text[]) n LEFT JOIN pg_class c ON c.oid = to_regclass(n)"
        )

    def _of_every_table(self, sql: str) -> bool:
        """Whether ``sql``, given the names of the view's tables, answers ``ok``."""
        names = [self.tracking_name, *(self.name(t) for t in self.spec.tables)]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            found = curs.execute(sql, (names,)).fetchone()
        return bool(found and found["ok"])

    def index_scratch(self) -> None:
        with self.transaction() as curs:
            for table in self.spec.tables:
                for ddl in index_ddl(table, self.name(table), table.name + self.suffix):
                    curs.execute(ddl)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction. Views are rebuildable, so a server crash may lose the last
        commits (rows and position together, atomically): synchronous_commit off."""
        if self.cursor is not None:
            yield self.cursor
            return
        with self.datastore.transaction(commit=True) as curs:
            curs.execute("SET LOCAL synchronous_commit = off")
            yield curs

    @contextmanager
    def snapshot(self) -> Iterator[Any]:
        """A repeatable-read transaction (rolled back at the end): every read sees the
        database as at its first, while it may write (scratch tables)."""
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield curs

    def hold(self, curs: Any) -> int:
        """Lock the tracking table against writes (runners write it first), not reads."""
        curs.execute(f"LOCK TABLE {self.tracking_name} IN EXCLUSIVE MODE")
        return self.position_in(curs) or 0

    def _insert(self, curs: Any, table: Table, rows: Sequence[Row]) -> None:
        with curs.copy(f"COPY {self.name(table)} ({', '.join(table.names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def fetch(self, table: Table, column: str, values: Sequence[Any], where: str = "") -> list[Row]:
        if not values:
            return []
        sql = f"SELECT * FROM {self.name(table)} WHERE {column} = ANY(%s) {where}"
        if self.cursor is not None:
            self.cursor.execute(cast(Any, sql), (list(values),))
            return [tuple(row.values()) for row in self.cursor.fetchall()]
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(cast(Any, sql), (list(values),))
            return curs.fetchall()

    def select(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self.cursor is not None:
            self.cursor.execute(cast(Any, sql.replace("?", "%s")), params)
            return [dict(row) for row in self.cursor.fetchall()]
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(cast(Any, sql.replace("?", "%s")), params)
            return [dict(row) for row in curs.fetchall()]

    def _renamed(self, curs: Any, live: str, new: str) -> None:
        """PostgreSQL keeps index names on a rename: give the scratch ones their live names."""
        curs.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
            (self.schema, live),
        )
        for row in curs.fetchall():
            index = row["indexname"]
            if index.startswith(new):
                curs.execute(
                    f"ALTER INDEX {self.qualified(index)} RENAME TO {live}{index[len(new) :]}"
                )
