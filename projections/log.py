"""Reading the ledger's event log in large pages, decoded straight from the stored bytes.

Projections work on ``(notification id, topic, fields)`` where ``fields`` holds the fields
of the event's canonical JSON body (see aggregates.chain) that the projections read: the
same values the pydantic event would hold, without the cost of building one per event on
a million-event rebuild (projections.fields). Stored bodies older than their class are
upcast like the mapper does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

import msgspec

from ledger.application import Ledger
from ledger.mapper import KNOWN_TOPICS, UNREADABLE, shown, unknown_topic, unreadable
from projections.fields import TopicFields

Row = tuple[int, str, bytes]  # (notification id, topic, stored state)
Event = tuple[int, str, Any]  # (notification id, topic, the fields read: a TopicFields struct)


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

    def head(self) -> int:
        """The notification id of the last event (0 for an empty log)."""
        return int(self.ledger.recorder.max_notification_id() or 0)

    def count_after(self, position: int) -> int:
        column = "notification_id" if self.backend == "postgres" else "rowid"
        sql = f"SELECT count(*) FROM {self.table} WHERE {column} > {int(position)}"
        return int(self._rows(sql, ())[0][0])

    def first_unknown(self, stop: int) -> tuple[int, Any] | None:
        """The first row up to ``stop`` whose topic the ledger never writes (position,
        topic), or None: one scan of the log's topics, no state read."""
        known = sorted(KNOWN_TOPICS)
        if self.backend == "postgres":
            # The log's topics first (a sequential scan with a hash: 0.2 s at 1,000,000
            # events, where the position query's index scan took 0.36-0.44 s); a position
            # is looked for only where one is not the ledger's.
            sql = f"SELECT topic FROM {self.table} WHERE notification_id <= %s GROUP BY topic"
            if all(row[0] in KNOWN_TOPICS for row in self._rows(sql, (stop,))):
                return None
            sql = (
                f"SELECT notification_id, topic FROM {self.table} WHERE notification_id <= %s "
                "AND (topic IS NULL OR NOT topic = ANY(%s)) ORDER BY notification_id LIMIT 1"
            )
            found = self._rows(sql, (stop, known))
        else:
            sql = (
                f"SELECT rowid, topic FROM {self.table} WHERE rowid <= ? AND (topic IS NULL "
                f"OR topic NOT IN ({','.join('?' * len(known))})) ORDER BY rowid LIMIT 1"
            )
            found = self._rows(sql, (stop, *known))
        return (int(found[0][0]), found[0][1]) if found else None

    def refuse_unknown(self, stop: int) -> None:
        """IntegrityFailure (exit 6) if an event up to ``stop`` has a topic the ledger never
        writes: it could not be read, so nothing built up to ``stop`` would be right."""
        found = self.first_unknown(stop)
        if found is not None:
            raise unknown_topic(*found)

    def pages(
        self, after: int, stop: int, limit: int, topics: Collection[str], vetted: int = 0
    ) -> Iterator[tuple[list[Row], int, int]]:
        """The stored rows with ``after < id <= stop``, ``limit`` at a time: each page with
        the position it covers up to (its last row, or ``stop`` for the last page) and how
        many events of the log it covers. Decode them with ``decode()``.

        PostgreSQL: rows are selected by position only (an index range scan, whatever the
        table's statistics say: a topic filter in the query can make PostgreSQL scan the
        whole table for every page); the state of a row of none of ``topics`` is not sent.
        SQLite: only rows of ``topics`` are selected (the rowid range is scanned either way,
        and rows skipped in the engine cost nothing here); its rowids are the positions, one
        per event with no gaps (the log is append-only), so a page covers ``end - after``.
        On both, a row whose topic the ledger never writes (ledger.mapper.KNOWN_TOPICS) is
        in its page too, so that ``decode()`` refuses it instead of the page passing over
        it: an event the ledger cannot read is never skipped as one of no interest. Up to
        ``vetted`` (positions ``refuse_unknown`` found clean) SQLite selects by topic alone.
        """
        if self.backend == "postgres":
            yield from self._pg_pages(after, stop, limit, topics)
            return
        wanted = sorted(topics)
        known = sorted(KNOWN_TOPICS) if stop > vetted else []
        others = f"OR topic IS NULL OR topic NOT IN ({','.join('?' * len(known))})" if known else ""
        sql = (
            f"SELECT rowid, topic, state FROM {self.table} WHERE rowid > ? AND rowid <= ? "
            f"AND (topic IN ({','.join('?' * len(wanted))}) {others}) ORDER BY rowid LIMIT ?"
        )
        while after < stop:
            rows = self._rows(sql, (after, stop, *wanted, *known, limit))
            end = rows[-1][0] if len(rows) == limit else stop
            yield rows, end, end - after
            after = end

    def _pg_pages(
        self, after: int, stop: int, limit: int, topics: Collection[str]
    ) -> Iterator[tuple[list[Row], int, int]]:
        sql = (
            f"SELECT notification_id, topic, CASE WHEN topic = ANY(%s) THEN state END "
            f"FROM {self.table} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        )
        wanted = sorted(topics)
        while after < stop:
            rows = self._rows(sql, (wanted, after, limit))
            covered = rows[-1][0] if len(rows) == limit else stop
            inside = rows if not rows or rows[-1][0] <= stop else [r for r in rows if r[0] <= stop]
            after = min(covered, stop)
            yield inside, after, len(inside)

    def decode(self, rows: Sequence[Row], fields: Mapping[str, TopicFields]) -> list[Event]:
        """The events of ``rows`` whose topic has a decoder in ``fields``; a row whose topic
        the ledger does not know is an event that cannot be read (IntegrityFailure, exit 6)."""
        mapper: Any = self.ledger.mapper
        events: list[Event] = []
        append = events.append
        plain = mapper.cipher is None and mapper.compressor is None
        notification_id = None
        try:
            for notification_id, topic, state in rows:
                decoder = fields.get(topic)
                if decoder is None:
                    if topic not in KNOWN_TOPICS:
                        raise unknown_topic(notification_id, topic)
                    continue
                if plain:  # the envelope {"body":B,"hash":H} is JSON itself: one parse
                    event = decoder.from_envelope(state)
                else:
                    event = decoder.from_body(mapper.decode_state(state)[0])
                if event.topic != topic:  # the body records its topic; the column is not hashed
                    raise ValueError(f"stored as {topic}, but its body is {shown(event.topic)}")
                append((notification_id, topic, event))
        except (msgspec.MsgspecError, *UNREADABLE) as error:
            raise unreadable(error, f"position {notification_id}: ") from None
        return events

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        if self.backend == "postgres":
            from psycopg.rows import tuple_row  # only for PostgreSQL: psycopg is slow to import

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
