"""`ledger seal`: a digest of the whole event log, recorded as the next seal.

The digest is D_n over the n events up to the log's head, in log order (aggregates.seal).
Sealing first runs `verify`'s checks over the whole log, sealed segments included: a log
in which verify would find anything wrong (a segment that no longer matches its seal, a
row whose columns or body are not as the ledger wrote them) is not sealed (exit 6).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from aggregates.chain import GENESIS
from aggregates.errors import Conflict, IntegrityFailure, RuleViolation
from aggregates.seal import SEAL_ID, SEALED_TOPIC, Seal
from ledger.application import RETRIES, Ledger
from ledger.batch import Batch
from ledger.integrity import ZERO, EventTable, link_bytes, open_table, unhex
from ledger.mapper import KNOWN_TOPICS
from ledger.sketch import Sketch

if TYPE_CHECKING:
    from ledger.scan import LogScan
    from ledger.verify import Report


@dataclass(frozen=True)
class SealReceipt:
    number: int
    position: int
    events: int
    digest: str
    sealed_at: datetime
    previous_position: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "seal": self.number,
            "position": self.position,
            "events": self.events,
            "digest": self.digest,
            "sealed_at": self.sealed_at.isoformat(),
            "previous_position": self.previous_position,
        }


@dataclass
class LogMeasure:
    position: int
    events: int
    digest: str
    sketch: Sketch
    matches: bool  # the log up to the last seal's position still has its digest


def seal_log(ledger: Ledger, actor: str | None) -> SealReceipt:
    """Seal the log up to its head, as ``actor`` (an archivist, director or auditor).

    The seal is saved on the condition every write has, that the actor it was checked
    against is unchanged (ledger.batch): an auditor deactivated while the log was read
    seals nothing. That, or another seal saved meanwhile, has the seal made again from
    the start, the actor checked again (at most RETRIES attempts, as a command's)."""
    for _ in range(RETRIES):
        try:
            return _seal_once(ledger, actor)
        except IntegrityError:
            continue
    raise Conflict(
        "other seals, or changes to the acting actor, were saved during each attempt; "
        "run the command again"
    )


def _seal_once(ledger: Ledger, actor: str | None) -> SealReceipt:
    batch = Batch(ledger)
    try:
        acting = batch.acting(actor, "seal")
    except RuleViolation as error:
        batch.refuse(error, action="seal", actor=actor or "", record=None, details={})
        batch.save()
        raise
    seal = _load_seal(ledger)
    with open_table(ledger) as table:
        measure = measure_log(table, seal)
        check_log(table, measure.position)
    if seal is not None and not measure.matches:  # check_log read the same seals: a backstop
        raise IntegrityFailure(
            f"the log no longer matches seal {seal.number} at position {seal.position}; "
            "run `ledger verify`; nothing was sealed"
        )
    now = datetime.now(tz=UTC)
    if seal is None:
        seal = Seal.start(actor=acting.id, occurred_at=now)
    seal.seal(
        actor=acting.id,
        occurred_at=now,
        position=measure.position,
        events=measure.events,
        digest=measure.digest,
        sketch=measure.sketch.encode(),
    )
    sealed = seal.pending_events[-1]
    batch.add(seal)
    batch.save()
    return SealReceipt(
        number=seal.number,
        position=measure.position,
        events=measure.events,
        digest=measure.digest,
        sealed_at=sealed.timestamp,
        previous_position=sealed.previous_position,  # type: ignore[attr-defined]
    )


def _load_seal(ledger: Ledger) -> Seal | None:
    try:
        found: Any = ledger.repository.get(SEAL_ID)
    except AggregateNotFoundError:
        return None
    if not isinstance(found, Seal):
        raise IntegrityFailure(
            f"aggregate {SEAL_ID} is not the chain of seals; run `ledger verify`"
        )
    return found


def measure_log(table: EventTable, last: Seal | None) -> LogMeasure:
    """Digest of the log up to its head, compared with the last seal's on the way; the
    sketch covers the events after the last seal."""
    head = table.head()
    sealed_at = last.position if last is not None else 0
    digest, events, sketch = ZERO, 0, Sketch()
    matches: bool | None = True if last is None else None
    for position, key, version, topic, recorded in table.hashes(None, head):
        if matches is None and position > sealed_at:
            matches = _matches(last, digest, events)
        if topic not in KNOWN_TOPICS:  # an event no command can read (its topic rewritten)
            raise _odd_row(position)
        try:
            event_hash = unhex(recorded or "")
        except ValueError:
            raise IntegrityFailure(
                f"the event at position {position} is unreadable; run `ledger verify`; "
                "nothing was sealed"
            ) from None
        digest = link_bytes(digest, event_hash)
        events += 1
        if last is None or position > sealed_at:
            try:
                sketch.add(position, key, version, topic, event_hash)
            except ValueError:  # SQLite: a version, originator or topic set to another type
                raise _odd_row(position) from None
    if matches is None:
        matches = _matches(last, digest, events)
    return LogMeasure(head, events, digest.hex(), sketch, matches)


def check_log(table: EventTable, head: int) -> None:
    """IntegrityFailure (exit 6) unless `verify`'s checks (ledger.verify.check_table) find
    nothing wrong with the log up to ``head``: every row's body matches its recorded hash
    and names the row's originator, version and topic (the topic column is covered by no
    hash, nor by a seal's digest), links to its originator's previous event, was written
    by its actor's bound role (PostgreSQL), and every seal's segment still has the digest
    it recorded. Rows the earlier seals cover are checked as those after them: a seal is
    never made over a log that no longer holds what they recorded. The line names the
    first problem verify lists."""
    from ledger.verify import Report, check_table  # (it imports this module)

    report = Report(head=head)
    scan, _ = check_table(table, report)
    if report.intact:
        return
    raise IntegrityFailure(
        f"{_first_problem(report, scan)}; run `ledger verify`; nothing was sealed"
    )


def _first_problem(report: Report, scan: LogScan) -> str:
    """What `seal` says of a log `verify` finds wrong."""
    if scan.suspects:
        key = scan.ordered_suspects()[0]
        position = scan.suspects[key]
        line = next((p.line() for p in report.problems if p.key == key), None)
        sealed = next((s for s in report.seals if s.position >= position), None)
        recorded = f" and seal {sealed.number} recorded it" if sealed else ""
        why = f" ({line})" if line else ""
        return f"the event at position {position} is not as the ledger wrote it{recorded}{why}"
    named = [p for p in report.problems if p.key is not None] or report.problems
    if scan.failed:
        seal = scan.failed[0][0]
        return f"the log no longer matches seal {seal.number} at position {seal.position} " + (
            f"({named[0].line()})"
        )
    return f"the log does not hold what its seals recorded ({named[0].line()})"


def _odd_row(position: int) -> IntegrityFailure:
    return IntegrityFailure(
        f"the event at position {position} has a version, originator or topic the ledger "
        "never writes; run `ledger verify`; nothing was sealed"
    )


def _matches(last: Seal | None, digest: bytes, events: int) -> bool:
    return last is None or (digest.hex() == last.digest and events == last.events)


# -- the seals as stored, for `verify` -------------------------------------------


@dataclass(frozen=True)
class SealEntry:
    """One Sealed event as read from the table (not trusted until checked)."""

    number: int
    stored_at: int  # the Sealed event's own position
    position: int
    events: int
    digest: str
    previous_position: int
    previous_digest: str
    sketch: str
    sealed_at: str
    events_in_segment: int = 0  # set when the seals are planned

    def as_dict(self) -> dict[str, Any]:
        return {
            "seal": self.number,
            "position": self.position,
            "events": self.events,
            "digest": self.digest,
            "sealed_at": self.sealed_at,
        }


@dataclass(frozen=True)
class Checkpoint:
    """A position where the log's digest is compared: a seal's, or one given by hand."""

    position: int
    digest: str
    seal: SealEntry | None = None

    @property
    def restart(self) -> bytes:
        """The next segment starts from the digest the seal recorded."""
        try:
            return unhex(self.digest)
        except ValueError:
            return ZERO

    @staticmethod
    def plan(
        seals: list[SealEntry], given_position: int | None, given_digest: str
    ) -> list[Checkpoint]:
        points = [Checkpoint(seal.position, seal.digest, seal) for seal in seals]
        if given_position is not None:
            points.append(Checkpoint(given_position, given_digest))
        points.sort(key=lambda p: (p.position, p.seal is not None))
        return points


def read_seals(table: EventTable, head: int) -> tuple[list[SealEntry], list[str]]:
    """The seals stored in the log, and why any of them cannot be used."""
    seals: list[SealEntry] = []
    unusable: list[str] = []
    for position, _, _, topic, state, _ in table.chain(SEAL_ID.hex):
        if topic != SEALED_TOPIC or position > head:
            continue
        try:
            body, recorded = table.decode(state)
            if hashlib.sha256(body).hexdigest() != recorded:
                raise ValueError("its own hash does not match: the seal was changed")
            fields = orjson.loads(body)
            seals.append(
                SealEntry(
                    number=int(fields["number"]),
                    stored_at=position,
                    position=int(fields["position"]),
                    events=int(fields["events"]),
                    digest=str(fields["digest"]),
                    previous_position=int(fields["previous_position"]),
                    previous_digest=str(fields["previous_digest"]),
                    sketch=str(fields["sketch"]),
                    sealed_at=str(fields["timestamp"]),
                )
            )
        except Exception as error:
            unusable.append(f"the seal stored at position {position} is not used: {error}")
    faults = _seal_chain_faults(seals)
    seals.sort(key=lambda s: s.position)
    events = 0
    for index, seal in enumerate(seals):
        seals[index] = replace(seal, events_in_segment=seal.events - events)
        events = seal.events
    return seals, unusable + faults


def _seal_chain_faults(seals: list[SealEntry]) -> list[str]:
    faults: list[str] = []
    previous: SealEntry | None = None
    for seal in seals:
        if seal.stored_at <= seal.position:
            faults.append(
                f"seal {seal.number} (stored at position {seal.stored_at}) claims to cover "
                f"position {seal.position}, after itself (a forged seal)"
            )
        before = (previous.position, previous.digest) if previous else (0, GENESIS)
        if (seal.previous_position, seal.previous_digest) != before:
            faults.append(
                f"seal {seal.number} does not follow the seal before it (it names position "
                f"{seal.previous_position}, the seal before covers {before[0]})"
            )
        if previous is not None and seal.number != previous.number + 1:
            faults.append(f"seal {seal.number} follows seal {previous.number} (a seal is missing)")
        previous = seal
    return faults
