"""Pydantic events and the chained aggregate base shared by every aggregate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID

from eventsourcing.domain import BaseAggregate, CanInitAggregate, CanMutateAggregate
from eventsourcing.utils import register_topic
from pydantic import BaseModel, ConfigDict

from aggregates.chain import GENESIS, canonical, digest
from aggregates.errors import RuleViolation
from aggregates.values import ActorId, Moment

TAgg = TypeVar("TAgg", bound="ChainedAggregate")


class LedgerEvent(BaseModel, CanMutateAggregate[UUID]):
    """Base of every stored event: who, when (two times), and the chain link."""

    # defer_build: an event class's validator is built when first used, so a command
    # that reads a few kinds of event does not pay for building all of them at start-up.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)
    # The canonical body and its hash, computed once: plain slots, not pydantic private
    # attributes, whose per-instance initialisation cost more than validating the event.
    __slots__ = ("_ledger_body", "_ledger_hash")
    TOPIC: ClassVar[str]
    NAME: ClassVar[str]  # the event's name in custody chains, e.g. "lent"
    class_version: ClassVar[int] = 1

    originator_id: UUID
    originator_version: int
    timestamp: Moment  # when it was recorded
    occurred_at: Moment  # when it happened (R14)
    actor: ActorId
    prev_hash: str

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "TOPIC" in cls.__dict__:
            register_topic(cls.TOPIC, cls)

    @classmethod
    def create_timestamp(cls) -> datetime:
        return datetime.now(tz=UTC)

    def body(self) -> bytes:
        """The canonical bytes that the event's hash covers (see aggregates.chain)."""
        try:
            return _BODY.__get__(self)  # type: ignore[no-any-return]
        except AttributeError:  # not computed yet (the slot's own error: no __getattr__)
            fields = dict(self.__dict__, topic=self.TOPIC, class_version=self.class_version)
            body = canonical(fields)
            _BODY.__set__(self, body)
            return body

    @property
    def event_hash(self) -> str:
        try:
            return _HASH.__get__(self)  # type: ignore[no-any-return]
        except AttributeError:
            value = digest(self.body())
            _HASH.__set__(self, value)
            return value

    def restore_hash(self, recorded: str) -> None:
        """Set by the mapper on load: the hash as recorded (verify re-checks it)."""
        _HASH.__set__(self, recorded)

    def mutate(self, aggregate: Any) -> Any:
        aggregate = super().mutate(aggregate)
        aggregate.chain_head = self.event_hash
        aggregate.last_occurred_at = self.occurred_at
        return aggregate

    def apply(self, aggregate: Any) -> None:
        """Evolve the aggregate's state; events without state changes keep this."""


# The slots' own descriptors: reading them directly skips pydantic's __getattr__.
_BODY: Any = LedgerEvent.__dict__["_ledger_body"]
_HASH: Any = LedgerEvent.__dict__["_ledger_hash"]


class LedgerCreated(LedgerEvent, CanInitAggregate[UUID]):
    originator_topic: str

    def mutate(self, aggregate: Any) -> Any:
        aggregate = CanInitAggregate.mutate(self, aggregate)
        aggregate.chain_head = self.event_hash
        aggregate.last_occurred_at = self.occurred_at
        return aggregate


class ChainedAggregate(BaseAggregate[UUID]):
    """An aggregate whose events each carry the hash of its previous event."""

    TOPIC: ClassVar[str]
    chain_head: str
    last_occurred_at: datetime

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TOPIC" in cls.__dict__:
            register_topic(cls.TOPIC, cls)

    @classmethod
    def _start(cls, event_class: type[LedgerCreated], *, id: UUID, **kwargs: Any) -> Self:
        occurred_at = kwargs["occurred_at"]
        check_not_in_future(occurred_at)
        return cls._create(event_class, id=id, prev_hash=GENESIS, **kwargs)

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """Check R14's times, link the event to the chain, apply and hold it."""
        occurred_at = kwargs["occurred_at"]
        check_not_in_future(occurred_at)
        if occurred_at < self.last_occurred_at:
            raise RuleViolation(
                "R14",
                f"occurred-at {occurred_at.isoformat()} is before the previous event "
                f"({self.last_occurred_at.isoformat()})",
            )
        new_event = event_class(
            originator_id=self.id,
            originator_version=self.version + 1,
            timestamp=event_class.create_timestamp(),
            prev_hash=self.chain_head,
            **kwargs,
        )
        new_event.mutate(self)
        self.pending_events.append(new_event)


def check_not_in_future(occurred_at: datetime) -> None:
    if occurred_at > datetime.now(tz=UTC):
        raise RuleViolation("R14", f"occurred-at {occurred_at.isoformat()} is in the future")
