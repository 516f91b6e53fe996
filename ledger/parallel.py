"""Bulk posting on several processes: a file's lines sent by what they touch.

Lines are read in windows of ``jobs x chunk size``. Each line goes to the worker that is
home to its keys (ledger.routing: the record it names, by id or by archival code, the
code it claims), a line with new keys only to the least loaded worker; what a window
sends a worker is one share, posted as one chunk (ledger.bulk: one transaction, line ids
in the same transaction), in file order. So lines that share anything a rule reads are
posted by one worker in file order. A key's home is forgotten once the store holds all
its lines and its worker has answered a later share (see ``_forget``): the homes kept are
those of the lines in flight, however long the file. A code keeps with it the records its
lines named, so that a record named by code and by id keeps one home. A line whose id an
earlier line still being posted has goes to that line's worker, after it; a line whose id
an earlier, committed line took up without a key in the store, or with a refused attempt of
this run's (ledger.bulk: BulkPoster.seen), is sent with that id, so the worker skips it, as
one process would. A line whose keys have two homes (a code claimed for a second record,
say) is sent once everything sent before it is committed, and its keys move to one home.
There is no barrier between windows otherwise: each worker starts its next share as soon
as it has committed the last. Lines that change actors, whom every other line reads, are
posted in this process, in their place in the file, once all work is committed (lines of
them in a row together, in chunks, as one process would).

The outcome is the outcome of posting the file in order in one process: same lines
posted, refused and invalid, same events (tests/test_bulk_parallel.py). Problems are
reported in line order, each once every earlier line has been posted.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain, count
from multiprocessing.connection import Connection, wait
from queue import SimpleQueue
from typing import Any

from ledger.batch import Batch
from ledger.bulk import BulkPoster, Digest, Problem, Summary
from ledger.lines import chunks, few_collections
from ledger.posting_worker import work, worker_stopped
from ledger.routing import LineKeys, Numbered, RouteKeys, line_keys, route_keys

AHEAD = 2  # shares queued per worker behind those sent to it (windows read ahead)
# Shares sent to a worker before it answers: it checks the next while the one before
# commits (ledger.bulk), so it needs the next at hand.
IN_FLIGHT = 2
ANSWER_WAIT = 60  # seconds to wait for a share's answer once the post has failed
STOP_WAIT = 30  # seconds to wait for a worker to take its last share, then to exit
NOWHERE = -1  # no worker is home to a key yet


def changes_actors(data: LineKeys | None) -> bool:
    command = data.command if data is not None else None
    return isinstance(command, str) and command.startswith("actor-")


@dataclass(eq=False)
class Share:
    """Lines sent to one worker as one chunk, with the ids among them that other
    processes took up before (so the worker skips them, as one process would)."""

    number: int
    worker: Worker
    lines: Numbered
    taken: list[tuple[str, Digest]]
    ids: list[str]  # the lines' ids
    keys: list[str]  # the lines' keys (ledger.routing)
    routed: tuple[int, int]  # (worker index, routing round) of its lines' ids in ``pending``

    @property
    def first(self) -> int:
        return self.lines[0][0]


@dataclass
class Draft:
    """What routing has given one worker since the last send: the next share."""

    lines: Numbered = field(default_factory=list)
    taken: list[tuple[str, Digest]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Worker:
    process: Any
    conn: Connection
    queue: deque[Share] = field(default_factory=deque)  # to send, in order
    sent: deque[Share] = field(default_factory=deque)  # sent, not yet answered, in order
    # The refused lines of the first share sent, sent just before its commit: if the
    # worker dies before it answers, the store's keys tell whether they were committed.
    committing: list[Problem] = field(default_factory=list)
    # What to send, sent in order on a thread of its own (see ``send``).
    outbox: SimpleQueue[Any] = field(default_factory=SimpleQueue)
    sender: threading.Thread | None = None
    # The keys of the last share it answered, and that share's mark (see ``home``).
    answered_keys: list[str] = field(default_factory=list)
    answered_mark: int = NOWHERE

    @property
    def load(self) -> int:
        return sum(len(s.lines) for s in self.queue) + sum(len(s.lines) for s in self.sent)

    def send(self, message: Any) -> None:
        """Send on this worker's own thread. A share is far larger than the pipe holds,
        and a worker reads its next share only once it has checked the one before:
        sent from the routing's thread, it would hold up routing, answers and the other
        workers' shares until then."""
        if self.sender is None:
            self.sender = threading.Thread(target=self._sending, daemon=True)
            self.sender.start()
        self.outbox.put(message)

    def _sending(self) -> None:
        while True:
            message = self.outbox.get()
            try:
                self.conn.send(message)
            except OSError:  # the worker died: waiting for its answer reads EOF
                return
            if message is None:
                return

    def join(self) -> None:
        """Wait for the worker to take what was sent (the last message, None, tells it
        to stop) and to exit."""
        if self.sender is not None:
            self.sender.join(timeout=STOP_WAIT)
            if self.sender.is_alive():  # not reading: the kill breaks the pipe, ending the send
                self.process.kill()
                self.sender.join(timeout=STOP_WAIT)
        self.conn.close()
        self.process.join(timeout=STOP_WAIT)
        if self.process.is_alive():
            self.process.kill()


