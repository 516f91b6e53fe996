"""Events apply themselves to aggregates as the event-sourcing library's own methods do.

LedgerEvent.mutate and LedgerCreated.mutate do the library's checks and changes
(CanMutateAggregate.mutate, CanInitAggregate.mutate) on the aggregate's attributes
directly, for speed: these tests replay the same events both ways and compare.
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import (
    CanInitAggregate,
    CanMutateAggregate,
    OriginatorIDError,
    OriginatorVersionError,
)

from aggregates.base import ChainedAggregate, LedgerCreated
from aggregates.record import Record
from aggregates.values import Condition
from tests.test_rules import ARCHIVIST, LEADER, T0, later, on_loan


def library_replay(events: list[Any]) -> Any:
    """The aggregate the library's own mutate methods make of ``events``, with the chain's
    head and last time set as ours set them."""
    aggregate = None
    for event in events:
        if isinstance(event, CanInitAggregate):
            aggregate = CanInitAggregate.mutate(event, None)
        else:
            aggregate = CanMutateAggregate.mutate(event, aggregate)
        aggregate.chain_head = event.event_hash
        aggregate.last_occurred_at = event.occurred_at
    return aggregate


def own_replay(events: list[Any]) -> Any:
    aggregate = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def lived_record() -> tuple[Record, list[Any]]:
    record = on_loan()
    record.return_(actor=ARCHIVIST, occurred_at=later(record), pages=record.pages,
                   condition=Condition.DAMAGED)  # fmt: skip
    return record, list(record.pending_events)


def test_a_replayed_record_equals_the_librarys_replay_and_the_live_record() -> None:
    record, events = lived_record()
    ours = own_replay(events)
    assert ours.pending_events == []
    assert vars(ours) == vars(library_replay(events))
    assert {k: v for k, v in vars(ours).items() if k != "_pending_events"} == {
        k: v for k, v in vars(record).items() if k != "_pending_events"
    }
    assert ours.version == len(events) and ours.discrepancy is not None


def test_an_event_of_another_aggregate_is_refused_and_changes_nothing() -> None:
    _, events = lived_record()
    ours = own_replay(events[:2])
    before = dict(vars(ours))
    stranger = type(events[2]).model_validate({**events[2].__dict__, "originator_id": uuid4()})
    with pytest.raises(OriginatorIDError):
        stranger.mutate(ours)
    assert vars(ours) == before


@pytest.mark.parametrize("skip", [0, 2])  # the same version again, and one ahead
def test_an_event_out_of_sequence_is_refused_and_changes_nothing(skip: int) -> None:
    _, events = lived_record()
    ours = own_replay(events[:3])
    before = dict(vars(ours))
    with pytest.raises(OriginatorVersionError):
        events[2 + skip].mutate(ours)
    assert vars(ours) == before


class _Made(LedgerCreated):
    TOPIC: ClassVar[str] = "tests/Thing/Made"
    NAME: ClassVar[str] = "made"
    label: str


class _Thing(ChainedAggregate):
    """An aggregate whose __init__ takes its id, as the library allows."""

    TOPIC = "tests/Thing"

    def __init__(self, id: UUID, label: str) -> None:
        self.seen_id = id
        self.label = label


def test_an_aggregate_whose_init_takes_its_id_is_given_it() -> None:
    thing = _Thing._start(_Made, id=uuid4(), actor=LEADER.id, occurred_at=T0, label="x")
    assert thing.seen_id == thing.id and thing.label == "x" and thing.version == 1
    made = thing.pending_events[0]
    assert vars(own_replay([made])) == vars(library_replay([made]))
