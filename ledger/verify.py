"""`ledger verify`: recompute every hash, link and seal, streaming the log once.

The scan reads the event table in log order and, for each row: opens the envelope
(decrypting first if a key is set), checks SHA-256(body) against the recorded hash, checks
that the body names the row's originator, version and topic, links the row to the last
one seen of its originator (version + 1, previous hash), and folds its hash into the log
digest, compared with each seal at its position (each sealed segment on its own, starting
from the digest the previous seal recorded). Memory stays bounded: only the last hash of up
to HEADS_CAP recently seen originators is kept (older ones are looked up by index when
needed). Originators with anything wrong are then read in version order and diagnosed
precisely (ledger.diagnosis); a sealed segment whose digest differs is named event by event
from the seal's sketch.
"""

from __future__ import annotations

import binascii
import gc
import hashlib
import time
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, cast
from uuid import UUID

import msgspec
import orjson

from aggregates.chain import GENESIS
from aggregates.code_claim import code_uuid
from aggregates.errors import InvalidInput, NotFound
from ledger.application import Ledger
from ledger.diagnosis import (
    REFUSED,
    REGISTERED,
    Chain,
    Problem,
    diagnose,
    name_segments,
    seal_problems,
)
from ledger.integrity import ZERO, EventTable, open_table, stand_in_hash
from ledger.seal import Checkpoint, SealEntry, read_seals

HEAD, MID, TAIL = b'{"body":', b',"hash":"', b'"}'  # aggregates.chain's envelope

HEADS_CAP = 250_000
DEFER_BATCH = 2_000
MAX_DIAGNOSED = 2_000


@dataclass(frozen=True)
class Given:
    """A digest written down from a seal: --digest HEX --position N."""

    position: int
    digest: str


@dataclass
class Report:
    head: int = 0
    events: int = 0
    seconds: float = 0.0
    encrypted: bool = False
    seals: list[SealEntry] = field(default_factory=list)
    digest: str = GENESIS  # of the whole log up to head
    given: Given | None = None
    given_matches: bool | None = None
    problems: list[Problem] = field(default_factory=list)
    undiagnosed: int = 0
    unreadable: int = 0
    record: str | None = None

    @property
    def intact(self) -> bool:
        return not self.problems and not self.undiagnosed

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def last_seal(self) -> SealEntry | None:
        return self.seals[-1] if self.seals else None

    def as_dict(self, limit: int) -> dict[str, Any]:
        last = self.last_seal
        return {
            "intact": self.intact,
            "record": self.record,
            "events": self.events,
            "head": self.head,
            "digest": self.digest,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate),
            "encryption": "on" if self.encrypted else "off",
            "seals": len(self.seals),
            "last_seal": last.as_dict() if last else None,
            "chain_only_after": last.position if last else 0,
            "given": {
                "position": self.given.position,
                "digest": self.given.digest,
                "matches": self.given_matches,
            }
            if self.given
            else None,
            "unreadable": self.unreadable,
            "problems": [p.as_dict() for p in self.problems[:limit]],
            "more_problems": max(0, len(self.problems) - limit) + self.undiagnosed,
        }


def parse_given(digest: str | None, position: int | None) -> Given | None:
    if digest is None and position is None:
        return None
    if digest is None or position is None:
        raise InvalidInput("--digest and --position go together (both as `ledger seal` printed)")
    digest = digest.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInput("--digest is 64 hexadecimal digits, as `ledger seal` printed it")
    if position < 0:
        raise InvalidInput("--position is a log position (0 or more)")
    return Given(position, digest)


def resolve_record(ledger: Ledger, ref: str) -> UUID:
    """A record's id from its id or archival code (read from the table, not the library)."""
    try:
        return UUID(ref)
    except ValueError:
        pass
    with open_table(ledger) as table:
        for _, _, _, _, state, _ in table.chain(code_uuid(ref).hex)[:1]:
            try:
                return UUID(str(orjson.loads(table.decode(state)[0])["record_id"]))
            except Exception:
                break
    raise NotFound(f"record {ref!r} not found (no record has that id or archival code)")


