"""`ledger verify` on a long log in two processes: a forked child scans the later positions
while this process scans the earlier ones, then finishes what depends on order.

The child reads in the same snapshot. On SQLite it reads through the same connection: the
read transaction and its locks belong to this process, which holds them until the child
has answered. On PostgreSQL a connection is never used across a fork: the child opens its
own (EventTable.in_child) and joins the snapshot this process exported, valid while the
exporting transaction is open (it is, until the table is closed, after the child has
answered); it first reads the registrations before its part (LogScan.bind_before), so
that it checks each row's database role against the bindings one process holds there.
The child only reads, closes only what it opened, and leaves by os._exit (nothing of this
process's closed, nothing flushed). It hands over:

- every row's hash in log order (stand-ins for unreadable rows), written to memory shared
  with this process (32 bytes a position of its part), chunk by chunk, with the rows where
  a checkpoint falls: this process folds them into the digest after its own rows, judging
  the seals at their positions, while the child goes on;
- at the end its counts, its suspects with the first position where each was found wrong,
  and the links it could not check: the first row in its part of an originator (unless it
  is version 1 from genesis), checked here against this process's last event of that
  originator as a one-process scan checks it; and the bindings of actors to database roles
  at the end of the log, which the diagnosis of suspects reads.

Why the suspects are a one-process scan's: before the first position where an originator
is found wrong, its events form an unbroken chain (versions 1, 2, ... each naming the
previous hash), so a link checked by lookup (the predecessor by key and version) passes
where a link checked in memory passes, and at that position both fail: the primary key
(originator, version) leaves no other predecessor to find, nor a second version 1 (a
version 1 from genesis after other events of its originator is never the first wrong
one). Whether a head was in memory, evicted, or in the other process, the same originators
are found wrong first at the same positions.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import pickle
import signal
from collections.abc import Callable
from typing import IO, Any, NoReturn

from aggregates.errors import InvalidInput, LedgerError
from ledger.integrity import EventTable
from ledger.machine import cores, die_with
from ledger.scan import LogScan

SPLIT_ABOVE = 100_000  # positions; LEDGER_VERIFY_SPLIT_ABOVE overrides
SHARE = 0.45  # of the positions scanned here: this process also folds the child's hashes
CHUNK = 16_384  # hashes handed over at a time


class ScanStopped(LedgerError):
    """The second process of a verify did not answer (exit 1)."""


def split_scan(table: EventTable, head: int) -> Callable[[LogScan, int], None] | None:
    """A scan of every row in two processes, or None where one is better: a single core,
    or a log up to the threshold."""
    setting = os.environ.get("LEDGER_VERIFY_SPLIT_ABOVE", "")
    try:
        above = int(setting) if setting.strip() else SPLIT_ABOVE
    except ValueError:
        raise InvalidInput("LEDGER_VERIFY_SPLIT_ABOVE is a number of log positions") from None
    if not hasattr(os, "fork") or head <= above or cores() < 2:
        return None
    return scan_in_two


def scan_in_two(scan: LogScan, head: int) -> None:
    middle = int(head * SHARE)
    shared = mmap.mmap(-1, max(1, 32 * (head - middle)))  # one hash per position at most
    reader, writer = os.pipe()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        # Killed with this process: a killed verify's child read on (a PostgreSQL
        # connection and snapshot held) until its next handover found the pipe closed.
        die_with(parent)
        os.close(reader)
        _child(scan, middle, head, shared, writer)
    os.close(writer)
    try:
        with open(reader, "rb") as answers:
            scan.scan_rows(middle)
            answered = _take(scan, shared, answers)
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # still running, or a zombie until reaped below
        raise
    finally:
        status = 0
        with contextlib.suppress(ChildProcessError):  # reaped already (SIGCHLD ignored)
            status = os.waitpid(pid, 0)[1]
        shared.close()
    if not answered:
        how = (
            f"signal {os.WTERMSIG(status)}"
            if os.WIFSIGNALED(status)
            else f"exit status {os.WEXITSTATUS(status)}"
        )
        raise ScanStopped(
            f"verify's second process (positions {middle + 1} to {head}) stopped before it "
            f"answered ({how}); nothing was concluded: run verify again"
        )


class _Handover:
    """The child's sink (ledger.scan.Sink): hashes to the shared memory, news to the pipe."""

    def __init__(self, shared: mmap.mmap, out: IO[bytes]) -> None:
        self.shared, self.out = shared, out
        self.kept: list[bytes] = []
        self.due = CHUNK
        self.cuts: list[tuple[int, int]] = []

    def cut(self, index: int, position: int) -> None:
        self.cuts.append((index, position))

    def flush(self, count: int) -> int:
        chunk = b"".join(self.kept)
        self.shared[32 * count - len(chunk) : 32 * count] = chunk
        self.kept.clear()
        self.send(("rows", count, self.cuts))
        self.cuts = []
        self.due = count + CHUNK
        return self.due

    def send(self, message: tuple[Any, ...]) -> None:
        pickle.dump(message, self.out, protocol=pickle.HIGHEST_PROTOCOL)
        self.out.flush()


