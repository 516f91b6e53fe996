"""The pass of `ledger verify` over the log in order: rows, chains and digests.

For each row: open the envelope (decrypting first if a key is set), check SHA-256(body)
against the recorded hash, check that the body names the row's originator, version and
topic, link the row to the last one seen of its originator (version + 1, previous hash),
and fold its hash into the log digest, compared with each seal at its position (each
sealed segment on its own, starting from the digest the previous seal recorded). Memory
stays bounded: only the last hash of up to HEADS_CAP recently seen originators is kept
(older ones are looked up by index when needed).

An originator found wrong is a suspect, kept with the first position where it was found
wrong; suspects are diagnosed in that order. That position does not depend on whether a
link was checked in memory or by lookup (see ledger.scan_split), so a scan split across two
processes finds the same suspects in the same order.
"""

from __future__ import annotations

import binascii
import gc
import hashlib
from collections.abc import Callable, Iterable
from itertools import islice
from typing import Any, Protocol, cast

import msgspec

from aggregates.chain import GENESIS
from ledger.diagnosis import REFUSED, REGISTERED
from ledger.integrity import ZERO, EventTable, LogRow, stand_in_hash
from ledger.seal import Checkpoint, SealEntry

HEAD, MID, TAIL = b'{"body":', b',"hash":"', b'"}'  # aggregates.chain's envelope

HEADS_CAP = 250_000
DEFER_BATCH = 2_000
NEVER = 1 << 62


class Names(msgspec.Struct):
    """What the scan reads of a body: the fields that name its row and link it. The rest of
    the body is still parsed as strictly (every value must be well-formed JSON), but not
    turned into objects; the body's bytes must also be UTF-8 (checked apart, see below)."""

    originator_id: Any
    originator_version: Any
    topic: Any
    prev_hash: Any


class NamesAndActor(Names):
    """PostgreSQL rows carry the database role that wrote them: the actor is read too."""

    actor: Any = None
    actor_id: Any = None
    db_role: Any = None


class Sink(Protocol):
    """Where a part's hashes go, in order (ledger.scan_split)."""

    kept: list[bytes]  # since the last flush
    due: int  # the count at which to flush next

    def cut(self, index: int, position: int) -> None:
        """The first process crosses a checkpoint before the part's row ``index``."""

    def flush(self, count: int) -> int:
        """Hand over the kept hashes (``count`` in all so far); returns the next due."""


