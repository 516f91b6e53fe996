"""Bulk posting: JSON Lines of commands, many per transaction, each line at most once.

Every line names an idempotency key (``id``). Keys are written in the same transaction
as the line's events, so after a crash or a kill a re-run skips what was posted and
posts the rest. A key is kept with its line's content digest (ledger.lines): a line whose
id an earlier line took up is skipped only if it asks for the same thing; if it asks for
something else, it is reported as invalid, on every run, never skipped unseen. A chunk
of lines is one batch (one transaction), committed while the
next chunk is checked (see BulkPoster); if a concurrent writer collides with it, the
chunk is re-run carefully, every line checked again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Set
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from eventsourcing.persistence import IntegrityError

from aggregates.errors import Conflict, LedgerError, NotFound, RuleViolation
from ledger.application import Ledger
from ledger.batch import Batch
from ledger.handlers import handle
from ledger.lines import Line, chunks, few_collections, parse
from ledger.recorders import PostedLine
from ledger.requests import Arrange, Receive, RecordRequest

RETRIES = 5  # collisions in a row before a chunk gives up (exit 5)
PIECE_DIVISOR = 4  # after a collision, a chunk goes on in pieces this much smaller


def refused_outcome(rule: str) -> str:
    """A refused attempt's line, as the posted-line table keeps it: with its rule."""
    return f"refused {rule}"


def is_refused(outcome: str | None) -> bool:
    """Whether a posted-line outcome is a refused attempt's (stores written before the
    rule was kept hold a bare "refused")."""
    return outcome is not None and outcome.startswith("refused")


def refused_already(outcome: str) -> tuple[str, str]:
    """The problem of a line whose id another run's refused attempt took, naming the
    rule where the store kept it."""
    rule = outcome.partition(" ")[2]
    named = f" ({rule})" if rule else ""
    return (
        "refused",
        f"refused{named} already: its id was taken by a refused attempt "
        "(see ledger audit --refused)",
    )


def check_keeps_digests(ledger: Ledger) -> None:
    """Refuse to post into a store whose posted-line table has no digest column (made
    before it was kept; `ledger init` adds it): its keys could not tell a re-run's line
    from another line given the same id."""
    if not ledger.recorder.keeps_digests():  # type: ignore[attr-defined]
        raise NotFound(
            "this store was made before posted lines kept their content's digest; "
            "run `ledger init` once to upgrade it"
        )


Digest = bytes | None  # of the line that took up an id (ledger.lines); none: not kept


def id_taken(key: str) -> str:
    """The problem of a line whose id another line took up, asking for something else
    (an earlier line of the file, or of another post: the same words for both, as the
    outcome of a file does not depend on how it is chunked)."""
    return (
        f"error: id {key!r} is taken by another line, which asks for something else; "
        "give each line an id of its own"
    )


@dataclass
class Problem:
    line: int
    id: str | None
    outcome: str  # "refused" or "invalid"
    message: str


@dataclass
class Summary:
    posted: int = 0
    skipped: int = 0
    refused: int = 0
    invalid: int = 0
    events: int = 0
    problems: list[Problem] = field(default_factory=list)
    jobs: int = 1  # processes that posted (ledger.parallel)

    def add(self, other: Summary) -> None:
        """Count another part of the run in (its problems after these)."""
        self.posted += other.posted
        self.skipped += other.skipped
        self.refused += other.refused
        self.invalid += other.invalid
        self.events += other.events
        self.problems.extend(other.problems)

    @property
    def exit_code(self) -> int:
        return 2 if self.invalid else 3 if self.refused else 0


