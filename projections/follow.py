"""Keeping the projections up to date as events arrive, until stopped.

On PostgreSQL the follower waits on the library's LISTEN/NOTIFY subscription; each
notification past the projections' positions wakes the page runner, which catches up to
the head. On SQLite (no subscriptions) it polls. A lost connection or a restarted server
ends the subscription with an error: the follower waits, reconnects and resumes from the
positions stored with the rows, so nothing is missed and nothing is counted twice.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import PersistenceError

from aggregates.errors import Conflict, LedgerError
from ledger.application import Ledger
from ledger.wording import counted
from projections.base import LedgerProjection
from projections.runner import Runner, configured_page_size, open_projections

TRANSIENT = (PersistenceError, psycopg.Error, Conflict)
FIRST_DELAY = 0.5
MAX_DELAY = 30.0


class Follower:
    def __init__(
        self,
        ledger: Ledger,
        names: Sequence[str],
        *,
        interval: float = 1.0,
        report: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.ledger = ledger
        self.names = list(names)
        self.interval = interval
        self.report = report
        self.projections: list[LedgerProjection] = []
        self.page_size: int | None = None
        self._stopping = threading.Event()
        self._subscription: Any = None
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Ask run() to return (safe from a signal handler or another thread)."""
        self._stopping.set()
        with self._lock:
            if self._subscription is not None:
                self._subscription.stop()

    @property
    def position(self) -> int:
        return min((p.position or 0 for p in self.projections), default=0)

    def prepare(self) -> None:
        """Check what is configured before following: the page size, and the projections'
        tables and the right to write them. Raises what is wrong, not retried; a database
        unavailable now leaves the tables to run(), which retries."""
        self.page_size = configured_page_size()
        try:
            self._open()
        except TRANSIENT:
            self.projections = []

    def run(self) -> None:
        """Catch up, then follow the log until stop(); retry what the database refuses."""
        delay = FIRST_DELAY
        while not self._stopping.is_set():
            try:
                if not self.projections:
                    self._open()
                runner = Runner(self.ledger, self.projections, page_size=self.page_size)
                self._catch_up(runner)
                delay = FIRST_DELAY
                self._wait(runner)
            except TRANSIENT as error:
                reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
                if read_only(error):  # no retry, as for a role that may not write them
                    raise LedgerError(
                        f"database unavailable: {reason} (this process may not write the "
                        "store's file, where follow updates the projections)"
                    ) from None
                self.report(f"database unavailable ({reason}); retrying in {delay:.1f} s")
                self._stopping.wait(delay)
                delay = min(delay * 2, MAX_DELAY)

    def _open(self) -> None:
        self.projections = open_projections(self.ledger, self.names)
        if not all(p.view.writable() for p in self.projections):  # no retry
            raise LedgerError(
                "permission denied: this database role may not update the "
                "projections (their tables' owner follows the log)"
            )

    def _catch_up(self, runner: Runner) -> None:
        before = self.position
        stats = runner.run()
        if stats.events or self.position != before:
            self.report(f"at position {self.position} (+{counted(stats.events, 'event')})")

    def _wait(self, runner: Runner) -> None:
        """Until stopped: on SQLite poll; on PostgreSQL wait for notifications."""
        if self.ledger.store.backend != "postgres":
            while not self._stopping.wait(self.interval):
                self._catch_up(runner)
            return
        topics = sorted({t for p in self.projections for t in p.topics})
        subscription = self.ledger.recorder.subscribe(gt=self.position, topics=topics)
        with self._lock:
            if self._stopping.is_set():
                subscription.stop()
                return
            self._subscription = subscription
        try:
            with subscription:
                for notification in subscription:
                    if self._stopping.is_set():
                        break
                    if notification.id > self.position:
                        self._catch_up(runner)
        finally:
            with self._lock:
                self._subscription = None


def read_only(error: BaseException) -> bool:
    """SQLite refused to write a file this process may not write (a read-only file,
    folder or file system): no reconnection changes that."""
    cause = error if isinstance(error, sqlite3.Error) else error.__cause__
    code = getattr(cause, "sqlite_errorcode", 0) if isinstance(cause, sqlite3.Error) else 0
    return code & 0xFF == sqlite3.SQLITE_READONLY
