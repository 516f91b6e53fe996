"""Seals: a digest of the whole event log, recorded as events of one Seal aggregate.

A seal commits to every event up to a position of the log (its notification id):
``digest`` is D_n for the n events up to ``position``, where D_0 is 64 zeros and
D_k = link(D_{k-1}, H_k) (see aggregates.chain). Each ``Sealed`` event also carries the
previous seal's position and digest, and a ``sketch`` of the events since the previous
seal, from which ``ledger verify`` names the events that changed after the seal.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import NAMESPACE_URL, uuid5

from aggregates.base import ChainedAggregate, LedgerCreated, LedgerEvent
from aggregates.chain import GENESIS

SEAL_ID = uuid5(NAMESPACE_URL, "records-custody-ledger/seal")
SEALED_TOPIC = "ledger/Seal/Sealed"


class SealsStarted(LedgerCreated):
    """Opens the chain of seals (recorded with the first seal)."""

    TOPIC: ClassVar[str] = "ledger/Seal/Started"
    NAME: ClassVar[str] = "seals-started"


class Sealed(LedgerEvent):
    """A digest of the log up to ``position`` (``events`` events), chained to the last seal."""

    TOPIC: ClassVar[str] = SEALED_TOPIC
    NAME: ClassVar[str] = "sealed"
    number: int
    position: int
    events: int
    digest: str
    previous_position: int
    previous_digest: str
    sketch: str

    def apply(self, seal: Seal) -> None:
        seal.number = self.number
        seal.position = self.position
        seal.events = self.events
        seal.digest = self.digest


class Seal(ChainedAggregate):
    """The chain of seals; one per ledger, with a fixed id."""

    TOPIC = "ledger/Seal"

    def __init__(self) -> None:
        self.number = 0
        self.position = 0
        self.events = 0
        self.digest = GENESIS

    @classmethod
    def start(cls, *, actor: str, occurred_at: datetime) -> Seal:
        return cls._start(SealsStarted, id=SEAL_ID, actor=actor, occurred_at=occurred_at)

    def seal(
        self,
        *,
        actor: str,
        occurred_at: datetime,
        position: int,
        events: int,
        digest: str,
        sketch: str,
    ) -> None:
        self.trigger_event(
            Sealed,
            actor=actor,
            occurred_at=occurred_at,
            number=self.number + 1,
            position=position,
            events=events,
            digest=digest,
            previous_position=self.position,
            previous_digest=self.digest,
            sketch=sketch,
        )
