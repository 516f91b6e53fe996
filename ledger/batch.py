"""A unit of work: the aggregates one or many commands touch, saved in one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from aggregates.actor import Actor, ActorView, actor_uuid
from aggregates.base import ChainedAggregate, made_order
from aggregates.code_claim import CodeClaim, code_uuid
from aggregates.directorate import DIRECTORATE_ID, Change, Directorate
from aggregates.errors import InvalidInput, NotFound, RuleViolation
from aggregates.record import Record
from aggregates.refusal import Refusal
from aggregates.rules import check_may_post
from aggregates.values import ACTOR_ID, Role

if TYPE_CHECKING:
    from ledger.application import Ledger
    from ledger.recorders import Posted

# Refusals under these rules are recorded as events of their own (R18, R19).
RECORDED_RULES = frozenset({"R5", "R6", "R7", "R8", "R19"})
# ... and under these, of these commands (with an appraisal's decision): every improper
# destruction attempt (R11: the retention has not run out, a committee too small, ...; R12:
# no standing decision, an approver who is no leader, too few witnesses, ...), an appraisal
# for destruction being its first step, and every attempted use of a destroyed record
# (R12: an access to the record, as R18 keeps one). Other appraisals refused under R11 are
# mistakes in what was posted (a retain without a review date), and other commands on a
# destroyed record reach nothing it held: reported only.
_USE_OF_DESTROYED = frozenset({"R12"})
RECORDED_FOR: dict[tuple[str, str | None], frozenset[str]] = {
    ("destroy", None): frozenset({"R11", "R12"}),
    ("appraise", "destroy"): frozenset({"R11"}),
    ("consult", None): _USE_OF_DESTROYED,
    ("copy", None): _USE_OF_DESTROYED,
    ("lend", None): _USE_OF_DESTROYED,
}


def is_recorded(rule: str, action: str, decision: str | None = None) -> bool:
    """Whether a refusal under ``rule`` of ``action`` (an appraisal deciding ``decision``)
    is kept as a refused attempt."""
    return rule in RECORDED_RULES or rule in RECORDED_FOR.get((action, decision), ())


class Batch:
    """Caches what its commands load, holds what they change, saves it all at once.

    ``careful`` batches check the store before creating records and code claims;
    fast batches leave that to the primary key and are re-run carefully on a collision.
    """

    def __init__(self, app: Ledger, *, careful: bool = True) -> None:
        self.app = app
        self.careful = careful
        self.records: dict[UUID, Record] = {}
        self.actors: dict[str, Actor | None] = {}
        self.views: dict[str, tuple[int, ActorView]] = {}  # actor id -> (version, view)
        self.allowed: dict[tuple[str, str], tuple[int, ActorView]] = {}  # passed R19
        self.claims: dict[str, CodeClaim | None] = {}
        self.directorate: Directorate | None = None  # once read or made (R19)
        self.directorate_read = False
        self.seeded: set[str] = set()  # actors an uncommitted batch before this one changed
        self.ids: dict[str, UUID] = {}  # record ids as written -> parsed
        self.new: list[ChainedAggregate] = []
        self.refusals = 0  # refused attempts recorded (``refuse``)
        self.posted: list[Posted] = []  # posted-line keys (ledger.recorders)
        # R6, R19: the actors (authority, clearance) the commands were checked against
        # and did not change, with the versions read: the write is refused if another
        # writer changed one since (ledger.recorders: ReadChanged), and run again.
        self.relied: list[tuple[UUID, int | None]] = []
        self.absent: set[str] = set()  # actor ids read and not found
        # What the batch's commands name and make, asked for when a record or a code must
        # first be read from the store, to read them all at once (see ``preload``).
        self.upcoming: Callable[[], tuple[list[str], set[Any]]] | None = None

    # -- loading ----------------------------------------------------------

    def _get(self, aggregate_id: UUID) -> Any:
        try:
            return self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def actor(self, actor_id: str) -> ActorView:
        """A named person (reader, approver, witness...): must exist (exit 4)."""
        found = self._actor(actor_id)
        if found is None:
            raise NotFound(f"actor {actor_id!r} is not registered")
        return self._view(found)

    def _view(self, actor: Actor) -> ActorView:
        """The actor's view, built once per version of the actor (a batch may change it)."""
        cached = self.views.get(actor.actor_id)
        if cached is not None and cached[0] == actor.version:
            return cached[1]
        view = actor.view()
        self.views[actor.actor_id] = (actor.version, view)
        return view

    def _actor(self, actor_id: str) -> Actor | None:
        if actor_id not in self.actors:
            found = self._get(actor_uuid(actor_id))  # not an Actor: a record that took its id
            self.actors[actor_id] = found if isinstance(found, Actor) else None
            if found is None:
                self.absent.add(actor_id)
        return self.actors[actor_id]

    def acting(self, actor_id: str | None, action: str) -> ActorView:
        """R19: the acting actor is registered, active, bound role matches, role allows
        (checked once per actor, action and version of the actor in a batch)."""
        if actor_id is not None:
            passed = self.allowed.get((actor_id, action))
            actor = self.actors.get(actor_id)
            if passed is not None and actor is not None and passed[0] == actor.version:
                return passed[1]
        view = self._acting(actor_id, action)
        actor = self.actors[view.id]
        assert actor is not None
        self.allowed[(view.id, action)] = (actor.version, view)
        return view

    def _acting(self, actor_id: str | None, action: str) -> ActorView:
        if not actor_id:
            raise InvalidInput("no acting actor: give --actor ID or set LEDGER_ACTOR")
        # Whole: "$" alone lets a trailing newline through (an attempt by "arch\n", an id
        # that prints as arch's, was recorded as an unregistered actor's).
        if not ACTOR_ID.fullmatch(actor_id):
            raise InvalidInput(f"acting actor {actor_id!r} is not an actor id")
        found = self._actor(actor_id)
        if found is None:
            raise RuleViolation("R19", f"actor {actor_id!r} is not registered and may not act")
        view = self._view(found)
        session_role = self.app.db_role
        if view.db_role and session_role is not None and view.db_role != session_role:
            raise RuleViolation(
                "R19",
                f"actor {actor_id} is bound to database role {view.db_role}; "
                f"this session is {session_role}",
            )
        if not view.db_role and session_role is not None and not self.app.owns_tables:
            raise RuleViolation(  # an officer's role acts as its own actors only
                "R19",
                f"database role {session_role} does not own the ledger's tables: its "
                f"sessions act only as actors bound to it ({actor_id} is bound to none)",
            )
        check_may_post(view, action)
        return view

    def another_director(self, actor_id: str) -> bool:
        """R19: whether an active director other than ``actor_id`` is registered (the
        stored actors, as this batch leaves them). The directorate is read first: a
        loss of a director committed after it collides with this batch's
        (``director_left``), one committed before it shows in the actors read next."""
        self._read_directorate()
        actors = {a.actor_id: a for a in self.app.actors()}
        # This batch's state of an actor wins where it is newer than the store's: one it
        # changes, or one a batch before it changed and has not committed (``seed``). One
        # it only read may be older than the directorate (a director's authority checked
        # before a concurrent loss): the store's is taken.
        actors.update(
            (i, a)
            for i, a in self.actors.items()
            if a is not None and (a.pending_events or i in self.seeded)
        )
        return any(
            a.active and Role.DIRECTOR in a.roles for i, a in actors.items() if i != actor_id
        )

    def actor_aggregate(self, actor_id: str) -> Actor:
        found = self._actor(actor_id)
        if found is None:
            raise NotFound(f"actor {actor_id!r} is not registered")
        return found

    def record(self, ref: str) -> Record:
        """A record named by its id or its archival code."""
        record_id = self.resolve(ref)
        if record_id not in self.records:
            self._read_upcoming()
        if record_id not in self.records:
            found = self._get(record_id)
            if not isinstance(found, Record):
                raise NotFound(f"record {ref!r} not found")
            self.records[record_id] = found
        return self.records[record_id]

    def resolve(self, ref: str) -> UUID:
        known = self.claims.get(ref)  # an archival code this batch has seen: no parsing
        if known is not None:
            return known.record_id
        parsed = self.ids.get(ref)  # an id this batch has parsed
        if parsed is not None:
            return parsed
        parsed = _parse_id(ref)
        if parsed is not None:
            self.ids[ref] = parsed
            return parsed
        if ref not in self.claims:
            self._read_upcoming()
        claim = self.claim(ref)
        if claim is None:
            raise NotFound(f"record {ref!r} not found (no record has that id or archival code)")
        return claim.record_id

    def _read_upcoming(self) -> None:
        """Before the first read of a record or code from the store: read all that the
        batch's commands name (once)."""
        upcoming, self.upcoming = self.upcoming, None
        if upcoming is not None:
            self.preload(*upcoming())

    def preload(self, refs: Iterable[str], new: set[Any]) -> None:
        """Load the stored records that ``refs`` name (by id or archival code; the claims
        of the codes first) in a few queries, instead of two for each line that names
        one (bulk posting: a chunk's lines), but not the records and codes in ``new``
        (ids and codes the lines make). What this batch holds already (made here, or
        handed on by the chunk before) stays as it is; what is not stored is looked up
        again when a line names it, as without this."""
        codes: list[str] = []
        record_ids: set[UUID] = set()
        for ref in set(refs):
            if ref in new:
                continue
            if ref in self.claims:
                known = self.claims[ref]
                if known is not None:
                    record_ids.add(known.record_id)
            elif (parsed := self.ids.get(ref) or _parse_id(ref)) is not None:
                self.ids[ref] = parsed
                if parsed not in new:
                    record_ids.add(parsed)
            else:
                codes.append(ref)
        claims = self.claims_of(codes)
        for code in codes:
            claim = self.claims[code] = claims.get(code)
            if claim is not None:
                record_ids.add(claim.record_id)
        wanted = [i for i in record_ids if i not in self.records]
        for record_id, record in self.app.repository.get_many(wanted).items():
            if isinstance(record, Record):
                self.records[record_id] = record

    def claims_of(self, codes: list[str]) -> dict[str, CodeClaim]:
        """The stored claims of ``codes``, read at once (codes with none are left out)."""
        ids = {code_uuid(code): code for code in codes}
        found = self.app.repository.get_many(list(ids))
        return {ids[i]: claim for i, claim in found.items() if isinstance(claim, CodeClaim)}

    def claim(self, code: str) -> CodeClaim | None:
        if code not in self.claims:
            found = self._get(code_uuid(code))
            self.claims[code] = found if isinstance(found, CodeClaim) else None
        return self.claims[code]

    def record_exists(self, record_id: UUID) -> bool:
        if record_id in self.records:
            return True
        return self.careful and self._get(record_id) is not None

    # -- changing ---------------------------------------------------------

    def add(self, aggregate: ChainedAggregate) -> None:
        self.new.append(aggregate)
        self._know(aggregate)

    def _know(self, aggregate: Any) -> None:
        """Cache an aggregate this batch made or was handed, by what names it."""
        if isinstance(aggregate, Record):
            self.records[aggregate.id] = aggregate
        elif isinstance(aggregate, CodeClaim):
            self.claims[aggregate.code] = aggregate
        elif isinstance(aggregate, Actor):
            self.actors[aggregate.actor_id] = aggregate
        elif isinstance(aggregate, Directorate):
            self.directorate = aggregate
            self.directorate_read = True

    def director_left(self, director: str, change: Change, by: str, occurred_at: datetime) -> None:
        """R19: an active director is one no longer. Written to the directorate at the
        version this batch read, so that a concurrent loss of another director collides
        with this one (aggregates.directorate)."""
        self._read_directorate()
        if self.directorate is None:
            self.add(
                Directorate.first_loss(
                    director=director, change=change, by=by, occurred_at=occurred_at
                )
            )
        else:
            self.directorate.lose(director=director, change=change, by=by, occurred_at=occurred_at)

    def _read_directorate(self) -> None:
        if not self.directorate_read:
            found = self._get(DIRECTORATE_ID)
            self.directorate = found if isinstance(found, Directorate) else None
            self.directorate_read = True

    def check_code_free(self, code: str, record: Record) -> None:
        """R3: the code is unique across the ledger (fast batches leave the store's
        copy of this check to the primary key of the claim)."""
        existing = self.claim(code) if self.careful else self.claims.get(code)
        if existing is not None and existing.record_id != record.id:
            raise RuleViolation(
                "R3", f"archival code {code} is already assigned to record {existing.record_id}"
            )

    def claim_code(self, code: str, record: Record, actor: str, occurred_at: datetime) -> None:
        """Claim the code in the arrangement's own save: uniqueness is atomic."""
        self.add(
            CodeClaim.claim(code=code, record_id=record.id, actor=actor, occurred_at=occurred_at)
        )

    def refuse(
        self,
        error: RuleViolation,
        *,
        action: str,
        actor: str,
        record: Record | None,
        details: dict[str, Any],
        occurred_at: datetime | None = None,
    ) -> None:
        """R18/R19 (R11 and R12 of a destruction, R11 of an appraisal for destruction, R12
        of a use): keep the refused attempt, without touching the record.

        It is kept at the time it claims, unless that time is in the future or before the
        record's previous event (an attempt by an unregistered actor is checked before
        R14): then at the time it was posted, with the claimed time in its reason, so the
        audit trail never dates an attempt before the record's history, with a secrecy
        the record did not have then."""
        if not is_recorded(error.rule, action, details.get("decision")):
            return
        self.refusals += 1
        now = datetime.now(tz=UTC)
        when, reason = occurred_at or now, error.message
        if when > now or (record is not None and when < record.last_occurred_at):
            why = "in the future" if when > now else "before the record's previous event"
            reason += (
                f" (claimed occurred-at {when.isoformat()}, {why}: kept at the time it was posted)"
            )
            when = now
        self.new.append(
            Refusal.record(
                actor=actor,
                occurred_at=when,
                action=action,
                rule=error.rule,
                reason=reason,
                record_id=record.id if record else None,
                code=record.code if record else None,
                secrecy=record.secrecy if record else None,
                **details,
            )
        )

    def pending(self) -> list[Any]:
        seen: dict[int, Any] = {}
        for aggregate in [
            *self.new,
            *self.records.values(),
            *(a for a in self.actors.values() if a is not None),
            *([self.directorate] if self.directorate is not None else []),
        ]:
            seen.setdefault(id(aggregate), aggregate)
        return [a for a in seen.values() if a.pending_events]

    def seed(self, changed: list[Any]) -> None:
        """Start from the aggregates an earlier batch changed and has not committed yet
        (their state in the store lags behind them); see ledger.bulk."""
        for aggregate in changed:
            self._know(aggregate)
            if isinstance(aggregate, Actor):
                self.seeded.add(aggregate.actor_id)

    def collect(self) -> tuple[list[Any], list[Any]]:
        """(the aggregates with new events, those events), the events taken off them;
        the actors read and not changed are kept as relied on (see ``insertion``).

        The events are in the order they were made, which is the order of the lines that
        made them: the log's positions follow the lines (an actor's new role before the
        record events that rely on it), whatever the recorded times say (an aggregate's
        run ahead of the clock when another host's clock did).
        """
        changed = self.pending()
        self._note_relied()
        events = [event for a in changed for event in a.collect_events()]
        events.sort(key=made_order)
        return changed, events

    def save_refusals(self) -> None:
        """A refused command: write its refused attempts alone (R11, R12, R18, R19), on the same
        condition as any write, that the actors it was checked against are unchanged."""
        refusals = [a for a in self.new if a.pending_events and isinstance(a, Refusal)]
        if refusals:
            self._note_relied()
            self.insertion([event for a in refusals for event in a.collect_events()])()()

    def _note_relied(self) -> None:
        """The actors read and not changed, at the versions read; and those read as not
        registered (version None: none may be registered since)."""
        actors = self.actors
        self.relied = [(a.id, a.version) for a in actors.values() if a and not a.pending_events]
        self.relied += [(actor_uuid(i), None) for i in self.absent if actors.get(i) is None]

    def insertion(self, events: list[Any]) -> Callable[[], Callable[[], None]]:
        """The insert of ``events`` and the posted-line keys, their rows built now: it
        inserts them in one transaction and returns what commits it. Bulk posting runs
        it in its own thread or on a thread of its own (see ledger.bulk).

        The events go straight to the event store: ``Application.save`` would only add
        per-object protocol checks, snapshots (not used) and local notifications (our
        recorders return no notification ids), which cost more than the write itself
        in bulk posting.
        """
        if not (events or self.posted):
            return _no_insert
        recorder: Any = self.app.recorder
        rows = self.app.mapper.to_rows(events, recorder.stored_id)  # type: ignore[attr-defined]
        posted = self.posted
        relied = [(recorder.stored_id(i), version) for i, version in self.relied]
        return lambda: recorder.insert_uncommitted(rows, posted, relied)

    def save(self) -> int:
        """Write every pending event and the posted-line keys in one transaction."""
        events = self.collect()[1]
        commit = self.insertion(events)()
        commit()
        return len(events)


def _parse_id(ref: str) -> UUID | None:
    try:
        return UUID(ref)
    except ValueError:
        return None


def _nothing_to_commit() -> None:
    """Nothing to commit."""


def _no_insert() -> Callable[[], None]:
    """Nothing to insert."""
    return _nothing_to_commit
