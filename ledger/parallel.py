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
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from typing import Any
from uuid import UUID

import orjson

from aggregates.errors import Conflict, LedgerError
from ledger.bulk import BulkPoster, Problem, Summary, chunks, few_collections

Numbered = list[tuple[int, bytes]]


class _Groups:
    """Union-find over the keys lines share: ("r", record id), ("c", code), ("i", line id)."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(self, key: tuple[str, str]) -> tuple[str, str]:
        parent = self.parent.setdefault(key, key)
        if parent == key:
            return key
        root = self.find(parent)
        self.parent[key] = root
        return root

    def join(self, keys: list[tuple[str, str]]) -> tuple[str, str]:
        root = self.find(keys[0])
        for key in keys[1:]:
            other = self.find(key)
            if other != root:
                self.parent[other] = root
        return root


def _record_key(ref: str) -> tuple[str, str]:
    try:
        return ("r", str(UUID(ref)))
    except ValueError:
        return ("c", ref)


def changes_actors(data: Any) -> bool:
    command = data.get("command") if isinstance(data, dict) else None
    return isinstance(command, str) and command.startswith("actor-")


def split(
    window: Numbered, decoded: list[Any], owners: Callable[[list[str]], dict[str, UUID]], jobs: int
) -> list[Numbered]:
    """The window's lines as ``jobs`` shares of whole groups, each in file order."""
    groups = _Groups()
    keys_of: list[list[tuple[str, str]]] = []
    referenced: set[str] = set()
    arranged: set[str] = set()
    for number, data in zip((n for n, _ in window), decoded, strict=True):
        keys: list[tuple[str, str]] = [("n", str(number))]
        if isinstance(data, dict):
            if isinstance(data.get("id"), str):
                keys.append(("i", data["id"]))
            record = data.get("record")
            if isinstance(record, str) and record:
                key = _record_key(record)
                keys.append(key)
                if key[0] == "c":
                    referenced.add(record)
            code = data.get("code")
            if data.get("command") == "arrange" and isinstance(code, str):
                keys.append(("c", code))
                arranged.add(code)
        keys_of.append(keys)
        groups.join(keys)
    # A code arranged before this window names a record that other lines may name by id.
    for code, record_id in owners(sorted(referenced - arranged)).items():
        groups.join([("c", code), ("r", str(record_id))])
    members: dict[tuple[str, str], list[int]] = {}
    for index, keys in enumerate(keys_of):
        members.setdefault(groups.find(keys[0]), []).append(index)
    shares: list[list[int]] = [[] for _ in range(jobs)]
    for indexes in sorted(members.values(), key=len, reverse=True):
        min(shares, key=len).extend(indexes)
    return [[window[i] for i in sorted(share)] for share in shares if share]


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
        self._here: BulkPoster | None = None

    def post(self, lines: Iterable[bytes]) -> Summary:
        windows = chunks(lines, self.jobs * self.chunk_size)
        first = next(windows, None)
        if first is None:
            return self.summary
        if len(first) < self.jobs * self.chunk_size:  # one window: not worth the processes
            self._post_here(first)
            return self.summary
        self._start_workers()  # before this process opens the store: nothing open is forked
        self.summary.jobs = self.jobs
        try:
            with few_collections():
                for window in _chain(first, windows):
                    self._post_window(window)
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
        poster.summary = Summary()
        poster.post_numbered([numbered])
        self._merge([poster.summary])

    def _owners(self, codes: list[str]) -> dict[str, UUID]:
        if not codes:
            return {}
        from ledger.batch import Batch

        batch = Batch(self._here_poster().ledger)
        claims = {code: batch.claim(code) for code in codes}
        return {code: claim.record_id for code, claim in claims.items() if claim is not None}

    def _post_window(self, window: Numbered) -> None:
        decoded = [_decode(text) for _, text in window]
        start = 0
        for index, data in enumerate(decoded):
            if changes_actors(data):
                self._post_shares(window[start:index], decoded[start:index])
                self._post_here(window[index : index + 1])
                start = index + 1
        self._post_shares(window[start:], decoded[start:])

    # -- the workers ------------------------------------------------------------------

    def _post_shares(self, lines: Numbered, decoded: list[Any]) -> None:
        if not lines:
            return
        shares = split(lines, decoded, self._owners, len(self.workers))
        busy = [conn for (_, conn), _ in zip(self.workers, shares, strict=False)]
        for conn, share in zip(busy, shares, strict=True):
            conn.send(share)
        self._merge([self._answer(conn) for conn in busy])

    def _answer(self, conn: Connection) -> Summary:
        try:
            kind, payload = conn.recv()
        except EOFError:
            raise Conflict(
                "a posting worker stopped; run the file again (posted lines are skipped)"
            ) from None
        if kind == "error":
            raise payload
        assert isinstance(payload, Summary)
        return payload

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
        total = self.summary
        problems: list[Problem] = []
        for part in parts:
            total.posted += part.posted
            total.skipped += part.skipped
            total.refused += part.refused
            total.invalid += part.invalid
            total.events += part.events
            problems += part.problems
        problems.sort(key=lambda p: p.line)
        total.problems += problems
        for problem in problems:
            self.on_problem(problem)


def _decode(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def _chain(first: Numbered, rest: Iterator[Numbered]) -> Iterator[Numbered]:
    yield first
    yield from rest


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
        conn.send(("ready", Summary()))
        with few_collections():
            while (share := conn.recv()) is not None:
                poster.summary = Summary()
                poster.post_numbered([share])
                conn.send(("done", poster.summary))
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