class LogScan:
    """One pass over the log in order, or over the later positions of a log in a second
    process (``sink``): then hashes go to the sink, not folded, and a broken link of an
    originator not seen before in the part is left to the first process, which knows its
    earlier events."""

    def __init__(
        self,
        table: EventTable,
        checkpoints: list[Checkpoint],
        *,
        full: bool,
        sink: Sink | None = None,
    ) -> None:
        self.table = table
        self.full = full
        self.checkpoints = checkpoints
        self.next = 0  # index of the next checkpoint
        self.count = 0
        self.unreadable = 0
        self.digest = ZERO  # of the current segment (from the last seal's recorded digest)
        self.cumulative: bytes | None = None  # of the whole log, once a segment failed
        self.segment_start = 0  # events counted before the current segment
        self.failed: list[tuple[SealEntry, int]] = []  # (seal, events in its segment now)
        self.given_matches: bool | None = None
        self.suspects: dict[Any, int] = {}  # key -> first position where it was found wrong
        self.bound: dict[str, str] = {}  # actor id -> database role it is bound to
        self.heads: dict[Any, tuple[Any, str]] = {}  # key -> (version, hash) of its last event
        self.evicted = False
        self.deferred: list[tuple[Any, Any, Any, int]] = []
        self.position: int | None = None  # of the last row scanned
        self.sink = sink
        self.firsts: list[tuple[int, Any, Any, Any]] = []  # a part's links left to check
        postgres = table.backend == "postgres"
        self.names = msgspec.json.Decoder(NamesAndActor if postgres else Names).decode

    @property
    def final_digest(self) -> bytes:
        return self.digest if self.cumulative is None else self.cumulative

    @property
    def boundary(self) -> int:
        if self.next < len(self.checkpoints):
            return self.checkpoints[self.next].position
        return NEVER

    def ordered_suspects(self) -> list[Any]:
        return sorted(self.suspects, key=self.suspects.__getitem__)

    def suspect(self, key: Any, position: int) -> None:
        known = self.suspects.get(key)
        if known is None or position < known:
            self.suspects[key] = position

    def run(self, head: int, rows: Callable[[LogScan, int], None] | None = None) -> None:
        """Scan up to ``head``: every row (``rows`` may scan them another way) or, for one
        record, only the recorded hashes."""
        collecting = gc.isenabled()
        gc.disable()  # the scan allocates millions of short-lived objects and no cycles
        try:
            if self.full:
                (rows or LogScan.scan_rows)(self, head)
                self.resolve()
            else:
                self._scan_hashes(head)
        finally:
            if collecting:
                gc.enable()
        self.cross(None)

    def scan_rows(self, upto: int, after: int | None = None) -> None:
        """Every row with after < position <= upto. A row whose state is stored as text
        that is not UTF-8 stops the fast read (EventTable.scan_rows): it is read again as
        the table's other reads give it, and the fast read goes on after it."""
        self.position = after
        while True:
            try:
                self._scan(self.table.scan_rows(after, upto))
                return
            except Exception as error:
                after = self.position
                row = self.table.read_again(after, upto, error)
                self._scan([row])
                after = row[0]

    def cross(self, position: int | None) -> None:
        """Judge every checkpoint before ``position`` (all that are left at the end). A part
        only notes where the first process will judge them."""
        if self.sink is not None:
            assert position is not None
            self.sink.cut(self.count, position)
            while self.next < len(self.checkpoints):
                if self.checkpoints[self.next].position >= position:
                    return
                self.next += 1
            return
        while self.next < len(self.checkpoints):
            point = self.checkpoints[self.next]
            if position is not None and point.position >= position:
                return
            self.next += 1
            if point.seal is None:
                self.given_matches = self.final_digest.hex() == point.digest
                continue
            in_segment = self.count - self.segment_start
            if self.digest.hex() != point.digest or in_segment != point.seal.events_in_segment:
                self.failed.append((point.seal, in_segment))
                if self.cumulative is None:
                    self.cumulative = self.digest
            self.digest = point.restart
            self.segment_start = self.count

    def fold(self, event_hash: bytes) -> None:
        if self.sink is not None:
            self.sink.kept.append(event_hash)
        else:
            self.digest = hashlib.sha256(self.digest + event_hash).digest()
            if self.cumulative is not None:
                self.cumulative = hashlib.sha256(self.cumulative + event_hash).digest()
        self.count += 1

    def _scan_hashes(self, head: int) -> None:
        for position, key, _, _, recorded in self.table.hashes(None, head):
            if position > self.boundary:
                self.cross(position)
            try:
                event_hash = binascii.unhexlify(recorded or "")
            except (binascii.Error, ValueError):
                event_hash = b""
            if len(event_hash) != 32:
                self.unreadable += 1
                event_hash = stand_in_hash(f"{key}:{position}".encode())
            self.fold(event_hash)

    def _scan(self, rows: Iterable[LogRow]) -> None:
        """Locals only; the digest and count live in locals and are handed back to self
        around the rare calls (a checkpoint, an unreadable row) and at the end."""
        sha = hashlib.sha256
        names = self.names
        unhexlify = binascii.unhexlify
        decode = None if not self.table.encrypted else self.table.decode
        heads, suspect = self.heads, self.suspect
        sink = self.sink
        keep, due = (None, NEVER) if sink is None else (sink.kept.append, sink.due)
        boundary = self.boundary
        digest, cumulative, count = self.digest, self.cumulative, self.count
        position = self.position
        try:
            for position, key, version, topic, state, role in rows:
                if position > boundary:
                    self.digest, self.cumulative, self.count = digest, cumulative, count
                    self.cross(position)
                    digest, cumulative, boundary = self.digest, self.cumulative, self.boundary
                try:
                    if decode is None:  # the envelope {"body":B,"hash":"H"}, sliced in place
                        if (
                            not state.startswith(HEAD)
                            or not state.endswith(TAIL)
                            or (state[-75:-66] != MID)
                        ):
                            raise ValueError("not an envelope")
                        body, recorded = state[8:-75], state[-66:-2].decode()
                    else:
                        body, recorded = decode(state)
                    event_hash = unhexlify(recorded)
                    if not body.isascii():
                        body.decode()  # JSON is UTF-8; the decoder does not check strings it skips
                    fields = names(body)
                    previous_hash = fields.prev_hash
                    if len(event_hash) != 32:
                        raise ValueError("a recorded hash has 64 hex digits")
                except Exception:
                    self.digest, self.cumulative, self.count = digest, cumulative, count
                    self._unreadable(position, key, version, topic, state, role)
                    digest, cumulative, count = self.digest, self.cumulative, self.count
                    continue
                if keep is None:
                    digest = sha(digest + event_hash).digest()
                    if cumulative is not None:
                        cumulative = sha(cumulative + event_hash).digest()
                else:
                    keep(event_hash)
                    if count >= due:
                        due = cast(Sink, sink).flush(count + 1)
                count += 1
                try:
                    if (
                        sha(body).hexdigest() != recorded
                        or fields.originator_version != version
                        or fields.topic != topic
                        or fields.originator_id.replace("-", "") != key
                    ):
                        suspect(key, position)
                    last = heads.get(key)
                    if last is None:
                        if version != 1 or previous_hash != GENESIS:
                            self.first_seen(key, version, previous_hash, position)
                        if len(heads) >= HEADS_CAP:
                            self._evict()
                    elif last[0] + 1 != version or last[1] != previous_hash:
                        suspect(key, position)
                    heads[key] = (version, recorded)
                    if role is not None:
                        self._check_role(key, topic, fields, role, position)
                except Exception:  # a field or column of an unexpected type
                    suspect(key, position)
        finally:
            self.digest, self.cumulative, self.count = digest, cumulative, count
            self.position = position

    def _unreadable(
        self, position: int, key: Any, version: Any, topic: Any, state: Any, role: Any
    ) -> None:
        """A row whose envelope, hash or body cannot be read: its stand-in hash is folded
        into the digest (it never matches a seal) and its chain is diagnosed. A state that
        is not bytes (SQLite: stored as text or a number) is read again as the table's
        other reads give it (never a valid envelope) and checked as that."""
        if state is not None and not isinstance(state, bytes):
            again: Any = (position, key, version, topic, self.table.state_at(position), role)
            self._scan([again])
            return
        try:
            event_hash = unhex_recorded(self.table.recorded_hash(state))
        except ValueError:
            event_hash = stand_in_hash(state)
            self.unreadable += 1
        self.fold(event_hash)
        self.suspect(key, position)
        self.heads.pop(key, None)

    def first_seen(self, key: Any, version: Any, previous_hash: Any, position: int) -> None:
        """A row, not version 1 from genesis, whose originator has no last event in memory."""
        if self.sink is not None and not self.evicted:
            self.firsts.append((position, key, version, previous_hash))
        elif self.evicted and version > 1:
            self.deferred.append((key, version, previous_hash, position))
            if len(self.deferred) >= DEFER_BATCH:
                self.resolve()
        else:
            self.suspect(key, position)

    def _check_role(self, key: str, topic: str, names: Names, role: str, position: int) -> None:
        """PostgreSQL: an actor bound to a database role acts only from that role, and one
        bound to none only from the tables' owner (see ledger.diagnosis)."""
        fields = cast(NamesAndActor, names)  # the decoder of PostgreSQL rows reads the actor
        if topic == REGISTERED and fields.db_role:
            self.bound[str(fields.actor_id)] = str(fields.db_role)
        if topic != REFUSED and isinstance(fields.actor, str):
            expected = self.bound.get(fields.actor)
            if role != expected and (expected is not None or not self.table.owns(role)):
                self.suspect(key, position)

    def bind_before(self, position: int) -> None:
        """A part (PostgreSQL): the actors' bindings to database roles as a one-process scan
        holds them on reaching ``position``, from the registrations before it, each read and
        checked as ``_scan`` reads it (a registration it finds unreadable binds nobody)."""
        registrations = LogScan(self.table, [], full=True, sink=_Dropped())
        registrations._scan(self.table.with_topic(REGISTERED, position))
        self.bound = registrations.bound

    def _evict(self) -> None:
        for key in list(islice(self.heads, max(1, HEADS_CAP // 4))):
            del self.heads[key]
        self.evicted = True

    def resolve(self) -> None:
        """Check links whose predecessor was no longer in memory, by index lookups."""
        if not self.deferred:
            return
        wanted = [(key, version - 1) for key, version, _, _ in self.deferred]
        found: dict[tuple[Any, Any], tuple[int, str | None]] = {}
        for row in self.table.find(wanted):
            found[(row[1], row[2])] = (row[0], self.table.recorded_hash(row[4]))
        for key, version, previous_hash, position in self.deferred:
            before = found.get((key, version - 1))
            if before is None or before[1] != previous_hash or before[0] >= position:
                self.suspect(key, position)
        self.deferred = []


class _Dropped:
    """The sink of a pass that only reads bindings: its hashes are dropped with it."""

    def __init__(self) -> None:
        self.kept: list[bytes] = []
        self.due = NEVER

    def cut(self, index: int, position: int) -> None:
        pass

    def flush(self, count: int) -> int:
        return NEVER


def unhex_recorded(recorded: str | None) -> bytes:
    """A recorded hash as 32 bytes (ValueError when there is none or it is malformed)."""
    try:
        value = binascii.unhexlify(recorded or "")
    except binascii.Error:
        raise ValueError("malformed hash") from None
    if len(value) != 32:
        raise ValueError("malformed hash")
    return value
