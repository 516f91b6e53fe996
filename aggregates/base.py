"""Pydantic events and the chained aggregate base shared by every aggregate."""

from __future__ import annotations

import inspect
import itertools
import os
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NamedTuple, Self, TypeVar
from uuid import UUID

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    OriginatorIDError,
    OriginatorVersionError,
)
from eventsourcing.utils import register_topic, resolve_topic
from pydantic import BaseModel, ConfigDict, field_validator

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
    # _ledger_made: the order events were made in, in this process (see made_order).
    __slots__ = ("_ledger_body", "_ledger_hash", "_ledger_made")
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
    def trusted(cls, **fields: Any) -> Self:
        """An event an aggregate makes from a validated command and its own state.

        It is built without validating again (a fifth of a bulk post's time); events
        read from the store are validated by the mapper. Unknown or missing fields are
        still refused. With LEDGER_CHECK_EVENTS=1 (the test suite sets it) every trusted
        event is also validated and must equal, body included, the validated one.
        """
        return cls.trusted_from(fields)

    @classmethod
    def trusted_from(cls, fields: dict[str, Any]) -> Self:
        """``trusted`` for fields already in a dictionary of the caller's, which the
        event may keep as its own (the caller does not use it again)."""
        shape = _SHAPES.get(cls) or _shape(cls)
        # Every field given (as the aggregates mostly give them): no defaults to merge.
        values = fields if len(fields) == len(shape.names) else {**shape.defaults, **fields}
        if values.keys() != shape.names:  # a field unknown, or one without a default missing
            raise TypeError(
                f"{cls.__name__}: missing {sorted(shape.required - fields.keys())}, "
                f"unknown {sorted(fields.keys() - shape.names)}"
            )
        event = _NEW(cls)
        _SET_DICT(event, values)
        _SET_FIELDS_SET(event, set(fields))
        _SET_EXTRA(event, None)
        _SET_PRIVATE(event, None)
        # Its body and hash now: an aggregate links the next event to this hash at once,
        # and computing them lazily would cost two caught exceptions per event.
        body = canonical({**values, **shape.envelope_fields})
        _SET_BODY(event, body)
        _SET_HASH(event, digest(body))
        _SET_MADE(event, next(_MADE))
        if CHECK_EVENTS:
            _same_as_validated(event, dict(fields))
        return event

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

    @classmethod
    def from_store(cls, fields: dict[str, Any], recorded_hash: str) -> Self:
        """An event read from the store: its fields validated by the schema's own
        validator (without ``model_validate``'s wrapper), its hash as recorded (verify
        re-checks it)."""
        event: Self = cls.__pydantic_validator__.validate_python(fields)
        _SET_HASH(event, recorded_hash)
        return event

    def mutate(self, aggregate: Any) -> Any:
        """The library's checks and changes (CanMutateAggregate.mutate), on the
        aggregate's own attributes (its properties cost a tenth of a bulk post's
        checking), then the chain's head and the last time (R14)."""
        fields = self.__dict__
        originator_id, version = fields["originator_id"], fields["originator_version"]
        if originator_id is not aggregate._id and originator_id != aggregate._id:
            raise OriginatorIDError(originator_id, aggregate._id)
        if version != aggregate._version + 1:
            raise OriginatorVersionError(version, aggregate._version + 1)
        self.apply(aggregate)
        aggregate._version = version
        aggregate._modified_on = fields["timestamp"]
        aggregate.chain_head = self.event_hash
        aggregate.last_occurred_at = fields["occurred_at"]
        return aggregate

    def apply(self, aggregate: Any) -> None:
        """Evolve the aggregate's state; events without state changes keep this."""


# The slots' own descriptors: reading them directly skips pydantic's __getattr__, and
# setting them directly skips looking each name up on the class.
_BODY: Any = LedgerEvent.__dict__["_ledger_body"]
_HASH: Any = LedgerEvent.__dict__["_ledger_hash"]
_SET_BODY = _BODY.__set__
_SET_HASH = _HASH.__set__
_SET_MADE = LedgerEvent.__dict__["_ledger_made"].__set__
_MADE = itertools.count()  # events made in this process, in order
made_order: Any = LedgerEvent.__dict__["_ledger_made"].__get__  # the sort key of made events
_SET_DICT = BaseModel.__dict__["__dict__"].__set__
_SET_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE = BaseModel.__dict__["__pydantic_private__"].__set__
_NEW = object.__new__
CHECK_EVENTS = os.environ.get("LEDGER_CHECK_EVENTS") == "1"


class _Shape(NamedTuple):
    names: frozenset[str]
    required: frozenset[str]
    defaults: dict[str, Any]
    envelope_fields: dict[str, Any]  # what the body holds beyond the fields


_SHAPES: dict[type[Any], _Shape] = {}


def _shape(cls: type[LedgerEvent]) -> _Shape:
    """An event class's field names, required names and defaults, computed once."""
    fields = cls.model_fields
    shape = _SHAPES[cls] = _Shape(
        frozenset(fields),
        frozenset(name for name, info in fields.items() if info.is_required()),
        {
            name: info.get_default(call_default_factory=True)
            for name, info in fields.items()
            if not info.is_required()
        },
        {"topic": cls.TOPIC, "class_version": cls.class_version},
    )
    return shape


