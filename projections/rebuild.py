"""Rebuilds and checks: build projections from the events alone into scratch tables.

A rebuild builds into ``<table>_new`` (in parts, side by side, when given helper
processes) and swaps those over the live tables in one transaction: readers see the old
projections or the new ones, never a half-built one, and a killed rebuild leaves the live
tables as they were (the next one starts afresh). Catch-ups move the live tables on while
it builds: the swap first brings the new ones up to them, so they never go back.
A check builds into ``<table>_check`` up to the live positions and compares row by row.
One rebuild or check runs at a time (a lock that dies with its process).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aggregates.errors import Conflict, LedgerError
from ledger.application import Ledger
from projections.base import LedgerProjection
from projections.log import EventLog
from projections.parts import Helpers, split
from projections.runner import (
    PROJECTIONS,
    Progress,
    Runner,
    Stats,
    names_or_all,
    open_projections,
    open_view,
    views_datastore,
)
from projections.views import enlisted

LOCK_KEY = 0x1ED6E5  # PostgreSQL advisory lock of rebuilds and checks
# What each projection costs to build, relative to the others (measured on 1,000,000 events:
# audit writes the most rows, the catalog decodes the most fields): shares parts evenly.
COSTS = {"audit": 4.0, "catalog": 3.0, "loans": 1.0, "destruction": 0.2}
# A check compares in one snapshot at the live positions; on SQLite it tries this many
# times to catch its tables up to positions that no catch-up moves before the snapshot.
ATTEMPTS = 5


@contextmanager
def exclusive(ledger: Ledger) -> Iterator[Callable[[Any], None]]:
    """Hold the rebuild lock, or fail at once with Conflict (exit 5). Yields ``confirm``:
    given a cursor, Conflict unless the lock is still held (a swap asks in its
    transaction)."""
    busy = Conflict("another projections rebuild or check is running; try again later")
    if ledger.store.backend == "postgres":
        import psycopg  # only for PostgreSQL

        with views_datastore(ledger).get_connection() as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (LOCK_KEY,)).fetchone()
            if not row["ok"]:
                raise busy
            try:
                yield partial(_confirm_held, conn.info.backend_pid)
            finally:
                # A session the server ended holds no lock: nothing left to release.
                with suppress(psycopg.OperationalError):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        return
    path = f"{ledger.store.sqlite_path}.projections.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:  # a read-only folder, say: no rebuild could write there
        raise LedgerError(
            f"database unavailable: the lock of rebuilds and checks cannot be opened "
            f"({path}: {error.strerror})"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise busy from None
        yield lambda curs: None  # a file lock lasts while this process does
    finally:
        os.close(fd)


def _confirm_held(holder: int, curs: Any) -> None:
    """Conflict unless the session ``holder`` (the lock's, a connection of its own) still
    holds the rebuild lock: the server may have ended it (an administrator, an idle
    session timeout) while the rows were built, and another rebuild taken the lock."""
    curs.execute(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND pid = %s AND classid = %s AND objid = %s AND objsubid = 1 AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())",
        (holder, LOCK_KEY >> 32, LOCK_KEY & 0xFFFFFFFF),
    )
    if not curs.fetchone()["n"]:
        raise Conflict(
            "the projections rebuild lost its lock (the server ended the session that "
            "held it), so another rebuild or check may be running; nothing was swapped: "
            "run the command again"
        )


def build_scratch(
    ledger: Ledger,
    names: Sequence[str],
    suffix: str,
    *,
    stop: int | None = None,
    progress: Progress | None = None,
    indexed: bool = False,
    vetted: int = 0,
) -> tuple[list[LedgerProjection], Stats]:
    """Fresh ``<table><suffix>`` tables built from the first event up to ``stop`` (then
    given the live tables' indexes, if ``indexed``, where the swap can keep them);
    ``vetted``: the position up to which the caller has refused unknown topics."""
    for name in names:
        open_view(ledger, name, suffix).drop_tables()
    projections = open_projections(ledger, names, suffix)
    stats = Runner(ledger, projections, vetted=vetted).run(stop=stop, progress=progress)
    if indexed:
        for projection in projections:
            projection.view.index_scratch()
    return projections, stats


def build_parts(
    ledger: Ledger,
    names: Sequence[str],
    suffix: str,
    stop: int,
    *,
    progress: Progress | None = None,
    helpers: Helpers | None = None,
    indexed: bool = False,
    vetted: int = 0,
) -> tuple[list[LedgerProjection], Stats]:
    """``build_scratch`` of every name up to ``stop``: with helper processes, the names are
    shared out by cost and each part is built in its own process at the same time."""
    parts = split(names, COSTS, 1 + (len(helpers) if helpers else 0))
    if helpers and len(parts) > 1:
        helpers.start(ledger.store, parts[1:], suffix, stop, indexed, vetted)
    _, stats = build_scratch(
        ledger, parts[0], suffix, stop=stop, progress=progress, indexed=indexed, vetted=vetted
    )
    if helpers:
        helpers.wait()
    return open_projections(ledger, names, suffix), stats


def rebuild(
    ledger: Ledger,
    names: Sequence[str] = (),
    progress: Progress | None = None,
    *,
    helpers: Helpers | None = None,
) -> Stats:
    """Rebuild the named projections (default all) from the events alone; with helper
    processes, parts of them at the same time (projections.parts)."""
    chosen = names_or_all(names)
    started = time.perf_counter()
    with exclusive(ledger) as confirm:
        log = EventLog(ledger)
        stop = log.head()  # every part is built up to the same position
        log.refuse_unknown(stop)  # before anything is built: nothing is written
        built, stats = build_parts(
            ledger,
            chosen,
            "_new",
            stop,
            progress=progress,
            helpers=helpers,
            indexed=True,
            vetted=stop,
        )
        stats.events += swap_forward(ledger, chosen, built, stop, progress, confirm)
    stats.seconds = time.perf_counter() - started
    return stats


def swap_forward(
    ledger: Ledger,
    names: Sequence[str],
    built: list[LedgerProjection],
    vetted: int,
    progress: Progress | None = None,
    confirm: Callable[[Any], None] = lambda curs: None,
) -> int:
    """Swap the built projections in, never behind the live ones (catch-ups move those on
    while a rebuild builds): catch them up to the live positions, then, in the swap's
    transaction with those held still, over what the live ones applied meanwhile; and
    only if ``confirm`` finds the rebuild lock still held there. Returns the events read."""
    live = [open_view(ledger, name) for name in PROJECTIONS if name in names]  # lock order
    for view in live:
        view.create_table()
    reached = max(view.position() or 0 for view in live)
    events = Runner(ledger, built, vetted=vetted).run(stop=reached, progress=progress).events
    scratch = [p.view for p in built]
    with live[0].transaction() as curs, enlisted(scratch, curs):
        reached = max([view.hold(curs) for view in live])
        confirm(curs)
        events += Runner(ledger, built, vetted=vetted).run(stop=reached).events
        live[0].swap(curs, scratch)
    return events


@dataclass
class Difference:
    projection: str
    table: str
    side: str  # "live" (rows the rebuild lacks) or "rebuilt" (rows live lacks)
    count: int
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    key_columns: tuple[str, ...] = ()

    def line(self) -> str:
        where = "live rows not in the rebuild" if self.side == "live" else "rebuilt rows not live"
        names = ",".join(self.key_columns)
        shown = "; ".join(",".join(str(v) for v in key) for key in self.keys)
        more = ", ..." if self.count > len(self.keys) else ""
        return (
            f"{self.projection}: table {self.table}: {self.count} {where} ({names}: {shown}{more})"
        )


def check(
    ledger: Ledger,
    names: Sequence[str] = (),
    *,
    helpers: Helpers | None = None,
    hook: Callable[[str], None] = lambda stage: None,
) -> tuple[list[Difference], Stats]:
    """Rebuild into scratch tables (in parts, with helpers) and compare with the live
    ones, at the same position. ``hook`` is called at each attempt's stages ("chased":
    the scratch tables caught up with the live ones; "compare": in the snapshot, before
    the comparison): tests move the live projections there."""
    chosen = names_or_all(names)
    with exclusive(ledger):
        log = EventLog(ledger)
        vetted = log.head()
        log.refuse_unknown(vetted)  # before the live projections catch up: nothing written
        live = open_projections(ledger, chosen)
        Runner(ledger, live, vetted=vetted).run()
        scratch, stats = build_parts(
            ledger, chosen, "_check", _position(live), helpers=helpers, vetted=vetted
        )
        try:
            return _compare(ledger, live, scratch, stats, hook), stats
        finally:
            for projection in scratch:
                projection.view.drop_tables()


def _position(projections: Sequence[LedgerProjection]) -> int:
    return max((p.view.position() or 0 for p in projections), default=0)


def _compare(
    ledger: Ledger,
    live: list[LedgerProjection],
    scratch: list[LedgerProjection],
    stats: Stats,
    hook: Callable[[str], None],
) -> list[Difference]:
    """Compare in one snapshot, each scratch projection at its live one's position there:
    catch-ups that commit meanwhile change nothing it reads. The scratch tables chase the
    live ones first; on PostgreSQL the snapshot catches them up over the last gap itself,
    on SQLite (where that would take the write lock) a moved position is chased again."""
    for _ in range(ATTEMPTS):
        for projection in [*live, *scratch]:
            projection.sync()
        Runner(ledger, live).run(stop=max(p.position or 0 for p in scratch))  # never behind
        stats.events += _chase(ledger, scratch, {p.name: p.view.position() or 0 for p in live})
        hook("chased")
        view = live[0].view
        with view.snapshot() as curs, enlisted([p.view for p in [*live, *scratch]], curs):
            targets = {p.name: p.view.position() or 0 for p in live}
            for projection in scratch:
                projection.sync()
            gaps = [(p.position or 0, targets[p.name]) for p in scratch]
            if any(at > target for at, target in gaps):
                continue  # (live projections do not go back: not expected)
            if any(at < target for at, target in gaps):
                if not view.snapshot_writes:
                    continue
                stats.events += _chase(ledger, scratch, targets)
            hook("compare")
            return [d for a, b in zip(live, scratch, strict=True) for d in _diff(a, b)]
    raise Conflict(
        f"the live projections moved on during each of {ATTEMPTS} attempts to compare; "
        "run the check again"
    )


def _chase(ledger: Ledger, scratch: list[LedgerProjection], targets: dict[str, int]) -> int:
    """Bring each scratch projection up to its target; the events read."""
    events = 0
    for target in sorted(set(targets.values())):
        group = [p for p in scratch if targets[p.name] == target]
        events += Runner(ledger, group).run(stop=target).events
    return events


def _diff(live: LedgerProjection, scratch: LedgerProjection) -> list[Difference]:
    found = []
    for table in live.spec.tables:
        for side, a, b in (("live", live.view, scratch.view), ("rebuilt", scratch.view, live.view)):
            count, keys = a.differences(table, b)
            if count:
                found.append(Difference(live.name, table.name, side, count, keys, table.key))
    return found
