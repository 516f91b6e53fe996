"""An archival code's claim (R3): one aggregate per code, created with the arrangement.

Its id is derived from the code, so two arrangements of the same code collide on the
event store's primary key inside the same transaction: uniqueness is atomic.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from aggregates.base import ChainedAggregate, LedgerCreated
from aggregates.values import ArchivalCode

CODE_NAMESPACE = uuid5(NAMESPACE_URL, "records-custody-ledger/archival-code")


def code_uuid(code: str) -> UUID:
    return uuid5(CODE_NAMESPACE, code)


class CodeClaimed(LedgerCreated):
    TOPIC: ClassVar[str] = "ledger/CodeClaim/Claimed"
    NAME: ClassVar[str] = "code-claimed"
    code: ArchivalCode
    record_id: UUID


class CodeClaim(ChainedAggregate):
    TOPIC = "ledger/CodeClaim"

    def __init__(self, code: str, record_id: UUID) -> None:
        self.code = code
        self.record_id = record_id

    @classmethod
    def claim(cls, *, code: str, record_id: UUID, actor: str, occurred_at: datetime) -> CodeClaim:
        return cls._start(
            CodeClaimed,
            id=code_uuid(code),
            code=code,
            record_id=record_id,
            actor=actor,
            occurred_at=occurred_at,
        )
