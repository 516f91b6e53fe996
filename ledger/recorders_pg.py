"""The PostgreSQL event recorder: binary COPY under the table lock, append-only triggers,
the posted-lines table and the database role of each writer (see ledger.recorders)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from ledger.recorders import (
    APPEND_ONLY_MESSAGE,
    DIGEST_COLUMN,
    POSTED_TABLE,
    Posted,
    PostedLine,
    Relied,
    Row,
    Sole,
    check_sole,
    check_unchanged,
    insert_then_commit,
)


class PostgresLedgerRecorder(PostgresApplicationRecorder):
    # Bulk posting inserts on the commit thread: the driver waits while the server takes
    # in the COPY (a worker's inserts waited 0.66 s of 0.82 s), and there that wait passes
    # while the next chunk is checked.
    inserts_on_commit_thread = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = Identifier(self.datastore.schema)
        events = Identifier(self.events_table_name)
        posted = Identifier(POSTED_TABLE)
        guard = Identifier(f"{self.events_table_name}_append_only")
        lock = Identifier(f"{self.events_table_name}_lock")
        self.posted_table = SQL("{0}.{1}").format(schema, posted)
        self.copy_posted = SQL("COPY {0} (id, outcome, {1}) FROM STDIN (FORMAT BINARY)").format(
            self.posted_table, Identifier(DIGEST_COLUMN)
        )
        self.select_history = SQL(
            "SELECT originator_id, originator_version, topic, state, db_role FROM {0}.{1} "
            "WHERE originator_id = %s ORDER BY originator_version"
        ).format(schema, events)
        self.select_events_of = SQL(
            "SELECT originator_id, topic, state FROM {0}.{1} "
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        ).format(schema, events)
        self.select_versions = SQL(
            "SELECT originator_id AS id, MAX(originator_version) AS version FROM {0}.{1} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(schema, events)
        self.select_other = SQL(
            "SELECT 1 FROM {0}.{1} WHERE topic = %s AND originator_id <> %s LIMIT 1"
        ).format(schema, events)
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
                SQL("ALTER TABLE {0}.{1} ADD COLUMN IF NOT EXISTS {2} bytea").format(
                    schema, posted, Identifier(DIGEST_COLUMN)
                ),
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
                # Writers take the table lock through this function, with its owner's rights:
                # LOCK ... IN EXCLUSIVE MODE needs UPDATE, DELETE or TRUNCATE rights, and an
                # officer's role has INSERT only (README, Integrity).
                SQL(
                    "CREATE OR REPLACE FUNCTION {0}.{1}() RETURNS void LANGUAGE plpgsql "
                    "SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS "
                    "$$BEGIN LOCK TABLE {0}.{2} IN EXCLUSIVE MODE; END$$"
                ).format(schema, lock, events),
                SQL("REVOKE ALL ON FUNCTION {0}.{1}() FROM PUBLIC").format(schema, lock),
            ]
        )
        self.lock_table_statements = [
            self.lock_table_statements[0],  # SET LOCAL lock_timeout
            SQL("SELECT {0}.{1}()").format(schema, lock),
        ]
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
                        # Fired in every session: a superuser's in replica mode
                        # (session_replication_role) skipped an ordinary trigger.
                        SQL("ALTER TABLE {0}.{1} ENABLE ALWAYS TRIGGER {2}").format(
                            schema, table, name
                        ),
                    ]
                )

    def _create_table(self, curs: Any) -> None:
        """The tables, triggers and functions, made by one `ledger init` at a time: two at
        once took the same table locks in turn and deadlocked (one exited 1)."""
        curs.execute("SELECT pg_advisory_xact_lock(hashtext('ledger init'))")
        super()._create_table(curs)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        rows = [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events]
        sole = kwargs.get("sole")
        self.insert_uncommitted(rows, kwargs.get("posted") or [], sole=sole)()
        return None

    @staticmethod
    def stored_id(originator_id: UUID) -> UUID:
        """An originator id as this table stores it."""
        return originator_id

    def insert_uncommitted(
        self,
        rows: list[Row],
        posted: list[Posted],
        relied: Relied = (),
        sole: Sole | None = None,
    ) -> Callable[[], None]:
        """One transaction: take the table lock (notification ids commit in order),
        check that the aggregates in ``relied`` are unchanged and that ``sole``'s
        aggregate is the only one with an event of its topic (ledger.recorders:
        ReadChanged), notify followers, COPY the posted-line keys and the event rows in
        binary; commit on the returned call (see ledger.recorders.insert_then_commit)."""
        return insert_then_commit(
            self.datastore.transaction(commit=True),
            lambda curs: self._copy_rows(curs, rows, posted, relied, sole),
        )

    def _copy_rows(
        self,
        curs: Any,
        rows: list[Row],
        posted: list[Posted],
        relied: Relied,
        sole: Sole | None = None,
    ) -> None:
        self._lock_table(curs)
        if relied:  # every writer takes the lock: what is read now stays so until commit
            curs.execute(self.select_versions, ([stored_id for stored_id, _ in relied],))
            check_unchanged({row["id"]: row["version"] for row in curs.fetchall()}, relied)
        if sole is not None:
            check_sole(curs, self.select_other, sole)
        self._notify_channel(curs)
        if posted:
            with curs.copy(self.copy_posted) as copy:
                copy.set_types(["text", "text", "bytea"])
                for key in posted:
                    copy.write_row(key)
        with curs.copy(self.copy_events) as copy:
            copy.set_types(["uuid", "int8", "text", "bytea"])
            for row in rows:
                copy.write_row(row)

    def posted_ids(self, ids: Sequence[str]) -> dict[str, PostedLine]:
        """See SQLiteLedgerRecorder.posted_ids."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                SQL("SELECT id, outcome, {1} FROM {0} WHERE id = ANY(%s)").format(
                    self.posted_table, Identifier(DIGEST_COLUMN)
                ),
                (list(ids),),
            )
            return {key: PostedLine(outcome, digest) for key, outcome, digest in curs.fetchall()}

    def keeps_digests(self) -> bool:
        """See SQLiteLedgerRecorder.keeps_digests."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                "SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                "AND attname = %s AND NOT attisdropped",
                (f"{self.datastore.schema}.{POSTED_TABLE}", DIGEST_COLUMN),
            )
            return curs.fetchone() is not None

    def event_rows_of(self, originator_ids: Sequence[UUID]) -> list[tuple[UUID, str, bytes]]:
        """(originator id, topic, state) of the stored events of many aggregates in one
        query; by aggregate, in version order (see SQLiteLedgerRecorder.event_rows_of)."""
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self.select_events_of, (list(originator_ids),))
            return curs.fetchall()

    def history(self, originator_id: UUID) -> tuple[Sequence[StoredEvent], dict[int, str]]:
        """An aggregate's stored events and the database role that wrote each (version ->
        role), in one query: a custody chain shows both."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self.select_history, (originator_id,), prepare=True)
            rows = curs.fetchall()
        events = [
            StoredEvent(
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
            for row in rows
        ]
        return events, {row["originator_version"]: row["db_role"] for row in rows}

    def role_exists(self, name: str) -> bool:
        """Whether the server has this role (the exact name: current_user equals no other)."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
            return curs.fetchone() is not None

    def session_owns_tables(self) -> bool:
        """Whether this session's role is a superuser or a member of the role that owns
        the event table (the one that ran `ledger init`)."""
        sql = SQL(
            "SELECT r.rolsuper OR pg_has_role(current_user, c.relowner, 'MEMBER') AS owns "
            "FROM pg_roles r, pg_class c WHERE r.rolname = current_user "
            "AND c.oid = to_regclass(%s)"
        )
        table = f"{self.datastore.schema}.{self.events_table_name}"
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql, (table,))
            row = curs.fetchone()
            return bool(row and row["owns"])

    def current_role(self) -> str:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute("SELECT current_user AS role")
            row = curs.fetchone()
            assert row is not None
            return str(row["role"])