def verify_log(ledger: Ledger, *, record: UUID | None = None, given: Given | None = None) -> Report:
    """Check the whole log (or one record's chain and the log's digests)."""
    started = time.perf_counter()
    report = Report(given=given, record=str(record) if record else None)
    with open_table(ledger) as table:
        report.encrypted = table.encrypted
        report.head = table.head()
        report.seals, unusable = read_seals(table, report.head)
        report.problems.extend(Problem("log", None, text) for text in unusable)
        scan = LogScan(table, report.seals, given, full=record is None)
        if record is not None and table.backend == "postgres":
            scan.bound = bindings(table, report.head)
        scan.run(report.head)
        report.events, report.unreadable = scan.count, scan.unreadable
        report.digest = scan.final_digest.hex()
        report.given_matches = scan.given_matches
        suspects = [record.hex] if record else list(scan.suspects)
        chains: dict[str, Chain] = {}
        for key in suspects[:MAX_DIAGNOSED]:
            chains[key] = diagnose(key, table.chain(key), table.decode, scan.bound)
            report.problems.extend(chains[key].problems())
        report.undiagnosed = max(0, len(suspects) - MAX_DIAGNOSED)
        named = name_segments(table, scan.failed, chains, report.head)
        report.problems.extend(p for p in named if _new(p, report.problems))
        report.problems.extend(
            seal_problems(
                report.seals,
                given.position if given else None,
                given.digest if given else "",
                scan.given_matches,
                report.head,
            )
        )
    if record is not None:
        report.problems = [p for p in report.problems if p.key in (None, record.hex)]
        is_named = any(p.key == record.hex for p in report.problems)
        if not chains[record.hex].rows and not is_named:
            raise NotFound(f"record {record} not found (no event has that id)")
    report.seconds = time.perf_counter() - started
    return report


def bindings(table: EventTable, head: int) -> dict[str, str]:
    """Actor id -> the database role it is bound to, from the actors' registrations."""
    bound: dict[str, str] = {}
    for row in table.with_topic(REGISTERED, head):
        try:
            fields = orjson.loads(table.decode(row[4])[0])
        except Exception:
            continue  # an unreadable registration is diagnosed with its actor's chain
        if fields.get("db_role"):
            bound[str(fields.get("actor_id"))] = str(fields["db_role"])
    return bound


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


def _new(problem: Problem, known: list[Problem]) -> bool:
    """An event the sketch names that its chain's diagnosis already reported is not repeated."""
    return problem.key is None or not any(
        p.key == problem.key and p.version == problem.version for p in known
    )


