"""Building projections side by side: helper processes that each build a part of them.

Each projection reads the whole log on its own, so a rebuild splits by projection: the
calling process builds one part, and each helper process another, all into the same
scratch tables and up to the same position; the caller swaps them in once every part is
done. Helpers are forked before the store is opened (nothing open is inherited), each
opens the store itself when given its part, and dies with its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

from aggregates.errors import Conflict, sendable

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def split(names: Sequence[str], costs: dict[str, float], parts: int) -> list[list[str]]:
    """At most ``parts`` lists of names of about equal cost (largest first, each to the
    cheapest list so far); the first list goes to the calling process."""
    lists: list[list[str]] = [[] for _ in range(max(1, min(parts, len(names))))]
    totals = [0.0] * len(lists)
    for name in sorted(names, key=lambda n: -costs.get(n, 1.0)):
        cheapest = totals.index(min(totals))
        lists[cheapest].append(name)
        totals[cheapest] += costs.get(name, 1.0)
    return [sorted(part, key=list(names).index) for part in lists if part]


class Helpers:
    """Helper processes, forked now; ``start()`` hands each a part (once: a helper ends
    when its part is built), ``wait()`` takes their answers."""

    def __init__(self, count: int) -> None:
        self.conns: list[tuple[Any, Connection]] = []
        self.busy: list[tuple[Any, Connection]] = []
        context = multiprocessing.get_context("fork")
        for _ in range(count):
            mine, theirs = context.Pipe()
            others = [conn for _, conn in self.conns] + [mine]
            process = context.Process(target=_help, args=(theirs, others), daemon=True)
            process.start()
            theirs.close()
            self.conns.append((process, mine))

    def __len__(self) -> int:
        return len(self.conns)

    def start(
        self,
        store: Any,
        parts: Sequence[Sequence[str]],
        suffix: str,
        stop: int,
        indexed: bool,
        vetted: int = 0,
    ) -> None:
        """Each helper builds one of ``parts`` into ``<table><suffix>`` up to ``stop``
        (``build_scratch``)."""
        for (process, conn), names in zip(self.conns, parts, strict=False):
            try:
                conn.send((store, list(names), suffix, stop, indexed, vetted))
            except OSError:
                raise _stopped() from None
            self.busy.append((process, conn))

    def wait(self) -> None:
        """Every part handed out is built; the first failure is raised."""
        busy, self.busy = self.busy, []
        for _, conn in busy:
            try:
                kind, payload = conn.recv()
            except (EOFError, OSError):  # killed, or out of memory
                raise _stopped() from None
            if kind == "error":
                raise payload

    def close(self) -> None:
        """Idle helpers are told to end; one still building (this process failed before
        taking its answer) is killed: its scratch tables are dropped by the next build."""
        for process, _ in self.busy:
            process.kill()
        for _, conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
        for process, _ in self.conns:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self.conns, self.busy = [], []


@contextmanager
def helpers(count: int) -> Iterator[Helpers]:
    """``count`` helper processes for the block (none for 0), stopped after it."""
    made = Helpers(max(0, count))
    try:
        yield made
    finally:
        made.close()


def _stopped() -> Conflict:
    return Conflict("a projection helper process stopped; run the command again")


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies (a killed rebuild must
    not leave helpers writing scratch tables)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the line above
        os._exit(1)


def _help(conn: Connection, parents_ends: list[Connection]) -> None:
    """A helper: build the part it is given, answer, and end (its memory goes with it
    while the parent swaps the tables in)."""
    _die_with_parent()
    for end in parents_ends:  # forked copies: closed, so the parent's death reads as EOF
        end.close()
    with contextlib.suppress(EOFError, OSError):
        job = conn.recv()
        if job is None:
            return
        try:
            _build(*job)
            conn.send(("done", None))
        except BaseException as error:  # the parent raises it
            conn.send(("error", sendable(error)))


def _build(
    store: Any, names: list[str], suffix: str, stop: int, indexed: bool, vetted: int
) -> None:
    from ledger.application import Ledger
    from projections.rebuild import build_scratch

    ledger = Ledger(store)
    try:
        build_scratch(ledger, names, suffix, stop=stop, indexed=indexed, vetted=vetted)
    finally:
        ledger.close()
