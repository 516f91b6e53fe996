"""Reading the ledger's event log in large pages, decoded straight from the stored bytes.

Projections work on ``(notification id, topic, fields)`` where ``fields`` is the event's
canonical JSON body as a dict (see aggregates.chain): the same values the pydantic event
would hold, without the cost of building one per event on a million-event rebuild.
Stored bodies older than their class are upcast like the mapper does.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import orjson
from eventsourcing.utils import resolve_topic
from psycopg.rows import tuple_row

from aggregates.base import LedgerEvent
from ledger.application import Ledger
from ledger.mapper import upcast

Event = tuple[int, str, dict[str, Any]]


class EventLog:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.backend = ledger.store.backend
        recorder: Any = ledger.recorder
        self.datastore = recorder.datastore
        if self.backend == "postgres":
            self.table = f"{self.datastore.schema}.{recorder.events_table_name}"
        else:
            self.table = recorder.events_table_name
        self._current: dict[str, int] = {}  # topic -> its class's version

    def head(self) -> int:
        """The notification id of the last event (0 for an empty log)."""
        return int(self.ledger.recorder.max_notification_id() or 0)

    def count_after(self, position: int) -> int:
        column = "notification_id" if self.backend == "postgres" else "rowid"
        sql = f"SELECT count(*) FROM {self.table} WHERE {column} > {int(position)}"
        return int(self._rows(sql, ())[0][0])

    def page(
        self, after: int, stop: int, topics: Collection[str], limit: int
    ) -> tuple[list[Event], int, int]:
        """Events with ``after < id <= stop`` and one of ``topics``, read ``limit`` rows at
        a time; the position the page covers up to (the last row read, or ``stop``); and
        how many events of the log it covers.

        Rows are selected by position only (an index range scan, whatever the table's
        statistics say) and filtered by topic here.
        """
        column = "notification_id" if self.backend == "postgres" else "rowid"
        ph = "%s" if self.backend == "postgres" else "?"
        sql = (
            f"SELECT {column}, topic, state FROM {self.table} "
            f"WHERE {column} > {ph} ORDER BY {column} LIMIT {ph}"
        )
        rows = self._rows(sql, (after, limit))
        covered = rows[-1][0] if len(rows) == limit else stop
        inside = rows if not rows or rows[-1][0] <= stop else [r for r in rows if r[0] <= stop]
        return self.decode(inside, topics), min(covered, stop), len(inside)

    def decode(
        self, rows: Sequence[Sequence[Any]], topics: Collection[str] | None = None
    ) -> list[Event]:
        """The events of ``rows`` (of ``topics``, if given)."""
        mapper: Any = self.ledger.mapper
        loads = orjson.loads
        events: list[Event] = []
        append = events.append
        current = self._current
        plain = mapper.cipher is None and mapper.compressor is None
        for notification_id, topic, state in rows:
            if topics is not None and topic not in topics:
                continue
            # The envelope {"body":B,"hash":H} is JSON itself: one parse gives the body.
            fields = loads(state)["body"] if plain else loads(mapper.decode_state(state)[0])
            if current.get(topic) != fields["class_version"]:
                fields = self._upcast(topic, fields)
            append((notification_id, topic, fields))
        return events

    def _upcast(self, topic: str, fields: dict[str, Any]) -> dict[str, Any]:
        cls: type[LedgerEvent] = resolve_topic(topic)
        self._current[topic] = cls.class_version
        stored = fields.get("class_version", 1)
        if stored < cls.class_version:
            fields = upcast(cls, fields, stored)
            fields["class_version"] = cls.class_version
        return fields

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self.backend == "postgres":
            with (
                self.datastore.get_connection() as conn,
                conn.cursor(row_factory=tuple_row, binary=True) as curs,
            ):
                curs.execute(sql, params)
                found: list[Any] = curs.fetchall()
                return found
        with self.datastore.transaction(commit=False) as curs:
            raw = curs.sqlite_cursor
            raw.row_factory = None  # plain tuples: much faster than sqlite3.Row
            raw.execute(sql, params)
            rows: list[Any] = raw.fetchall()
            return rows