def _child(scan: LogScan, after: int, upto: int, shared: mmap.mmap, fd: int) -> NoReturn:
    code = 1
    try:
        handover = _Handover(shared, open(fd, "wb"))  # noqa: SIM115 - never closed: _exit
        try:
            table = scan.table.in_child()
        except BaseException as error:  # PostgreSQL: the server is gone, full, ...
            handover.send(("unconnected", _first_line(error)))
            raise
        try:
            part = LogScan(table, scan.checkpoints, full=True, sink=handover)
            if table.backend == "postgres":  # SQLite rows name no database role
                part.bind_before(after)
            part.scan_rows(upto, after)
            part.resolve()
            handover.flush(part.count)
            handover.send(("done", part.unreadable, part.suspects, part.firsts, part.bound))
            code = 0
        except BaseException as error:  # reported by the parent, in one line
            handover.send(("error", f"{type(error).__name__}: {_first_line(error)}"))
        finally:
            if table is not scan.table:  # its own connections (this process's are untouched)
                with contextlib.suppress(Exception):
                    table.close()
    finally:
        os._exit(code)


def _first_line(error: BaseException) -> str:
    return next(iter(str(error).splitlines()), "")


def _take(scan: LogScan, shared: mmap.mmap, answers: IO[bytes]) -> bool:
    """Fold the child's hashes as they come, then merge what it found; False when the
    child stopped before its answer."""
    base = scan.count  # rows before the child's
    while True:
        try:
            message = pickle.load(answers)
        except Exception:  # the pipe closed early: the child was stopped
            return False
        kind, *rest = message
        if kind == "rows":
            count, cuts = rest
            for index, position in cuts:
                _fold(scan, shared, scan.count - base, index)
                scan.cross(position)
            _fold(scan, shared, scan.count - base, count)
        elif kind == "done":
            _merge(scan, *rest)
            return True
        elif kind == "unconnected":
            raise ScanStopped(
                f"verify's second process could not connect to the database ({rest[0]}); "
                "nothing was concluded: run verify again"
            )
        else:
            raise ScanStopped(f"verify failed in its second process: {rest[0]}")


def _merge(
    scan: LogScan,
    unreadable: int,
    suspects: dict[Any, int],
    firsts: list[tuple[Any, ...]],
    bound: dict[str, str],
) -> None:
    for position, key, version, previous_hash in firsts:
        try:  # the link check of LogScan._scan, against this process's heads
            last = scan.heads.get(key)
            if last is None:
                scan.first_seen(key, version, previous_hash, position)
            elif last[0] + 1 != version or last[1] != previous_hash:
                scan.suspect(key, position)
        except Exception:  # a field or column of an unexpected type
            scan.suspect(key, position)
    for key, position in suspects.items():
        scan.suspect(key, position)
    scan.unreadable += unreadable
    scan.bound = bound  # begun from this process's (LogScan.bind_before): the log's at its end


def _fold(scan: LogScan, shared: mmap.mmap, start: int, end: int) -> None:
    """LogScan.fold of the child's rows start to end (in locals, for speed)."""
    sha = hashlib.sha256
    digest, cumulative = scan.digest, scan.cumulative
    for at in range(32 * start, 32 * end, 32):
        event_hash = shared[at : at + 32]
        digest = sha(digest + event_hash).digest()
        if cumulative is not None:
            cumulative = sha(cumulative + event_hash).digest()
    scan.digest, scan.cumulative = digest, cumulative
    scan.count += end - start
