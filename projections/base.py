"""The projection base: a page of events in, one transaction of rows + position out.

Subclasses say which topics they read (``handlers``: topic -> method) and turn a page
of events into table changes (``changes()``). They may cache rows between pages; the
cache always equals what is stored, because it is dropped whenever a write fails.

Dispatch is by topic over the decoded event body rather than by event class (the
library's ``singledispatchmethod`` style): a rebuild reads a million events, and building
a pydantic event for each would cost more than everything else together.
``process_event()`` still accepts the pydantic events, for the library's runner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import Any, ClassVar

from eventsourcing.persistence import Tracking
from eventsourcing.projection import Projection

from projections.fields import TopicFields
from projections.log import Event
from projections.tables import Changes, Row, Table, ViewSpec
from projections.views import View


def topic_fields(projections: Iterable[LedgerProjection]) -> dict[str, TopicFields]:
    """Per topic the projections handle, the decoder of every field they read of it."""
    names: dict[str, set[str]] = {}
    for projection in projections:
        for topic, method in projection.handlers.items():
            names.setdefault(topic, set()).update(projection.reads.get(method, "").split())
    return {topic: _decoder(topic, frozenset(read)) for topic, read in names.items()}


@cache
def _decoder(topic: str, names: frozenset[str]) -> TopicFields:
    return TopicFields(topic, names)


def no_barrier() -> None:
    """Nothing to wait for before reading stored rows."""


class LedgerProjection(Projection[View]):
    spec: ClassVar[ViewSpec]
    handlers: ClassVar[dict[str, str]]  # topic -> name of the method that handles it
    # method -> the body fields it reads, space-separated (besides projections.fields.COMMON)
    reads: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "spec" in cls.__dict__:
            cls.name = cls.spec.name
            cls.topics = tuple(sorted(cls.handlers))

    def __init__(self, view: View) -> None:
        super().__init__(view)
        # Called before reading stored rows: the runner waits there for its pending write.
        self.barrier: Callable[[], None] = no_barrier
        self._dispatch: dict[str, Callable[[int, Any], None]] = {
            topic: getattr(self, method) for topic, method in self.handlers.items()
        }
        self._fields = topic_fields([self])  # for process_event's single events
        self.position: int | None = None
        self.sync()

    def sync(self) -> None:
        """Forget cached rows and re-read the position from the view."""
        self.forget()
        self.position = self.view.position()

    def forget(self) -> None:
        """Drop cached rows (subclasses with caches extend this)."""

    def process_page(self, events: Sequence[Event], tracking: Tracking) -> None:
        """Apply ``events`` and record ``tracking`` in one transaction, exactly once."""
        try:
            changes = self.changes(events)
            self.view.write(changes, tracking, self.position)
        except BaseException:
            self.forget()
            raise
        self.position = tracking.notification_id

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        decoder = self._fields.get(domain_event.TOPIC)
        if decoder is None:
            self.process_page([], tracking)
            return
        fields = decoder.from_body(domain_event.body())
        self.process_page([(tracking.notification_id, domain_event.TOPIC, fields)], tracking)

    def changes(self, events: Sequence[Event]) -> Changes:
        """Prepare (load what the page needs), apply each event, collect the changes."""
        self.prepare(events)
        dispatch = self._dispatch
        for position, topic, fields in events:  # the runner sends only topics handled here
            dispatch[topic](position, fields)
        return self.collect()

    def prepare(self, events: Sequence[Event]) -> None:
        """Load the stored rows that the page's events will change."""

    def load(self, table: Table, column: str, values: set[str], where: str = "") -> list[Row]:
        """Stored rows whose ``column`` is one of ``values``."""
        if not values:
            return []
        self.barrier()
        return self.view.fetch(table, column, sorted(values), where)

    def collect(self) -> Changes:
        raise NotImplementedError


def row_maker(table: Table) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A fast dict -> row function; the dict must hold every column."""
    get = itemgetter(*table.names)
    return lambda values: get(values)


def blank(table: Table) -> dict[str, Any]:
    return dict.fromkeys(table.names)


def as_dict(table: Table, row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(table.names, row, strict=True))


def utc_text(moment: str) -> str:
    """An ISO 8601 time as UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: sorts as text."""
    if moment.endswith("+00:00"):
        bare = moment[:-6]
        return (bare if len(bare) > 19 else bare + ".000000") + "Z"
    parsed = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # isoformat, not strftime: %Y does not pad years before 1000 ("999-12-31T...").
    return parsed.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
