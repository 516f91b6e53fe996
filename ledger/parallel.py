"""Bulk posting on several processes: a file's lines split by what they touch.

Lines are read in windows of ``jobs x chunk size`` and grouped (ledger.grouping): lines
that name the same record, archival code or line id form one group, and groups share
nothing a rule reads. Each worker process posts what it is sent, one share at a time, in
file order, as one chunk (ledger.bulk: one transaction, line ids in the same
transaction). There is no barrier between windows: a group that shares a key with work
still queued or running on a worker is sent to that worker, after it; one that shares
keys with two workers waits until one of them has committed. So no line overtakes an
earlier line it depends on, and each worker starts its next share as soon as it has
committed the last. Lines that change actors, whom every other line reads, are
posted alone in this process, in their place in the file, once all work is committed.

The outcome is the outcome of posting the file in order in one process: same lines
posted, refused and invalid, same events (tests/test_bulk_parallel.py). Problems are
reported in line order, each once every earlier line has been posted.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain, count
from multiprocessing.connection import Connection, wait
from typing import Any
from uuid import UUID

from aggregates.errors import Conflict, sendable
from ledger.bulk import BulkPoster, Problem, Summary, chunks, few_collections
from ledger.grouping import Group, Grouping, LineKeys, Numbered, line_keys

AHEAD = 2  # shares queued per worker behind the one it posts (windows read ahead)


def changes_actors(data: LineKeys | None) -> bool:
    command = data.command if data is not None else None
    return isinstance(command, str) and command.startswith("actor-")


@dataclass(eq=False)
class Share:
    """Lines sent to one worker as one chunk; it owns its keys until answered."""

    number: int
    worker: Worker
    lines: Numbered
    keys: set[str]
    ids: set[str]

    @property
    def first(self) -> int:
        return self.lines[0][0]


@dataclass(eq=False)
class Worker:
    process: Any
    conn: Connection
    queue: deque[Share] = field(default_factory=deque)  # sent in order
    posting: Share | None = None  # sent, not yet answered

    @property
    def load(self) -> int:
        queued = sum(len(s.lines) for s in self.queue)
        return queued + (len(self.posting.lines) if self.posting else 0)


class ParallelPoster:
    """Posts a file with ``jobs`` worker processes; the interface of BulkPoster."""

    def __init__(
        self,
        open_ledger: Callable[[], Any],
        actor: str | None,
        *,
        jobs: int,
        chunk_size: int = 5000,
        on_problem: Callable[[Problem], None] = lambda p: None,
    ) -> None:
        self.open_ledger = open_ledger
        self.actor = actor
        self.jobs = jobs
        self.chunk_size = chunk_size
        self.on_problem = on_problem
        self.summary = Summary()
        self.workers: list[Worker] = []
        self.owner: dict[str, Share] = {}  # key -> the last share sent that has it
        self.outstanding: dict[int, Share] = {}  # shares not yet answered, by number
        self.numbers = count()
        self.held: list[Problem] = []  # reported once every earlier line is posted
        # Keys of lines taken up earlier in this run: a later line with one is skipped, as
        # in one process, even when a different worker took the first (BulkPoster.seen).
        self.seen: set[str] = set()
        self._here: BulkPoster | None = None

    def post(self, lines: Iterable[bytes]) -> Summary:
        windows = chunks(lines, self.jobs * self.chunk_size)
        first = next(windows, None)
        if first is None:
            return self.summary
        if len(first) < self.jobs * self.chunk_size:  # one window: not worth the processes
            with few_collections():
                for start in range(0, len(first), self.chunk_size):
                    self._post_here(first[start : start + self.chunk_size])
            return self.summary
        self._start_workers()  # before this process opens the store: nothing open is forked
        self.summary.jobs = self.jobs
        try:
            with few_collections():
                for window in chain([first], windows):
                    # Grouped here while the workers post earlier windows.
                    for step in self._steps(window):
                        if isinstance(step, Grouping):
                            self._schedule(step)
                        else:
                            self._drain()
                            self._post_here(step)
                    while any(len(w.queue) >= AHEAD for w in self.workers):
                        self._pump()
                self._drain()
        finally:
            self._stop_workers()
        return self.summary

    # -- this process -----------------------------------------------------------------

    def _here_poster(self) -> BulkPoster:
        if self._here is None:
            self._here = BulkPoster(self.open_ledger(), self.actor, chunk_size=self.chunk_size)
        return self._here

    def _post_here(self, numbered: Numbered) -> None:
        poster = self._here_poster()
        poster.summary, poster.seen = Summary(), self.seen
        poster.post_numbered([numbered])
        self._count(poster.summary)

    def _owners(self, codes: list[str]) -> dict[str, UUID]:
        """The records of codes arranged before this window and committed. A code that an
        uncommitted share arranges is a key of that share, as is its record's id, so lines
        naming the record either way follow that share to its worker."""
        if not codes:
            return {}
        from ledger.batch import Batch

        batch = Batch(self._here_poster().ledger)
        claims = {code: batch.claim(code) for code in codes}
        return {code: claim.record_id for code, claim in claims.items() if claim is not None}

    def _steps(self, window: Numbered) -> list[Grouping | Numbered]:
        """The window as groupings for the workers, cut at lines that change actors."""
        decoded = [line_keys(text) for _, text in window]
        steps: list[Grouping | Numbered] = []
        start = 0
        for index, data in enumerate(decoded):
            if changes_actors(data):
                if index > start:
                    steps.append(Grouping(window[start:index], decoded[start:index]))
                steps.append(window[index : index + 1])
                start = index + 1
        if start < len(window):
            steps.append(Grouping(window[start:], decoded[start:]))
        return steps

    # -- scheduling ---------------------------------------------------------------------

    def _schedule(self, grouping: Grouping) -> None:
        """Give each group to the worker that has its keys, or to the least loaded."""
        taken: dict[Worker, list[Group]] = {}
        planned = {w: w.load for w in self.workers}
        for group in grouping.groups(self._owners):
            holders = self._holders(group)
            while len(holders) > 1:  # wait until all but one of them have committed
                self._pump()
                holders = self._holders(group)
            worker = holders.pop() if holders else min(self.workers, key=planned.__getitem__)
            taken.setdefault(worker, []).append(group)
            planned[worker] += len(group.lines)
        for worker, groups in taken.items():
            self._queue(worker, groups)
        self._send_ready()

    def _holders(self, group: Group) -> set[Worker]:
        owner = self.owner
        return {owner[key].worker for key in group.keys if key in owner}

    def _queue(self, worker: Worker, groups: list[Group]) -> None:
        keys = set().union(*(g.keys for g in groups))
        share = Share(
            number=next(self.numbers),
            worker=worker,
            lines=sorted(chain.from_iterable(g.lines for g in groups)),
            keys=keys,
            ids=set().union(*(g.ids for g in groups)),
        )
        for key in keys:
            self.owner[key] = share
        self.outstanding[share.number] = share
        worker.queue.append(share)

    def _send_ready(self) -> None:
        for worker in self.workers:
            if worker.posting is None and worker.queue:
                share = worker.queue.popleft()
                try:
                    worker.conn.send((share.lines, share.ids & self.seen, share.ids))
                except OSError:
                    raise _worker_stopped() from None
                worker.posting = share

    def _pump(self) -> None:
        """Wait for at least one answer, take every answer in, send what is ready."""
        busy = {w.conn: w for w in self.workers if w.posting is not None}
        if not busy:
            raise RuntimeError("nothing is being posted")  # a scheduling mistake
        for conn in wait(list(busy)):
            self._answered(busy[conn])  # type: ignore[index]
        self._send_ready()

    def _drain(self) -> None:
        """Every share sent or queued has been committed."""
        while self.outstanding:
            self._pump()

    def _answered(self, worker: Worker) -> None:
        share = worker.posting
        assert share is not None
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):  # closed, or reset by a worker that was killed
            raise _worker_stopped() from None
        if kind == "error":
            raise payload
        summary, taken = payload
        worker.posting = None
        del self.outstanding[share.number]
        for key in share.keys:
            if self.owner.get(key) is share:
                del self.owner[key]
        self.seen |= taken
        self._count(summary)

    def _count(self, part: Summary) -> None:
        """Count a part in; its problems are reported once every earlier line is posted."""
        problems, part.problems = part.problems, []
        self.summary.add(part)
        self.held.extend(problems)
        first_open = min((s.first for s in self.outstanding.values()), default=None)
        ready = [p for p in self.held if first_open is None or p.line < first_open]
        if ready:
            self.held = [p for p in self.held if first_open is not None and p.line >= first_open]
            ready.sort(key=lambda p: p.line)
            self.summary.problems.extend(ready)
            for problem in ready:
                self.on_problem(problem)

    # -- the workers ------------------------------------------------------------------

    def _start_workers(self) -> None:
        context = multiprocessing.get_context("fork")
        for _ in range(self.jobs):
            mine, theirs = context.Pipe()
            parents_ends = [w.conn for w in self.workers] + [mine]
            process = context.Process(
                target=_work,
                args=(theirs, parents_ends, self.open_ledger, self.actor, self.chunk_size),
                daemon=True,
            )
            process.start()
            theirs.close()
            self.workers.append(Worker(process, mine))
        for worker in self.workers:  # each opened the store, or its error is raised here
            try:
                kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                raise _worker_stopped() from None
            if kind == "error":
                raise payload

    def _stop_workers(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError):
                worker.conn.send(None)
            worker.conn.close()
            worker.process.join(timeout=30)
            if worker.process.is_alive():
                worker.process.kill()
        self.workers = []


def _worker_stopped() -> Conflict:
    return Conflict("a posting worker stopped; run the file again (posted lines are skipped)")


def _work(
    conn: Connection,
    parents_ends: list[Connection],
    open_ledger: Callable[[], Any],
    actor: str | None,
    size: int,
) -> None:
    """A worker: open the store, then post each share it is sent as one chunk."""
    for end in parents_ends:  # forked copies: closed, so the parent's death reads as EOF
        end.close()
    try:
        poster = BulkPoster(open_ledger(), actor, chunk_size=size)
        conn.send(("ready", None))
        with few_collections():
            while (sent := conn.recv()) is not None:
                share, seen, ids = sent
                poster.seen |= seen  # taken up by other workers (this one's are kept)
                before = ids & poster.seen
                poster.summary = Summary()
                poster.post_numbered([share])
                conn.send(("done", (poster.summary, (ids & poster.seen) - before)))
    except (EOFError, BrokenPipeError):  # the parent is gone: what was committed stays
        return
    except BaseException as error:  # every other failure goes back as the answer
        with contextlib.suppress(OSError):
            conn.send(("error", sendable(error)))
