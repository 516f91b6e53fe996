"""Event recorders: the library's, plus the posted-lines table and append-only triggers.

Keyword arguments given to ``Application.save()`` reach ``_insert_events`` inside the
transaction that inserts the events: ``posted=[(line_id, outcome), ...]`` records bulk
lines as done in that same transaction, so a re-run never posts a line twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor
from psycopg.sql import SQL, Identifier

APPEND_ONLY_MESSAGE = "ledger tables are append-only"
POSTED_TABLE = "ledger_posted"


class SQLiteLedgerRecorder(SQLiteApplicationRecorder):
    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {POSTED_TABLE} ("
            "id TEXT PRIMARY KEY, outcome TEXT NOT NULL, "
            "posted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
        )
        for table in (self.events_table_name, POSTED_TABLE):
            for op in ("UPDATE", "DELETE"):
                statements.append(
                    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} "
                    f"BEFORE {op} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
                )
        return statements

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        posted = kwargs.get("posted")
        if posted:
            c.executemany(f"INSERT INTO {POSTED_TABLE} (id, outcome) VALUES (?, ?)", posted)
        c.executemany(
            self.insert_events_statement,
            [
                (
                    s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for s in stored_events
            ],
        )
        return None

    def posted_ids(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                c.execute(
                    f"SELECT id FROM {POSTED_TABLE} WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk,
                )
                found.update(row["id"] for row in c.fetchall())
        return found


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = Identifier(self.datastore.schema)
        events = Identifier(self.events_table_name)
        posted = Identifier(POSTED_TABLE)
        guard = Identifier(f"{self.events_table_name}_append_only")
        self.posted_table = SQL("{0}.{1}").format(schema, posted)
        self.copy_posted = SQL("COPY {0} (id, outcome) FROM STDIN (FORMAT BINARY)").format(
            self.posted_table
        )
        self.copy_events = SQL(
            "COPY {0}.{1} (originator_id, originator_version, topic, state) "
            "FROM STDIN (FORMAT BINARY)"
        ).format(schema, events)
        self.sql_create_statements.extend(
            [
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0}.{1} (id text PRIMARY KEY, "
                    "outcome text NOT NULL, posted_at timestamptz NOT NULL DEFAULT now())"
                ).format(schema, posted),
                # Identity (who wrote it, as the database knows): not settable by a client.
                SQL(
                    "ALTER TABLE {0}.{1} ADD COLUMN IF NOT EXISTS "
                    "db_role text NOT NULL DEFAULT current_user"
                ).format(schema, events),
                SQL(
                    "CREATE OR REPLACE FUNCTION {0}.{1}() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$BEGIN RAISE EXCEPTION '{2}: % on % refused', TG_OP, TG_TABLE_NAME "
                    "USING ERRCODE = 'insufficient_privilege'; END$$"
                ).format(schema, guard, SQL(APPEND_ONLY_MESSAGE)),
            ]
        )
        for table in (events, posted):
            for kind, level in (("UPDATE OR DELETE", "ROW"), ("TRUNCATE", "STATEMENT")):
                name = Identifier(f"{table.as_string()[1:-1]}_no_{kind.split()[0].lower()}")
                self.sql_create_statements.extend(
                    [
                        SQL("DROP TRIGGER IF EXISTS {0} ON {1}.{2}").format(name, schema, table),
                        SQL(
                            "CREATE TRIGGER {0} BEFORE {1} ON {2}.{3} FOR EACH {4} "
                            "EXECUTE FUNCTION {2}.{5}()"
                        ).format(name, SQL(kind), schema, table, SQL(level), guard),
                    ]
                )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """One transaction: take the table lock (notification ids commit in order), notify
        followers, then COPY the posted-line keys and the events in binary."""
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            posted = kwargs.get("posted")
            if posted:
                with curs.copy(self.copy_posted) as copy:
                    copy.set_types(["text", "text"])
                    for row in posted:
                        copy.write_row(row)
            with curs.copy(self.copy_events) as copy:
                copy.set_types(["uuid", "int8", "text", "bytea"])
                for s in stored_events:
                    copy.write_row((s.originator_id, s.originator_version, s.topic, s.state))
        return None

    def posted_ids(self, ids: Sequence[str]) -> set[str]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT id FROM {0} WHERE id = ANY(%s)").format(self.posted_table),
                (list(ids),),
            )
            return {row["id"] for row in curs.fetchall()}

    def db_roles(self, originator_id: UUID) -> dict[int, str]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                SQL(
                    "SELECT originator_version, db_role FROM {0}.{1} WHERE originator_id = %s"
                ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name)),
                (originator_id,),
            )
            return {row["originator_version"]: row["db_role"] for row in curs.fetchall()}

    def current_role(self) -> str:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute("SELECT current_user AS role")
            row = curs.fetchone()
            assert row is not None
            return str(row["role"])