class ParallelPoster:
    """Posts a file with ``jobs`` worker processes; the interface of BulkPoster."""

    def __init__(
        self,
        open_ledger: Callable[[], Any],
        actor: str | None,
        *,
        jobs: int,
        chunk_size: int = 5000,
        on_problem: Callable[[Problem], None] | None = None,
    ) -> None:
        self.open_ledger = open_ledger
        self.actor = actor
        self.jobs = jobs
        self.chunk_size = chunk_size
        self.on_problem = on_problem  # as BulkPoster's: without one, kept in the summary
        self.summary = Summary()
        self.workers: list[Worker] = []
        # Key -> the mark of the last share it went to: round x jobs + worker index (the
        # worker is home to it). Kept while that share's lines are in flight (``_forget``).
        self.home: dict[str, int] = {}
        # Code key -> the record keys of the lines that named the code with a record (an
        # arrangement; a line naming a record by a code the store knows): a line naming
        # the code goes where they are, and keeps their homes as long as the code's.
        self.links: dict[str, list[str]] = {}
        # Line id -> (worker index, routing round) of the last line with it that is not
        # answered yet: a line with the same id follows it to that worker.
        self.pending: dict[str, tuple[int, int]] = {}
        self.round = 0  # lines routed between two sends make one round
        self.outstanding: dict[int, Share] = {}  # shares not yet answered, by number
        self.numbers = count()
        self.held: list[Problem] = []  # reported once every earlier line is posted
        # Line ids taken up without a key in the store, or refused (BulkPoster.seen), by this
        # process and, as they answer, by the workers: a later line with one is skipped.
        self.seen: dict[str, Digest] = {}
        self._here: BulkPoster | None = None

    def post(self, lines: Iterable[bytes]) -> Summary:
        windows = chunks(lines, self.jobs * self.chunk_size)
        first = next(windows, None)
        if first is None:
            self._here_poster()  # nothing to post, but the store must be there (exit 4)
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
                    self._route(window)  # while the workers post earlier windows
                    while any(len(w.queue) >= AHEAD for w in self.workers):
                        self._pump()
                self._drain()
        except Exception:
            self._report_held()
            raise
        finally:
            self._stop_workers()
        return self.summary

    def _report_held(self) -> None:
        """The post failed (a worker died, say): take the answers of the shares the other
        workers are still posting (they commit regardless), and the refused lines of a
        share that a dead worker committed without answering; then report every problem
        held back, so that no refused or malformed line that a re-run will skip as posted
        goes unreported."""
        for worker in self.workers:
            with contextlib.suppress(Exception):  # a dead worker's pipe ends in EOF
                while worker.sent and worker.conn.poll(ANSWER_WAIT):
                    self._answered(worker)
            if worker.sent:
                self._committed_unanswered(worker.committing)
        held, self.held = sorted(self.held, key=lambda p: p.line), []
        self._report(held)

    def _committed_unanswered(self, refused: list[Problem]) -> None:
        """Hold the refused lines a worker sent ahead of a commit it never answered, if
        the store has their keys: it committed (it found none of them there before)."""
        if refused:
            recorder: Any = self._here_poster().ledger.recorder
            found = recorder.posted_ids([p.id for p in refused if p.id])
            committed = [p for p in refused if p.id in found]
            self.summary.refused += len(committed)
            self.held.extend(committed)

    # -- this process -----------------------------------------------------------------

    def _here_poster(self) -> BulkPoster:
        if self._here is None:
            self._here = BulkPoster(self.open_ledger(), self.actor, chunk_size=self.chunk_size)
        return self._here

    def _post_here(self, numbered: Numbered) -> None:
        poster = self._here_poster()
        poster.summary, poster.seen = Summary(), self.seen
        size = self.chunk_size
        poster.post_numbered(numbered[i : i + size] for i in range(0, len(numbered), size))
        self._count(poster.summary)

    def _holder(self, code: str) -> str | None:
        """The "r" key of the record that holds ``code`` in the store (a code with no
        home: none of this run's lines in flight names it)."""
        claim = Batch(self._here_poster().ledger).claim(code)
        return "r" + str(claim.record_id) if claim is not None else None

    def _holders(self, keyed: list[RouteKeys]) -> dict[str, str]:
        """The "r" keys of the records that hold, in the store, the codes that the lines
        of ``keyed`` name or claim and that have no home, read at once. Only a code found
        is taken from here for a line naming it (claims never change); one not found then
        may have been claimed since by a line of this run, and is looked up again.
        (Routing reads them again after it waited for commits: what was not found before
        may be found then.)"""
        home, codes = self.home, set()
        for _, named, claimed in keyed:
            if named is not None and "c" + named not in home:
                codes.add(named)
            if claimed is not None and "c" + claimed not in home:
                codes.add(claimed)
        holders = self._here_poster().ledger.code_holders(list(codes))
        return {code: "r" + str(record_id) for code, record_id in holders.items()}

    # -- routing ------------------------------------------------------------------------

    def _route(self, window: Numbered) -> None:
        """Send each line of the window to the home of its keys (see the module's doc)."""
        home, links, pending, seen = self.home, self.links, self.pending, self.seen
        jobs = self.jobs
        workers = range(len(self.workers))
        drafts = [Draft() for _ in workers]
        load = [w.load for w in self.workers]
        holders: dict[str, str] | None = None  # read at the window's first code with no home
        parsed = [line_keys(text) for _, text in window]
        keyed = [route_keys(data) for data in parsed]
        actors: Numbered = []  # lines in a row that change actors: posted here together
        for index, line in enumerate(window):
            data = parsed[index]
            if changes_actors(data):
                if not actors:
                    self._send(drafts)
                    self._drain()
                    holders = None  # homes were forgotten: read again
                actors.append(line)
                continue
            if actors:
                self._post_here(actors)
                actors = []
            keys, named, claimed = keyed[index]
            code = None
            if named is not None:
                code = "c" + named
                holder = None
                if code not in home:
                    if holders is None:
                        holders = self._holders(keyed[index:])
                    holder = holders.get(named) or self._holder(named)
                if holder is not None:
                    keys.append(holder)
            if claimed is not None:
                # A code claimed before, in flight or in the store: this claim may be
                # refused (R3) and the code stay with the record that holds it, so the line
                # goes with that record's lines too, and a later line naming the code
                # follows both records (the code is linked to them).
                claim = "c" + claimed
                if claim in links:
                    keys += links[claim]
                elif claim not in home:
                    if holders is None:
                        holders = self._holders(keyed[index:])
                    holder = holders.get(claimed)
                    if holder is not None:
                        keys.append(holder)
            linking = len(keys) > 1  # an arrangement, or a code the store knows
            if code is not None and code in links:
                keys += links[code]
            target = NOWHERE
            for key in keys:
                mark = home.get(key)
                if mark is not None and mark % jobs != target:
                    if target != NOWHERE:
                        target = self._settle(keys, drafts)
                        holders = None
                        break
                    target = mark % jobs
            line_id = data.id if data is not None and isinstance(data.id, str) else None
            if line_id is not None and line_id in pending:
                at = pending[line_id][0]
                if target == NOWHERE:
                    target = at
                elif at != target:
                    target = self._settle(keys, drafts)
                    holders = None
            if target == NOWHERE:
                target = min(workers, key=load.__getitem__)
            mark = self.round * jobs + target
            for key in keys:
                home[key] = mark
            if linking or (code is not None and code not in links and len(keys) > 1):
                self._link(keys)  # (the second: its links forgotten while _settle waited)
            draft = drafts[target]
            draft.keys += keys
            if line_id is not None:
                if line_id in seen:
                    draft.taken.append((line_id, seen[line_id]))  # elsewhere (BulkPoster.seen)
                pending[line_id] = (target, self.round)
                draft.ids.append(line_id)
            draft.lines.append(line)
            load[target] += 1
        if actors:
            self._post_here(actors)
        self._send(drafts)

    def _link(self, keys: list[str]) -> None:
        """Keep the record keys of a line with a code key among the code's links."""
        records = [k for k in keys if k[0] == "r"]
        for key in keys:
            if key[0] == "c":
                linked = self.links.get(key)
                if linked is None:
                    self.links[key] = list(records)
                else:
                    linked += [r for r in records if r not in linked]

    def _settle(self, keys: list[str], drafts: list[Draft]) -> int:
        """A line whose keys (or keys and id) have two homes: once everything routed
        before it is committed, it goes to the home of its first key that has one; its
        keys then move there."""
        self._send(drafts)
        self._drain()
        return next((self.home[k] % self.jobs for k in keys if k in self.home), NOWHERE)

    def _send(self, drafts: list[Draft]) -> None:
        """Queue what is routed so far as one share per worker, and send what is ready."""
        for index, draft in enumerate(drafts):
            if draft.lines:
                worker = self.workers[index]
                number, routed = next(self.numbers), (index, self.round)
                share = Share(
                    number, worker, draft.lines, draft.taken, draft.ids, draft.keys, routed
                )
                self.outstanding[share.number] = share
                worker.queue.append(share)
                drafts[index] = Draft()
        self.round += 1
        self._send_ready()

    def _send_ready(self) -> None:
        for worker in self.workers:
            while len(worker.sent) < IN_FLIGHT and worker.queue:
                share = worker.queue.popleft()
                worker.send((share.lines, share.taken))
                worker.sent.append(share)

    def _pump(self) -> None:
        """Wait for at least one answer, take every answer in, send what is ready."""
        busy = {w.conn: w for w in self.workers if w.sent}
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
        share = worker.sent[0]
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):  # closed, or reset by a worker that was killed
            raise worker_stopped() from None
        if kind == "error":
            raise payload
        if kind == "committing":  # the share's refused lines, ahead of its commit
            worker.committing = payload
            return
        summary, taken = payload
        worker.sent.popleft()
        worker.committing = []
        del self.outstanding[share.number]
        self._forget(worker, share)
        pending = self.pending
        for line_id in share.ids:
            if pending.get(line_id) == share.routed:
                del pending[line_id]
        self.seen |= taken
        self._count(summary)

    def _forget(self, worker: Worker, share: Share) -> None:
        """The worker answered ``share``: forget the homes of the keys whose last lines
        were in the share it answered before. The store holds those lines, and the worker
        checked ``share`` (which has none of them) on top of that one: from the next share
        on, no worker starts from a copy of their records that the store may have moved
        past (ledger.bulk seeds a chunk with what the chunk before changed), so a later
        line with such a key may go to any worker, as a new one would."""
        keys, mark = worker.answered_keys, worker.answered_mark
        worker.answered_keys = share.keys
        worker.answered_mark = share.routed[1] * self.jobs + share.routed[0]
        home, links = self.home, self.links
        for key in keys:
            if home.get(key) == mark:
                del home[key]
                links.pop(key, None)

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
            self._report(ready)

    def _report(self, problems: list[Problem]) -> None:
        if self.on_problem is None:
            self.summary.problems.extend(problems)
        else:
            for problem in problems:
                self.on_problem(problem)

    # -- the workers ------------------------------------------------------------------

    def _start_workers(self) -> None:
        context = multiprocessing.get_context("fork")
        for _ in range(self.jobs):
            mine, theirs = context.Pipe()
            parents_ends = [w.conn for w in self.workers] + [mine]
            process = context.Process(
                target=work,
                args=(
                    theirs,
                    os.getpid(),
                    parents_ends,
                    self.open_ledger,
                    self.actor,
                    self.chunk_size,
                ),
                daemon=True,
            )
            process.start()
            theirs.close()
            self.workers.append(Worker(process, mine))
        for worker in self.workers:  # each opened the store, or its error is raised here
            try:
                kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                raise worker_stopped() from None
            if kind == "error":
                raise payload

    def _stop_workers(self) -> None:
        for worker in self.workers:
            worker.send(None)  # after what it was sent: it stops once that is posted
        for worker in self.workers:
            worker.join()
        self.workers = []