def _same_as_validated(event: LedgerEvent, fields: dict[str, Any]) -> None:
    validated = type(event).model_validate(fields)
    if validated.__dict__ != event.__dict__ or validated.body() != event.body():
        raise AssertionError(
            f"trusted {type(event).__name__} differs from the validated event: "
            f"{event.body()!r} != {validated.body()!r}"
        )


# The topic of every aggregate class (ChainedAggregate registers them): a created event's
# originator_topic names the class to build, and a stored body names no other.
AGGREGATE_TOPICS: set[str] = set()


class LedgerCreated(LedgerEvent, CanInitAggregate[UUID]):
    originator_topic: str

    @field_validator("originator_topic")
    @classmethod
    def _an_aggregate(cls, value: str) -> str:
        """A stored body is data: its originator_topic is resolved to a class (which
        imports a module) only if it is one of the aggregates'."""
        if value not in AGGREGATE_TOPICS:
            raise ValueError(f"unknown aggregate topic {value!r}")
        return value

    def mutate(self, aggregate: Any) -> Any:
        """The library's construction (CanInitAggregate.mutate): the base attributes,
        then ``__init__`` with the event's fields it names, found once per class (the
        library inspects them for every aggregate), then the chain's head and time."""
        assert aggregate is None
        fields = self.__dict__
        cls: Any = resolve_topic(fields["originator_topic"])
        aggregate = cls.__new__(cls)
        aggregate._id = fields["originator_id"]
        aggregate._version = fields["originator_version"]
        aggregate._created_on = aggregate._modified_on = fields["timestamp"]
        aggregate._pending_events = []
        names = _INIT_NAMES.get(cls)
        if names is None:
            names = _INIT_NAMES[cls] = frozenset(inspect.signature(cls.__init__).parameters)
        kwargs = {name: fields[name] for name in names if name in fields}
        if "id" in names:  # as the library does for an __init__ that takes the id
            kwargs["id"] = fields["originator_id"]
        aggregate.__init__(**kwargs)
        self.apply(aggregate)
        aggregate.chain_head = self.event_hash
        aggregate.last_occurred_at = fields["occurred_at"]
        return aggregate


_INIT_NAMES: dict[type[Any], frozenset[str]] = {}


class ChainedAggregate(BaseAggregate[UUID]):
    """An aggregate whose events each carry the hash of its previous event."""

    TOPIC: ClassVar[str]
    chain_head: str
    last_occurred_at: datetime

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TOPIC" in cls.__dict__:
            register_topic(cls.TOPIC, cls)
            AGGREGATE_TOPICS.add(cls.TOPIC)

    @classmethod
    def _start(cls, event_class: type[LedgerCreated], *, id: UUID, **kwargs: Any) -> Self:
        check_not_in_future(kwargs["occurred_at"])
        kwargs["originator_topic"] = cls.TOPIC
        kwargs["originator_id"] = id
        kwargs["originator_version"] = cls.INITIAL_VERSION
        kwargs["timestamp"] = event_class.create_timestamp()
        kwargs["prev_hash"] = GENESIS
        created = event_class.trusted_from(kwargs)
        aggregate: Self = created.mutate(None)
        aggregate._pending_events.append(created)
        return aggregate

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        """Check R14's times, link the event to the chain, apply and hold it."""
        self.check_occurred_at(kwargs["occurred_at"])
        kwargs["originator_id"] = self._id
        kwargs["originator_version"] = self._version + 1
        # Recorded times never go back along an aggregate's events, even when the wall
        # clock is stepped back between two of them: --known-at cuts a history where they
        # pass a moment, so a later event recorded "earlier" would hide its predecessors.
        recorded = event_class.create_timestamp()
        if recorded <= self._modified_on:
            recorded = self._modified_on + _MICROSECOND
        kwargs["timestamp"] = recorded
        kwargs["prev_hash"] = self.chain_head
        new_event = event_class.trusted_from(kwargs)
        new_event.mutate(self)
        self._pending_events.append(new_event)

    def check_occurred_at(self, occurred_at: datetime) -> None:
        """R14: not in the future, not before the aggregate's previous event."""
        check_not_in_future(occurred_at)
        if occurred_at < self.last_occurred_at:
            raise RuleViolation(
                "R14",
                f"occurred-at {occurred_at.isoformat()} is before the previous event "
                f"({self.last_occurred_at.isoformat()})",
            )


def check_not_in_future(occurred_at: datetime) -> None:
    """R14. A time up to the latest clock reading taken here is past already; only a later
    one needs the clock read again (a bulk post of past events reads it once, not per event)."""
    if occurred_at <= _LATEST_NOW[0]:
        return
    now = datetime.now(tz=UTC)
    _LATEST_NOW[0] = max(now, _LATEST_NOW[0])
    if occurred_at > now:
        raise RuleViolation("R14", f"occurred-at {occurred_at.isoformat()} is in the future")


_MICROSECOND = timedelta(microseconds=1)
_LATEST_NOW = [datetime.min.replace(tzinfo=UTC)]  # the clock never reads earlier than this
