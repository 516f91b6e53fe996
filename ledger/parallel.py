"""Bulk posting on several processes: a file's lines split by what they touch.

Lines are read in windows of ``jobs x chunk size``. In a window, lines are joined into one
group when they name the same record (by its id or by its archival code), the same
archival code, or the same line id; groups share nothing a rule reads, so they can be
posted side by side. Each worker process posts its groups' lines in file order as one
chunk (ledger.bulk: one transaction, line ids in the same transaction). The next window
starts when every worker has committed this one, so no line overtakes an earlier line
it depends on. Lines that change actors, whom every other line reads, are posted alone
in this process, in their place in the file.

The outcome is the outcome of posting the file in order in one process: same lines
posted, refused and invalid, same events (tests/test_bulk_parallel.py). Problems are
reported in line order after each window.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import pickle
import re
from collections.abc import Callable, Iterable
from itertools import chain
from multiprocessing.connection import Connection
from typing import Any
from uuid import UUID

import orjson

from aggregates.errors import Conflict, LedgerError
from ledger.bulk import BulkPoster, Problem, Summary, chunks, few_collections

Numbered = list[tuple[int, bytes]]
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _record_key(ref: str) -> str:
    """The key of a record reference: "r" and its id, or "c" and an archival code."""
    if _CANONICAL_ID.fullmatch(ref):
        return "r" + ref
    try:
        return "r" + str(UUID(ref))
    except ValueError:
        return "c" + ref


def changes_actors(data: Any) -> bool:
    command = data.get("command") if isinstance(data, dict) else None
    return isinstance(command, str) and command.startswith("actor-")


class Grouping:
    """Lines joined when they share a key: "r" record id, "c" archival code, "i" line id
    (union-find over line indexes, the first line of each key standing for it)."""

    def __init__(self, lines: Numbered, decoded: list[Any]) -> None:
        self.lines = lines
        self.parent = list(range(len(lines)))
        self.first: dict[str, int] = {}
        self.referenced: set[str] = set()  # codes naming a record
        self.keys: set[str] = set()  # line ids
        arranged: set[str] = set()
        for index, data in enumerate(decoded):
            if not isinstance(data, dict):
                continue
            line_id, record, code = data.get("id"), data.get("record"), data.get("code")
            if isinstance(line_id, str):
                self._key("i" + line_id, index)
                self.keys.add(line_id)
            if isinstance(record, str) and record:
                key = _record_key(record)
                self._key(key, index)
                if key[0] == "c":
                    self.referenced.add(record)
            if isinstance(code, str) and data.get("command") == "arrange":
                self._key("c" + code, index)
                arranged.add(code)
        self.referenced -= arranged

    def _key(self, key: str, index: int) -> None:
        first = self.first.setdefault(key, index)
        if first != index:
            self._join(first, index)

    def _find(self, index: int) -> int:
        parent = self.parent
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    def _join(self, a: int, b: int) -> None:
        a, b = self._find(a), self._find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def shares(self, owners: Callable[[list[str]], dict[str, UUID]], jobs: int) -> list[Numbered]:
        """Up to ``jobs`` shares of whole groups, each in file order. ``owners`` names the
        records of codes arranged before this window, which lines here may name by id."""
        for code, record_id in owners(sorted(self.referenced)).items():
            by_id = self.first.get("r" + str(record_id))
            if by_id is not None:
                self._join(self.first["c" + code], by_id)
        groups: dict[int, list[int]] = {}
        for index in range(len(self.lines)):
            groups.setdefault(self._find(index), []).append(index)
        shares: list[list[int]] = [[] for _ in range(jobs)]
        for indexes in sorted(groups.values(), key=len, reverse=True):
            min(shares, key=len).extend(indexes)
        return [[self.lines[i] for i in sorted(share)] for share in shares if share]


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
        self.workers: list[tuple[Any, Connection]] = []
        self.busy: list[Connection] = []  # workers sent a share, not yet answered
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
                    # Grouped here while the workers post the previous window.
                    for step in self._steps(window):
                        self._wait()
                        if isinstance(step, Grouping):
                            self._send(step)
                        else:
                            self._post_here(step)
                self._wait()
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
        self._merge([poster.summary])

    def _owners(self, codes: list[str]) -> dict[str, UUID]:
        if not codes:
            return {}
        from ledger.batch import Batch

        batch = Batch(self._here_poster().ledger)
        claims = {code: batch.claim(code) for code in codes}
        return {code: claim.record_id for code, claim in claims.items() if claim is not None}

    def _steps(self, window: Numbered) -> list[Grouping | Numbered]:
        """The window as groupings for the workers, cut at lines that change actors."""
        decoded = [_decode(text) for _, text in window]
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

    # -- the workers ------------------------------------------------------------------

    def _send(self, grouping: Grouping) -> None:
        shares = grouping.shares(self._owners, len(self.workers))
        self.busy = [conn for (_, conn), _ in zip(self.workers, shares, strict=False)]
        for conn, share in zip(self.busy, shares, strict=True):
            try:
                conn.send((share, grouping.keys & self.seen))
            except OSError:
                raise _worker_stopped() from None

    def _wait(self) -> None:
        """Every worker has committed what it was sent."""
        busy, self.busy = self.busy, []
        self._merge([self._answer(conn) for conn in busy])

    def _answer(self, conn: Connection) -> Summary:
        """A worker's summary of what it was sent; the keys it took up join ``seen``."""
        try:
            kind, payload = conn.recv()
        except (EOFError, OSError):  # closed, or reset by a worker that was killed
            raise _worker_stopped() from None
        if kind == "error":
            raise payload
        summary, taken = payload
        self.seen |= taken
        assert isinstance(summary, Summary)
        return summary

    def _start_workers(self) -> None:
        context = multiprocessing.get_context("fork")
        for _ in range(self.jobs):
            mine, theirs = context.Pipe()
            parents_ends = [conn for _, conn in self.workers] + [mine]
            process = context.Process(
                target=_work,
                args=(theirs, parents_ends, self.open_ledger, self.actor, self.chunk_size),
                daemon=True,
            )
            process.start()
            theirs.close()
            self.workers.append((process, mine))
        for _, conn in self.workers:
            self._answer(conn)  # each opened the store, or its error is raised here

    def _stop_workers(self) -> None:
        for process, conn in self.workers:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        self.workers = []

    def _merge(self, parts: list[Summary]) -> None:
        """Count the parts in; their problems are reported in line order."""
        merged = Summary()
        for part in parts:
            merged.add(part)
        merged.problems.sort(key=lambda p: p.line)
        self.summary.add(merged)
        for problem in merged.problems:
            self.on_problem(problem)


def _worker_stopped() -> Conflict:
    return Conflict("a posting worker stopped; run the file again (posted lines are skipped)")


def _decode(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


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
        conn.send(("ready", (Summary(), set())))
        with few_collections():
            while (sent := conn.recv()) is not None:
                share, seen = sent
                poster.summary, poster.seen = Summary(), set(seen)
                poster.post_numbered([share])
                conn.send(("done", (poster.summary, poster.seen - seen)))
    except (EOFError, BrokenPipeError):  # the parent is gone: what was committed stays
        return
    except BaseException as error:  # every other failure goes back as the answer
        with contextlib.suppress(OSError):
            conn.send(("error", _sendable(error)))


def _sendable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        message = error.line() if isinstance(error, LedgerError) else f"{error}"
        return LedgerError(message.removeprefix("error: "))
