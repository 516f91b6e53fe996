"""The events of a record's life (R1-R14). Each event's apply() evolves a Record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from aggregates.base import LedgerCreated, LedgerEvent
from aggregates.return_check import ReturnCheck
from aggregates.rules import is_late
from aggregates.values import (
    ActorId,
    ArchivalCode,
    Carrier,
    Category,
    Condition,
    Day,
    Decision,
    Location,
    Retention,
    Secrecy,
    Unit,
)

if TYPE_CHECKING:
    from aggregates.record import Record


class Received(LedgerCreated):
    """接收 (R1, R2): the actor is the receiving archivist."""

    TOPIC: ClassVar[str] = "ledger/Record/Received"
    NAME: ClassVar[str] = "received"
    title: str
    department: str
    year: int
    carrier: Carrier
    pages: int
    secrecy: Secrecy
    transferred_by: ActorId
    late: bool


class Arranged(LedgerEvent):
    """整理 (R3): classified, given retention and a unique archival code."""

    TOPIC: ClassVar[str] = "ledger/Record/Arranged"
    NAME: ClassVar[str] = "arranged"
    category: Category
    retention: Retention
    code: ArchivalCode
    unit: Unit = Unit.ITEM

    def apply(self, record: Record) -> None:
        record.category = self.category
        record.retention = self.retention
        record.code = self.code
        record.unit = self.unit
        record.status = "arranged"


class Shelved(LedgerEvent):
    """上架入库 (R4)."""

    TOPIC: ClassVar[str] = "ledger/Record/Shelved"
    NAME: ClassVar[str] = "shelved"
    location: Location

    def apply(self, record: Record) -> None:
        record.location = self.location
        record.status = "shelved"


class Relocated(LedgerEvent):
    """移位 (R4): a move is its own event."""

    TOPIC: ClassVar[str] = "ledger/Record/Relocated"
    NAME: ClassVar[str] = "relocated"
    location: Location
    previous_location: str

    def apply(self, record: Record) -> None:
        record.location = self.location


class _Use(LedgerEvent):
    reader: ActorId
    purpose: str
    approved_by: ActorId | None = None
    letter: str | None = None


class Consulted(_Use):
    """查阅 in the reading room (R5-R7)."""

    TOPIC: ClassVar[str] = "ledger/Record/Consulted"
    NAME: ClassVar[str] = "consulted"


class Copied(_Use):
    """复制, approved and registered (R5-R7)."""

    TOPIC: ClassVar[str] = "ledger/Record/Copied"
    NAME: ClassVar[str] = "copied"
    pages: int


class Lent(_Use):
    """借出 with a leader's approval and a due date (R5-R8, R10)."""

    TOPIC: ClassVar[str] = "ledger/Record/Lent"
    NAME: ClassVar[str] = "lent"
    due: Day

    def apply(self, record: Record) -> None:
        record.loan = {
            "borrower": self.reader,
            "due": self.due,
            "approved_by": self.approved_by,
            "version": self.originator_version,
        }
        record.status = "on-loan"


class Returned(LedgerEvent):
    """归还, checked face to face (R9): the actor is the receiving archivist."""

    TOPIC: ClassVar[str] = "ledger/Record/Returned"
    NAME: ClassVar[str] = "returned"
    borrower: ActorId
    pages: int
    condition: Condition
    note: str | None = None
    discrepancy: str | None = None

    def apply(self, record: Record) -> None:
        record.loan = None
        record.status = "shelved"
        if self.discrepancy:  # what the check found, judged again if the pages are corrected
            damaged = self.condition == Condition.DAMAGED
            record.return_check = ReturnCheck(damaged=damaged, pages=self.pages)


class Repaired(LedgerEvent):
    """修复: resolves an open discrepancy (R9)."""

    TOPIC: ClassVar[str] = "ledger/Record/Repaired"
    NAME: ClassVar[str] = "repaired"
    note: str

    def apply(self, record: Record) -> None:
        record.return_check = None


class LossReported(LedgerEvent):
    """A loss report: resolves an open discrepancy and records the pages now held (R9)."""

    TOPIC: ClassVar[str] = "ledger/Record/LossReported"
    NAME: ClassVar[str] = "loss-reported"
    pages: int
    note: str

    def apply(self, record: Record) -> None:
        record.return_check = None
        record.pages = self.pages
        record.set_by["pages"] = (self.originator_version, self.NAME)


class Appraised(LedgerEvent):
    """鉴定 by a committee of at least two appraisers (R11)."""

    TOPIC: ClassVar[str] = "ledger/Record/Appraised"
    NAME: ClassVar[str] = "appraised"
    decision: Decision
    appraisers: list[ActorId]
    basis: str
    review_on: Day | None = None
    secrecy_after: Secrecy

    def apply(self, record: Record) -> None:
        record.appraisal = {
            "decision": self.decision,
            "version": self.originator_version,
            "appraisers": list(self.appraisers),
            "review_on": self.review_on,
        }
        record.secrecy = self.secrecy_after
        if self.decision is Decision.OPEN:
            record.opened = True


class Destroyed(LedgerEvent):
    """销毁 with approval, register number and two witnesses (R12)."""

    TOPIC: ClassVar[str] = "ledger/Record/Destroyed"
    NAME: ClassVar[str] = "destroyed"
    approved_by: ActorId
    witnesses: list[ActorId]
    register_no: str
    method: str | None = None
    appraisal_version: int

    def apply(self, record: Record) -> None:
        record.status = "destroyed"
        record.location = None


class Corrected(LedgerEvent):
    """R13: answers a mistake in an earlier event; changes only catalogue fields."""

    TOPIC: ClassVar[str] = "ledger/Record/Corrected"
    NAME: ClassVar[str] = "corrected"
    corrects_version: int
    reason: str
    changes: dict[str, Any] = {}

    def apply(self, record: Record) -> None:
        for field, value in self.changes.items():
            setattr(record, field, value)
            record.set_by[field] = (self.originator_version, self.NAME)
        if "year" in self.changes:  # R2: due by 31 March of the (corrected) year + 1
            record.late = is_late(record.year, record.received_at)
        if "pages" in self.changes and record.discrepancy is None:
            record.return_check = None  # R9: the pages returned match the corrected count


RECORD_EVENTS: tuple[type[LedgerEvent], ...] = (
    Received,
    Arranged,
    Shelved,
    Relocated,
    Consulted,
    Copied,
    Lent,
    Returned,
    Repaired,
    LossReported,
    Appraised,
    Destroyed,
    Corrected,
)
