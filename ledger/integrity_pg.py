"""The PostgreSQL event table read directly (ledger.integrity), in its own module so
that a SQLite ledger's verify and seal never import psycopg."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from aggregates.errors import LedgerError
from ledger.integrity import HEAD_HEX, MID_HEX, TAIL_HEX, Decode, EventTable, LogRow


class PostgresEventTable(EventTable):
    backend = "postgres"

    def __init__(
        self,
        conninfo: dict[str, Any],
        schema: str,
        table: str,
        decode: Decode,
        encrypted: bool,
        snapshot: str | None = None,
    ) -> None:
        """A new snapshot of the table, exported; or, given ``snapshot``, that one."""
        super().__init__(decode, encrypted)
        self.conninfo, self.names = conninfo, (schema, table)
        self.conn = self._connect()
        if snapshot is None:
            # Other connections read the same snapshot while this one streams (COPY): it
            # stays valid while this connection's transaction is open, until close().
            row = self.conn.execute("SELECT pg_export_snapshot()").fetchone()
            snapshot = str(row[0]) if row else ""
        else:
            self._attach(self.conn, snapshot)
        self.snapshot = snapshot
        self._lookups: psycopg.Connection[TupleRow] | None = None
        self._owners: dict[str, bool] = {}  # database role -> whether it owns the tables
        self.table = sql.SQL("{0}.{1}").format(sql.Identifier(schema), sql.Identifier(table))
        self.columns = sql.SQL(
            "notification_id, replace(originator_id::text, '-', ''), originator_version, topic"
        )

    def _connect(self) -> psycopg.Connection[TupleRow]:
        conn: psycopg.Connection[TupleRow] = psycopg.connect(**self.conninfo)
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn

    @staticmethod
    def _attach(conn: psycopg.Connection[TupleRow], snapshot: str) -> None:
        try:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        except psycopg.errors.InvalidParameterValue as error:
            # Valid while the exporting transaction is open: its connection has ended.
            raise LedgerError(
                "database unavailable: the connection that holds this command's snapshot "
                f"of the log has ended ({str(error).splitlines()[0]})"
            ) from None

    @property
    def lookups(self) -> psycopg.Connection[TupleRow]:
        """A second connection in the same snapshot, for lookups during a stream."""
        if self._lookups is None:
            self._lookups = self._connect()
            self._attach(self._lookups, self.snapshot)
        return self._lookups

    def owns(self, role: str) -> bool:
        """See EventTable.owns: judged by the server's roles now (a role since dropped, or
        one no row of pg_roles names, owns nothing)."""
        owns = self._owners.get(role)
        if owns is None:
            query = sql.SQL(
                "SELECT r.rolsuper OR pg_has_role(r.oid, c.relowner, 'MEMBER') "
                "FROM pg_roles r, pg_class c WHERE r.rolname = %s AND c.oid = to_regclass(%s)"
            )
            row = self.lookups.execute(query, (role, ".".join(self.names))).fetchone()
            owns = self._owners[role] = bool(row and row[0])
        return owns

    def in_child(self) -> PostgresEventTable:
        """The table for a forked process: connections of its own (a connection is never
        used across a fork), in this snapshot."""
        schema, table = self.names
        return PostgresEventTable(
            self.conninfo, schema, table, self.decode, self.encrypted, self.snapshot
        )

    def close(self) -> None:
        if self._lookups is not None:
            self._lookups.close()
        self.conn.close()

    def head(self) -> int:
        row = self.conn.execute(
            sql.SQL("SELECT max(notification_id) FROM {0}").format(self.table)
        ).fetchone()
        return int(row[0] or 0) if row else 0

    def _stream(self, query: sql.Composed, types: list[str]) -> Iterator[tuple[Any, ...]]:
        """Rows streamed by COPY: the server keeps sending while the rows are checked."""
        statement = sql.SQL("COPY ({0}) TO STDOUT (FORMAT BINARY)").format(query)
        with self.conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            yield from copy.rows()

    def _where(self, after: int | None, upto: int) -> sql.Composable:
        if after is None:
            return sql.SQL("notification_id <= {0}").format(sql.Literal(int(upto)))
        return sql.SQL("notification_id > {0} AND notification_id <= {1}").format(
            sql.Literal(int(after)), sql.Literal(int(upto))
        )

    def rows(self, after: int | None, upto: int) -> Iterator[LogRow]:
        query = sql.SQL("SELECT {0}, state, db_role FROM {1} WHERE {2} ORDER BY notification_id")
        composed = query.format(self.columns, self.table, self._where(after, upto))
        return self._stream(composed, ["int8", "text", "int8", "text", "bytea", "text"])

    def _hash_rows(self, after: int | None, upto: int) -> Iterator[tuple[Any, ...]]:
        query = sql.SQL(
            "SELECT {0}, substring(state from length(state) - 65 for 64), "
            f"substring(state from 1 for 8) = '\\x{HEAD_HEX}'::bytea "
            f"AND substring(state from length(state) - 74 for 9) = '\\x{MID_HEX}'::bytea "
            f"AND substring(state from length(state) - 1) = '\\x{TAIL_HEX}'::bytea "
            "FROM {1} WHERE {2} ORDER BY notification_id"
        )
        composed = query.format(self.columns, self.table, self._where(after, upto))
        return self._stream(composed, ["int8", "text", "int8", "text", "bytea", "bool"])

    def chain(self, key: str) -> list[LogRow]:
        query = sql.SQL(
            "SELECT {0}, state, db_role FROM {1} WHERE originator_id = %s::uuid "
            "ORDER BY originator_version, notification_id"
        ).format(self.columns, self.table)
        with self.lookups.cursor(binary=True) as cursor:
            return cursor.execute(query, (key,)).fetchall()

    def with_topic(self, topic: str, upto: int) -> list[LogRow]:
        query = sql.SQL(
            "SELECT {0}, state, db_role FROM {1} WHERE topic = %s AND notification_id <= %s "
            "ORDER BY notification_id"
        ).format(self.columns, self.table)
        with self.lookups.cursor(binary=True) as cursor:
            return cursor.execute(query, (topic, upto)).fetchall()

    def find(self, pairs: Sequence[tuple[str, int]]) -> list[LogRow]:
        query = sql.SQL(
            "SELECT {0}, state, db_role FROM {1} WHERE (originator_id, originator_version) IN "
            "(SELECT * FROM unnest(%s::uuid[], %s::bigint[]))"
        ).format(self.columns, self.table)
        with self.lookups.cursor(binary=True) as cursor:
            keys = [key for key, _ in pairs]
            versions = [version for _, version in pairs]
            return cursor.execute(query, (keys, versions)).fetchall()
