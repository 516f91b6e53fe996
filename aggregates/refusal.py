"""Refused attempts (R18, R19; R11/R12 of a destruction, R11 of an appraisal for destruction,
R12 of a use of a destroyed record): their own aggregate, never on the record."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import UUID, uuid4

from aggregates.base import ChainedAggregate, LedgerCreated
from aggregates.values import ActorId, Decision, Secrecy


class AttemptRefused(LedgerCreated):
    TOPIC: ClassVar[str] = "ledger/Refusal/AttemptRefused"
    NAME: ClassVar[str] = "refused"
    action: str
    rule: str
    reason: str
    record_id: UUID | None = None
    code: str | None = None
    secrecy: Secrecy | None = None
    reader: str | None = None
    approved_by: str | None = None
    letter: str | None = None
    purpose: str | None = None
    decision: Decision | None = None  # an appraisal's, with its committee
    appraisers: list[ActorId] | None = None


class Refusal(ChainedAggregate):
    TOPIC = "ledger/Refusal"

    def __init__(self, action: str, rule: str, reason: str, record_id: UUID | None) -> None:
        self.action = action
        self.rule = rule
        self.reason = reason
        self.record_id = record_id

    @classmethod
    def record(cls, *, actor: str, occurred_at: datetime, **fields: object) -> Refusal:
        return cls._start(
            AttemptRefused, id=uuid4(), actor=actor, occurred_at=occurred_at, **fields
        )