class LogScan:
    """One pass over the log in order: rows, chains and digests."""

    def __init__(
        self, table: EventTable, seals: list[SealEntry], given: Given | None, *, full: bool
    ) -> None:
        self.table = table
        self.full = full
        self.checkpoints = Checkpoint.plan(
            seals, given.position if given else None, given.digest if given else ""
        )
        self.next = 0  # index of the next checkpoint
        self.count = 0
        self.unreadable = 0
        self.digest = ZERO  # of the current segment (from the last seal's recorded digest)
        self.cumulative: bytes | None = None  # of the whole log, once a segment failed
        self.segment_start = 0  # events counted before the current segment
        self.failed: list[tuple[SealEntry, int]] = []  # (seal, events in its segment now)
        self.given_matches: bool | None = None
        self.suspects: dict[str, None] = {}
        self.bound: dict[str, str] = {}  # actor id -> database role it is bound to
        self.heads: dict[str, tuple[int, str]] = {}  # key -> (version, hash) of its last event
        self.evicted = False
        self.deferred: list[tuple[str, int, str, int]] = []

    @property
    def final_digest(self) -> bytes:
        return self.digest if self.cumulative is None else self.cumulative

    @property
    def boundary(self) -> int:
        if self.next < len(self.checkpoints):
            return self.checkpoints[self.next].position
        return 1 << 62

    def run(self, head: int) -> None:
        collecting = gc.isenabled()
        gc.disable()  # the scan allocates millions of short-lived objects and no cycles
        try:
            if self.full:
                self._scan_rows(head)
                self._resolve()
            else:
                self._scan_hashes(head)
        finally:
            if collecting:
                gc.enable()
        self.cross(None)

    def cross(self, position: int | None) -> None:
        """Judge every checkpoint before ``position`` (all that are left at the end)."""
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

    def _fold(self, event_hash: bytes) -> None:
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
            self._fold(event_hash)

    def _scan_rows(self, head: int) -> None:
        """Locals only; the digest and count live in locals and are handed back to self
        around the rare calls (a checkpoint, an unreadable row)."""
        sha = hashlib.sha256
        names = msgspec.json.Decoder(
            NamesAndActor if self.table.backend == "postgres" else Names
        ).decode
        unhexlify = binascii.unhexlify
        decode = None if not self.table.encrypted else self.table.decode
        heads, suspects = self.heads, self.suspects
        boundary = self.boundary
        digest, cumulative, count = self.digest, self.cumulative, self.count
        for position, key, version, topic, state, role in self.table.rows(None, head):
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
                self._unreadable(key, state)
                digest, cumulative, count = self.digest, self.cumulative, self.count
                continue
            digest = sha(digest + event_hash).digest()
            if cumulative is not None:
                cumulative = sha(cumulative + event_hash).digest()
            count += 1
            try:
                if (
                    sha(body).hexdigest() != recorded
                    or fields.originator_version != version
                    or fields.topic != topic
                    or fields.originator_id.replace("-", "") != key
                ):
                    suspects[key] = None
                last = heads.get(key)
                if last is None:
                    if version != 1 or previous_hash != GENESIS:
                        self._first_seen(key, version, previous_hash, position)
                    if len(heads) >= HEADS_CAP:
                        self._evict()
                elif last[0] + 1 != version or last[1] != previous_hash:
                    suspects[key] = None
                heads[key] = (version, recorded)
                if role is not None:
                    self._check_role(key, topic, fields, role)
            except Exception:  # a field or column of an unexpected type
                suspects[key] = None
        self.digest, self.cumulative, self.count = digest, cumulative, count

    def _unreadable(self, key: str, state: Any) -> None:
        """A row whose envelope, hash or body cannot be read: its stand-in hash is folded
        into the digest (it never matches a seal) and its chain is diagnosed."""
        try:
            event_hash = unhex_recorded(self.table.recorded_hash(state))
        except ValueError:
            event_hash = stand_in_hash(state)
            self.unreadable += 1
        self._fold(event_hash)
        self.suspects[key] = None
        self.heads.pop(key, None)

    def _first_seen(self, key: str, version: int, previous_hash: str, position: int) -> None:
        if self.evicted and version > 1:
            self.deferred.append((key, version, previous_hash, position))
            if len(self.deferred) >= DEFER_BATCH:
                self._resolve()
        else:
            self.suspects[key] = None

    def _check_role(self, key: str, topic: str, names: Names, role: str) -> None:
        """PostgreSQL: an actor bound to a database role acts only from that role."""
        fields = cast(NamesAndActor, names)  # the decoder of PostgreSQL rows reads the actor
        if topic == REGISTERED and fields.db_role:
            self.bound[str(fields.actor_id)] = str(fields.db_role)
        if self.bound and topic != REFUSED:
            expected = self.bound.get(str(fields.actor))
            if expected is not None and expected != role:
                self.suspects[key] = None

    def _evict(self) -> None:
        for key in list(islice(self.heads, max(1, HEADS_CAP // 4))):
            del self.heads[key]
        self.evicted = True

    def _resolve(self) -> None:
        """Check links whose predecessor was no longer in memory, by index lookups."""
        if not self.deferred:
            return
        wanted = [(key, version - 1) for key, version, _, _ in self.deferred]
        found: dict[tuple[str, int], tuple[int, str | None]] = {}
        for row in self.table.find(wanted):
            found[(row[1], row[2])] = (row[0], self.table.recorded_hash(row[4]))
        for key, version, previous_hash, position in self.deferred:
            before = found.get((key, version - 1))
            if before is None or before[1] != previous_hash or before[0] >= position:
                self.suspects[key] = None
        self.deferred = []


def unhex_recorded(recorded: str | None) -> bytes:
    """A recorded hash as 32 bytes (ValueError when there is none or it is malformed)."""
    try:
        value = binascii.unhexlify(recorded or "")
    except binascii.Error:
        raise ValueError("malformed hash") from None
    if len(value) != 32:
        raise ValueError("malformed hash")
    return value
