"""The page-batched runner: brings projections from their positions to the head of the log.

One pass over the log serves every projection it runs: a page of events is read and
decoded once, then each projection applies the events past its own position and writes
its rows with its new position in its own transaction. A page ends at its last event,
or at the head when it is the last page, so positions reach the head even when the last
events are of topics no projection reads.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from eventsourcing.persistence import Tracking
from eventsourcing.sqlite import SQLiteDatastore

from aggregates.errors import Conflict, InvalidInput
from ledger.application import Ledger
from ledger.wording import counted
from projections.audit import AuditProjection
from projections.base import LedgerProjection, no_barrier, topic_fields
from projections.catalog import CatalogProjection
from projections.destruction import DestructionProjection
from projections.loans import LoansProjection
from projections.log import Event, EventLog
from projections.pipeline import Batched, Inline, PageWrite, Writer
from projections.views import APPLICATION, NeverBuilt, PositionMoved, SQLiteView, View

PROJECTIONS: dict[str, type[LedgerProjection]] = {
    "catalog": CatalogProjection,
    "loans": LoansProjection,
    "audit": AuditProjection,
    "destruction": DestructionProjection,
}
PAGE_SIZE = 10_000  # events per page, unless LEDGER_PROJECTION_PAGE_SIZE says otherwise
RETRIES = 5
# SQLite scratch builds commit this many pages at once: a page's B-tree pages, written to
# the write-ahead log at each commit, are then written once for several pages.
SCRATCH_PAGES_PER_COMMIT = 8

Progress = Callable[[int], None]  # called with the number of log positions just covered


@dataclass
class Stats:
    events: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{counted(self.events, 'event')} in {self.seconds:.1f} s ({self.rate:,.0f} events/s)"
        )


def names_or_all(names: Sequence[str]) -> list[str]:
    unknown = [n for n in names if n not in PROJECTIONS]
    if unknown:
        raise InvalidInput(
            f"unknown projection {', '.join(unknown)}; choose from {', '.join(PROJECTIONS)}"
        )
    return list(dict.fromkeys(names)) or list(PROJECTIONS)


_SQLITE_STORES: WeakKeyDictionary[Ledger, SQLiteDatastore] = WeakKeyDictionary()


def views_datastore(ledger: Ledger) -> Any:
    """Where the views live: the events' database. On SQLite a pool of its own, as its
    connections write without fsync (see SQLiteView.transaction)."""
    if ledger.store.backend == "postgres":
        return ledger.recorder.datastore  # type: ignore[attr-defined]
    if ledger not in _SQLITE_STORES:
        _SQLITE_STORES[ledger] = SQLiteDatastore(str(ledger.store.sqlite_path), lock_timeout=30)
    return _SQLITE_STORES[ledger]


def open_view(ledger: Ledger, name: str, suffix: str = "") -> View:
    spec = PROJECTIONS[name].spec
    if ledger.store.backend == "postgres":
        from projections.views_pg import PostgresView  # psycopg: only for PostgreSQL

        events = ledger.recorder.events_table_name  # type: ignore[attr-defined]
        return PostgresView(views_datastore(ledger), spec, suffix, events=events)
    return SQLiteView(views_datastore(ledger), spec, suffix)


def open_projections(
    ledger: Ledger, names: Sequence[str], suffix: str = "", *, create: bool = True
) -> list[LedgerProjection]:
    views = [open_view(ledger, name, suffix) for name in names]
    if create:
        never: list[str] = []
        for view in views:
            try:
                view.create_table()
            except NeverBuilt as error:  # name them all in one line
                never += error.names
        if never:
            raise NeverBuilt(*never)
    return [PROJECTIONS[name](view) for name, view in zip(names, views, strict=True)]


def configured_page_size() -> int:
    """Events per page: LEDGER_PROJECTION_PAGE_SIZE (smaller pages: less memory), or
    PAGE_SIZE. Anything but a whole number of at least 1 is invalid input."""
    setting = os.environ.get("LEDGER_PROJECTION_PAGE_SIZE", "").strip()
    if not setting:
        return PAGE_SIZE
    if not setting.isdecimal() or int(setting) < 1:
        raise InvalidInput(
            f"LEDGER_PROJECTION_PAGE_SIZE is a number of events, at least 1, not {setting!r}"
        )
    return int(setting)


class Runner:
    def __init__(
        self,
        ledger: Ledger,
        projections: Sequence[LedgerProjection],
        *,
        page_size: int | None = None,
        vetted: int = 0,
    ) -> None:
        self.log = EventLog(ledger)
        self.projections = list(projections)
        self.page_size = page_size or configured_page_size()
        # Positions up to here hold no topic the ledger does not know (EventLog.refuse_unknown)
        self.vetted = vetted

    def run(self, stop: int | None = None, progress: Progress | None = None) -> Stats:
        """Process every event up to ``stop`` (default: the head); retry if raced."""
        started = time.perf_counter()
        stats = Stats()
        collecting = gc.isenabled()
        # Pages allocate millions of short-lived dicts and no cycles, while the caches hold
        # many long-lived ones: the collector's full passes over those are wasted work.
        gc.disable()
        try:
            for _ in range(RETRIES):
                stats.events = 0  # count what the attempt that succeeds read
                try:
                    self._run(stop, progress, stats)
                    break
                except PositionMoved:
                    for projection in self.projections:
                        projection.sync()
            else:
                raise Conflict("other runners keep moving the projections; run again")
        finally:
            if collecting:
                gc.enable()
        stats.seconds = time.perf_counter() - started
        return stats

    def start(self) -> int:
        return min((p.position or 0 for p in self.projections), default=0)

    def _run(self, stop: int | None, progress: Progress | None, stats: Stats) -> None:
        head = self.log.head() if stop is None else stop
        behind = [p for p in self.projections if (p.position or 0) < head]
        if not behind:
            return
        after = min(p.position or 0 for p in behind)
        routes: dict[str, list[LedgerProjection]] = {}
        for projection in behind:
            for topic in projection.topics:
                routes.setdefault(topic, []).append(projection)
        fields = topic_fields(behind)
        try:
            with self._writer() as writer:
                for projection in behind:
                    projection.barrier = writer.drain
                pages = self.log.pages(after, head, self.page_size, fields, self.vetted)
                for rows, end, covered in pages:
                    events = self.log.decode(rows, fields)
                    writer.submit(self._apply(behind, routes, events, end))
                    stats.events += covered
                    if progress:
                        progress(end - after)
                    after = end
        except BaseException:
            for projection in behind:
                projection.sync()  # positions and caches as stored
            raise
        finally:
            for projection in behind:
                projection.barrier = no_barrier

    def _writer(self) -> Writer | Inline | Batched:
        """PostgreSQL: a writer thread. SQLite: inline, and for scratch tables (a rebuild,
        a check: nothing reads them until they are done) several pages a transaction.
        Inline, in the caller's transaction, for views enlisted in one."""
        if any(p.view.cursor is not None for p in self.projections):
            return Inline()
        if self.log.backend == "postgres":
            return Writer()
        if all(p.view.suffix for p in self.projections):
            return Batched(SCRATCH_PAGES_PER_COMMIT)
        return Inline()

    @staticmethod
    def _apply(
        behind: list[LedgerProjection],
        routes: dict[str, list[LedgerProjection]],
        events: list[Event],
        end: int,
    ) -> PageWrite:
        """Apply each projection's part of the page now; return the job that writes all
        of them, with the new positions, in one transaction."""
        pages: dict[int, list[Event]] = {id(p): [] for p in behind}
        if events and all((p.position or 0) < events[0][0] for p in behind):
            lists = {t: [pages[id(p)] for p in ps] for t, ps in routes.items()}
            for event in events:  # every projection wants every event of its topics
                for page in lists[event[1]]:
                    page.append(event)
        else:
            for event in events:
                for projection in routes[event[1]]:
                    if event[0] > (projection.position or 0):
                        pages[id(projection)].append(event)
        moving = [p for p in behind if end > (p.position or 0)]
        write = PageWrite(
            [(p.view, p.changes(pages[id(p)]), p.position) for p in moving],
            Tracking(APPLICATION, end),
        )
        for projection in moving:
            projection.position = end
        return write


def catch_up(ledger: Ledger, names: Sequence[str] = ()) -> Stats:
    """Bring the live projections (all, or those named) up to the head of the log."""
    projections = open_projections(ledger, names_or_all(names))
    return Runner(ledger, projections).run()