class BulkPoster:
    """Posts chunks of lines, one transaction each.

    A chunk's rows are built in this thread. Its commit runs on a thread of its own (the
    database driver lets go of the interpreter while the database syncs) while the next
    chunk is parsed and checked on top of it: that batch starts from the aggregates the
    committing chunk changed, and treats its line ids as taken. Only then does it wait
    for that commit and write its own rows. On SQLite the rows are inserted in this
    thread, before the commit starts; on PostgreSQL on the commit thread too, where the
    wait for the server to take them in passes while the next chunk is checked (the
    recorders' ``inserts_on_commit_thread`` says why).

    A collision with a concurrent writer has the chunk posted again carefully, every line
    checked against the store; if it is found on the commit thread, the chunk checked on
    top of it is checked again, from the store. If a commit fails otherwise, the run
    fails with it; nothing checked on top of it is written, and a re-run posts what is
    left.
    """

    def __init__(
        self,
        ledger: Ledger,
        actor: str | None,
        *,
        chunk_size: int = 5000,
        stop_on_error: bool = False,
        on_problem: Callable[[Problem], None] | None = None,
        before_commit: Callable[[list[Problem]], None] | None = None,
        on_settled: Callable[[Summary, dict[str, Digest]], None] | None = None,
    ) -> None:
        self.ledger = ledger
        self.actor = actor
        self.chunk_size = chunk_size
        self.stop_on_error = stop_on_error
        # Each problem goes to ``on_problem`` once its chunk is committed; without one,
        # it is kept in the summary (with one, it is not kept: a file's refused lines
        # would fill the memory of a long run).
        self.on_problem = on_problem
        self.summary = Summary()
        # Line ids this run took up that no posted-line key in the store records (refused
        # under a rule whose refusals are not kept, or failed), or whose refused attempt
        # this run recorded: a later line with one is skipped, as the store's keys make it
        # skip the rest (a key the store holds as refused, not in here, was refused by
        # another run, and its line is named: _ChunkRun._refused_elsewhere). Only these
        # are kept in memory, so a file of millions of lines does not hold millions of ids.
        self.seen: dict[str, Digest] = {}
        # Called with a chunk's problems just before its transaction commits (a posting
        # worker sends them ahead, in case it dies between its commit and its answer).
        self.before_commit = before_commit
        # Called with each committed chunk's counts and what it adds to ``seen`` (a
        # posting worker answers with them), instead of adding them to the summary.
        self.on_settled = on_settled
        self.writing: _ChunkRun | None = None  # the chunk whose transaction is under way
        # Whether to look a chunk's line ids up in the store before checking it. Once a
        # chunk's look-up finds none of them, the file is new from there on: later
        # chunks skip it. A line posted before all the same collides with its posted-line
        # key in the store (the key table's primary key), or is refused without one
        # (then _posted_meanwhile finds the key); a collision has the chunk posted again
        # carefully, looked up, and look-ups resume.
        self.look_up = True
        check_keeps_digests(ledger)  # (each process: nothing open is forked, ledger.parallel)

    def post(self, lines: Iterable[bytes]) -> Summary:
        with few_collections():
            self.post_numbered(chunks(lines, self.chunk_size))
        return self.summary

    def post_numbered(self, numbered_chunks: Iterable[list[tuple[int, bytes]]]) -> None:
        """Post chunks of (line number, text), one transaction each, all committed on
        return."""
        try:
            for chunk in numbered_chunks:
                if not self.submit(chunk):
                    break
        except BaseException:
            self.abandon()
            raise
        self.settle()

    def submit(self, chunk: list[tuple[int, bytes]]) -> bool:
        """Check a chunk's lines and start writing them (the chunk before is committed
        by then); False if a line stopped the run (--stop-on-error)."""
        lines = [parse(n, text, self.actor) for n, text in chunk]
        if self.stop_on_error:
            self.settle()
            return self._post_now(lines, careful=False)
        run = _ChunkRun(self, lines, careful=False, after=self.writing, look_up=self.look_up)
        run.check()
        if not self.settle():  # checked on top of a chunk that was not written: again
            run = _ChunkRun(self, lines, careful=False)
            run.check()
        if run.found is not None and not run.found:
            self.look_up = False
        try:
            run.start()
        except IntegrityError:  # a concurrent writer, or a collision the fast path skipped
            return self._post_now(lines, careful=True)
        self.writing = run
        return True

    def settle(self) -> bool:
        """Wait for the chunk being written to commit, and count it in. A collision
        found on the commit thread (ledger.recorders: inserts_on_commit_thread) has the
        chunk posted again carefully, here: then False, as what was checked on top of it
        must be checked again; so it is when a failed line's id was found in the store
        after all (``_posted_meanwhile``), as the next chunk took it for this run's. A
        commit that fails otherwise ends the run, and nothing checked on top of it is
        written."""
        run, self.writing = self.writing, None
        if run is None:
            return True
        try:
            run.join()
        except IntegrityError:
            self._post_now(run.lines, careful=True)
            return False
        self.settled(run)
        return not run.found_meanwhile

    def settled(self, run: _ChunkRun) -> None:
        """A chunk is committed: report its problems, count it in."""
        taken = run.taken()
        self.seen |= taken
        self._count_in(run.counts, taken)

    def _count_in(self, counts: Summary, taken: dict[str, Digest]) -> None:
        if self.on_problem is not None:
            for problem in counts.problems:
                self.on_problem(problem)
            counts.problems = []
        if self.on_settled is not None:
            self.on_settled(counts, taken)
        else:
            self.summary.add(counts)

    def abandon(self) -> None:
        """The run fails: let the transaction under way end. If it committed, its lines
        are counted and reported (a re-run skips them as posted); if not, a re-run posts
        them."""
        run, self.writing = self.writing, None
        if run is not None:
            try:
                run.join()
            except BaseException:
                return
            self.settled(run)

    def _post_now(self, lines: list[Line], *, careful: bool) -> bool:
        """Post a chunk in this thread, again more carefully after each collision, and in
        smaller pieces (each its own transaction, in order): a piece is checked and
        written in less time, so an actor that another writer keeps changing (each
        change has the lines that read it checked again) lets it through."""
        if careful:  # after a collision
            self.look_up = True
        # The pieces' counts, counted in (answered, for a worker) once, as the chunk's.
        done, taken = Summary(), dict[str, Digest]()
        size, collisions, finished = len(lines), 0, True
        while lines and finished:
            run = _ChunkRun(self, lines[:size], careful=careful)
            run.earlier = done.problems  # what a dying worker's parent must still report
            try:
                finished = run.check()
                run.write()
            except IntegrityError:
                careful = True  # a concurrent writer, or a collision the fast path skipped
                collisions += 1
                if collisions < RETRIES:
                    size = max(1, size // PIECE_DIVISOR)
                    continue
                if self.on_settled is None:  # in one process: what was committed is reported
                    self._count_in(done, taken)
                # A worker does not answer the share as done: its parent would take that
                # for the whole share, and could miss the error that follows. The parent
                # reports the refused lines committed (sent ahead: ``earlier``).
                raise self._kept_colliding() from None
            piece = run.taken()
            self.seen |= piece  # a later piece skips these ids, as a later chunk would
            taken |= piece
            done.add(run.counts)
            lines, collisions = lines[size:], 0
        self._count_in(done, taken)
        return finished

    @staticmethod
    def _kept_colliding() -> Conflict:
        return Conflict(
            "concurrent writers kept colliding with this file; run it again "
            "(posted lines are skipped)"
        )


def named_and_made(lines: list[Line], done: Set[str]) -> tuple[list[str], set[Any]]:
    """What a chunk's lines name and what they make: the batch loads the stored records
    among the first, all at once, when it first needs one from the store (a migration's
    chunks, whose lines name records their own earlier lines made, never do)."""
    new: set[Any] = set()
    named: list[str] = []
    for line in lines:
        request = line.request
        if isinstance(request, Receive):
            if request.record is not None:  # (without one, the receipt makes a new id)
                new.add(request.record)
                new.add(str(request.record))  # as lines mostly spell it: no parsing
        elif isinstance(request, RecordRequest) and line.key not in done:
            named.append(request.record)
            if isinstance(request, Arrange):
                new.add(request.code)
    return named, new


class _ChunkRun:
    """One attempt at a chunk: counts are kept apart until its commit succeeds."""

    def __init__(
        self,
        poster: BulkPoster,
        lines: list[Line],
        *,
        careful: bool,
        after: _ChunkRun | None = None,
        look_up: bool = True,
    ) -> None:
        self.poster = poster
        self.lines = lines
        self.look_up = look_up  # the lines' ids in the store (see BulkPoster.look_up)
        self.found: dict[str, PostedLine] | None = None  # ... those the look-up found there
        self.refused_elsewhere: set[str] = set()  # ... as another run's refusals: named
        self.batch = Batch(poster.ledger, careful=careful)
        self.counts = Summary()
        self.seen: dict[str, Digest] = {}  # the ids of lines taken up (not skipped)
        self.unrecorded: set[str] = set()  # ... that failed with no id kept in the store
        self.refused_here: set[str] = set()  # ... whose refused attempts this chunk keeps
        # The numbers of lines that are no command at all: reported as such whatever the
        # store holds (a malformed line takes up no id, and is skipped for none). Kept as
        # they come: derived from the lines, it took a pass over every chunk with a
        # problem (+0.3 % instructions in a post).
        self.malformed: set[int] = set()
        self.conflicting: set[int] = set()  # ... and of lines whose id another line took
        # The chunk committing while this one is checked: its aggregates, and its ids.
        self.taken_before: dict[str, Digest] = {}
        if after is not None:
            self.batch.seed(after.changed)
            self.taken_before = after.seen
        self.changed: list[Any] = []  # aggregates with events in this chunk's transaction
        self.earlier: list[Problem] = []  # problems of the chunk's pieces committed before
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.found_meanwhile = False  # a failed line's id was in the store after all
        self.found_late: dict[str, PostedLine] | None = None  # see _failed

    def check(self) -> bool:
        """Check every line against the rules and the state before it; False if one
        stopped the chunk (--stop-on-error)."""
        keys = [line.key for line in self.lines if line.key]
        if keys and self.look_up:
            recorder: Any = self.poster.ledger.recorder
            self.found = recorder.posted_ids(keys)
        done: Set[str] = self.taken_before.keys()
        if self.found:
            done = self.found.keys() | done
        # Not a closure over this run: that would tie the batch to it in a cycle, left
        # for the cyclic collector (3 % more instructions in a post).
        self.batch.upcoming = partial(named_and_made, self.lines, done)
        try:
            return all(self._one(line, done) for line in self.lines)
        finally:
            self.batch.upcoming = None

    def taken(self) -> dict[str, Digest]:
        """The ids taken up by this chunk that the store will not hold as posted (failed,
        refused without a kept attempt), or that this chunk's refused attempts hold:
        later lines find them in memory (BulkPoster.seen)."""
        return {key: self.seen[key] for key in self.unrecorded | self.refused_here}

    def write(self) -> None:
        """Write the chunk's events and line keys in one transaction, in this thread."""
        self._commit_and_check(self._insertion()())

    def start(self) -> None:
        """Write the chunk's events and line keys, committed on a thread of its own;
        ``join`` waits for the commit. The rows are built here; they are inserted here
        too (a collision raises here), or on that thread where the recorder says so."""
        insert = self._insertion()

        def insert_and_commit() -> None:
            insert()()

        on_thread = self.poster.ledger.recorder.inserts_on_commit_thread  # type: ignore[attr-defined]
        job = insert_and_commit if on_thread else insert()
        self._thread = threading.Thread(target=self._commit_caught, args=(job,))
        self._thread.start()

    def join(self) -> None:
        """Wait for the commit; raise what it raised."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def _insertion(self) -> Callable[[], Callable[[], None]]:
        """The chunk's events, taken off its aggregates here (the next chunk goes on
        from them), as the insert to run."""
        if self.poster.before_commit is not None:
            self.poster.before_commit(self.earlier + self.counts.problems)
        self.changed, events = self.batch.collect()
        self.counts.events = len(events)
        return self.batch.insertion(events)

    def _commit_and_check(self, commit: Callable[[], None]) -> None:
        commit()
        self._posted_meanwhile()

    def _commit_caught(self, commit: Callable[[], None]) -> None:
        try:
            self._commit_and_check(commit)
        except BaseException as error:  # raised again by join, in the posting thread
            self._error = error

    def _posted_meanwhile(self) -> None:
        """A line refused here, or naming what was not there, because a concurrent run of
        the same file posted it first (an actor it added, a record it arranged) was posted,
        not failed: its key, committed before this run read that state, says so. A
        malformed line failed whatever the store held: it stays reported. A line checked
        without a look-up whose key another run's refused attempt took is named as such,
        as the look-up would have had it (_refused_elsewhere)."""
        if self.poster.stop_on_error:  # it stopped there: the report stays, nothing is lost
            return
        judged = [
            p
            for p in self.counts.problems
            if p.id
            and p.line not in self.malformed
            and p.line not in self.conflicting
            and p.id not in self.refused_elsewhere
            and not self._kept_here(p.id)
        ]
        if not judged:
            return
        recorder: Any = self.poster.ledger.recorder
        done: dict[str, PostedLine] = recorder.posted_ids([p.id for p in judged])
        lines = {line.number: line for line in self.lines}
        for problem in [p for p in judged if p.id in done]:
            assert problem.id is not None
            # The id was not this run's to take: later lines are judged by the store's line.
            self.seen[problem.id] = done[problem.id].digest
            self.found_meanwhile = True
            if problem.outcome == "refused":
                self.counts.refused -= 1
            else:
                self.counts.invalid -= 1
            stored = done[problem.id]
            if stored.digest is not None and not lines[problem.line].matches(stored.digest):
                replaced = ("invalid", id_taken(problem.id))  # another line's
                self.counts.invalid += 1
            elif is_refused(stored.outcome):
                replaced = refused_already(stored.outcome)
                self.counts.refused += 1
            else:
                self.counts.problems.remove(problem)
                self.counts.skipped += 1
                continue
            at = self.counts.problems.index(problem)
            self.counts.problems[at] = Problem(problem.line, problem.id, *replaced)

    def _kept_here(self, key: str) -> bool:
        """Whether this chunk writes ``key`` (its line posted, or its refusal kept)."""
        return key in self.seen and key not in self.unrecorded

    def _one(self, line: Line, done: Set[str]) -> bool:
        counts = self.counts
        if line.problem is not None:
            self.malformed.add(line.number)
            return self._problem(line, "invalid", f"error: {line.problem}")
        assert line.key is not None
        if line.key in done or line.key in self.seen or line.key in self.poster.seen:
            taker = self._taker(line.key)
            if taker is not None and not line.matches(taker):
                self.conflicting.add(line.number)
                return self._problem(line, "invalid", id_taken(line.key))
            if self._refused_by_another_run(line.key):
                return self._refused_elsewhere(line)
            counts.skipped += 1
            return True
        self.seen[line.key] = line.digest
        recorded = self.batch.refusals
        try:
            handle(line.request, self.batch, line.actor)
        except RuleViolation as error:
            # A refused attempt recorded as an event takes up its line's key with it (some
            # refusals under R7 and R19 are of the command, not of an attempt: not recorded).
            if self.batch.refusals > recorded:
                self.batch.posted.append((line.key, refused_outcome(error.rule), line.digest))
                self.refused_here.add(line.key)
                return self._problem(line, "refused", error.line())
            return self._failed(line, "refused", error.line())
        except LedgerError as error:  # invalid input, not found
            return self._failed(line, "invalid", error.line())
        self.batch.posted.append((line.key, "posted", line.digest))
        counts.posted += 1
        return True

    def _failed(self, line: Line, outcome: str, message: str) -> bool:
        """A line that failed and leaves no key. In a chunk checked without a look-up, its
        id may be in the store all the same (a line posted before): then the line is
        judged as the look-up would have had it, and the lines after it by the store's
        line, not by this one. The first such line looks up the whole chunk's ids, once."""
        assert line.key is not None
        if self.found is None:
            if self.found_late is None:
                recorder: Any = self.poster.ledger.recorder
                self.found_late = recorder.posted_ids([n.key for n in self.lines if n.key])
            stored = self.found_late.get(line.key)
            if stored is not None:
                return self._judged_by_store(line, stored)
        self.unrecorded.add(line.key)
        return self._problem(line, outcome, message)

    def _judged_by_store(self, line: Line, stored: PostedLine) -> bool:
        assert line.key is not None
        self.seen[line.key] = stored.digest
        if stored.digest is not None and not line.matches(stored.digest):
            self.conflicting.add(line.number)
            return self._problem(line, "invalid", id_taken(line.key))
        if is_refused(stored.outcome):  # named, once; later lines with the id skipped
            self.refused_elsewhere.add(line.key)
            self.unrecorded.add(line.key)
            return self._problem(line, *refused_already(stored.outcome))
        self.counts.skipped += 1
        return True

    def _taker(self, key: str) -> Digest:
        """The digest of the line that took up ``key`` before: a line of this run, or a
        key in the store (none if the store kept it before digests were)."""
        for taken in (self.seen, self.taken_before, self.poster.seen):
            if key in taken:
                return taken[key]
        assert self.found is not None
        return self.found[key].digest

    def _refused_by_another_run(self, key: str) -> bool:
        """Whether the store holds ``key`` as a refused attempt that this run did not
        record (an earlier run's, or one running at the same time), and no line with it
        was taken up in this run yet."""
        return (
            self.found is not None
            and key in self.found
            and is_refused(self.found[key].outcome)
            and key not in self.seen
            and key not in self.taken_before
            and key not in self.poster.seen
        )

    def _refused_elsewhere(self, line: Line) -> bool:
        """A line whose id another run's refused attempt took (an earlier run's, after a
        kill or a lost report, or one running at the same time): named as refused, once,
        so that every run of a file names all its refused lines. The rule is in the audit
        trail."""
        assert line.key is not None
        self.refused_elsewhere.add(line.key)
        # Taken up here, its key written by no one in this run: a later line with the id
        # is skipped, in this run's later chunks and (as their answers pass the id on) by
        # the other workers.
        self.seen[line.key] = line.digest
        self.unrecorded.add(line.key)
        assert self.found is not None
        return self._problem(line, *refused_already(self.found[line.key].outcome))

    def _problem(self, line: Line, outcome: str, message: str) -> bool:
        problem = Problem(line.number, line.key, outcome, message)
        self.counts.problems.append(problem)
        if outcome == "refused":
            self.counts.refused += 1
        else:
            self.counts.invalid += 1
        return not self.poster.stop_on_error
