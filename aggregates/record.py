"""The Record aggregate (档案): its commands check the rules, then trigger events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from uuid import UUID

from aggregates import rules
from aggregates.actor import ActorView
from aggregates.appraisal import check_destruction, secrecy_after
from aggregates.base import ChainedAggregate, check_not_in_future
from aggregates.correction import CORRECTABLE, checked_changes
from aggregates.errors import InvalidInput, RuleViolation
from aggregates.record_events import (
    Appraised,
    Arranged,
    Consulted,
    Copied,
    Corrected,
    Destroyed,
    Lent,
    LossReported,
    Received,
    Relocated,
    Repaired,
    Returned,
    Shelved,
)
from aggregates.return_check import ReturnCheck
from aggregates.use import check_copy_pages, checked_use
from aggregates.values import Carrier, Condition, Decision, Retention, Secrecy, Unit


class Record(ChainedAggregate):
    TOPIC = "ledger/Record"

    def __init__(
        self,
        title: str,
        department: str,
        year: int,
        carrier: Carrier,
        pages: int,
        secrecy: Secrecy,
        transferred_by: str,
        late: bool,
        actor: str,
        occurred_at: datetime,
    ) -> None:
        self.title = title
        self.department = department
        self.year = year
        self.carrier = carrier
        self.pages = pages
        self.secrecy = secrecy
        self.transferred_by = transferred_by
        self.received_by = actor
        self.received_at = occurred_at  # R2 and a corrected year are judged against it
        self.late = late
        self.status = "received"
        self.category: str | None = None
        self.retention: Retention | None = None
        self.code: str | None = None
        self.unit = Unit.ITEM
        self.location: str | None = None
        self.loan: dict[str, Any] | None = None
        self.return_check: ReturnCheck | None = None  # of the return that left one open (R9)
        self.appraisal: dict[str, Any] | None = None
        self.opened = False
        # The event (version, name) that last set each correctable field: a correction of
        # a field references that event (R13). The receipt set them all.
        self.set_by: dict[str, tuple[int, str]] = dict.fromkeys(
            CORRECTABLE, (self.INITIAL_VERSION, "received")
        )

    @property
    def label(self) -> str:
        return self.code or str(self.id)

    @property
    def discrepancy(self) -> str | None:
        """The open discrepancy (R9), judged against the pages as they stand (R13)."""
        check = self.return_check
        return check.discrepancy(self.pages) if check is not None else None

    @property
    def custodian(self) -> str | None:
        if self.status == "destroyed":
            return None
        return self.loan["borrower"] if self.loan else "archive"

    # -- commands ---------------------------------------------------------

    @classmethod
    def receive(
        cls,
        *,
        id: UUID,
        actor: ActorView,
        liaison: ActorView,
        occurred_at: datetime,
        title: str,
        department: str,
        year: int,
        carrier: Carrier,
        pages: int,
        secrecy: Secrecy,
        id_free: Callable[[], None] | None = None,
    ) -> Record:
        """A new record. ``id_free`` (the ledger's: the id is not taken) runs last of the
        checks: a bulk post may leave it to the store's key, and a refusal must not depend
        on what is at hand."""
        rules.check_may_post(actor, "receive")
        rules.check_is_liaison(liaison)
        if not 1 <= pages <= rules.MAX_PAGES:
            raise InvalidInput(f"pages must be between 1 and {rules.MAX_PAGES}")
        if year > occurred_at.year:
            raise InvalidInput(f"year {year} lies after the receipt ({occurred_at.date()})")
        check_not_in_future(occurred_at)
        if id_free is not None:
            id_free()
        return cls._start(
            Received,
            id=id,
            actor=actor.id,
            occurred_at=occurred_at,
            title=title,
            department=department,
            year=year,
            carrier=carrier,
            pages=pages,
            secrecy=secrecy,
            transferred_by=liaison.id,
            late=rules.is_late(year, occurred_at),
        )

    def arrange(
        self,
        *,
        actor: ActorView,
        occurred_at: datetime,
        category: str,
        retention: Retention,
        code: str,
        unit: Unit = Unit.ITEM,
        code_free: Callable[[], None] | None = None,
    ) -> None:
        """Classify and number the record. ``code_free`` (the ledger's R3 check that no
        other record holds the code) runs last of the checks, R14's time included, as
        ``receive``'s ``id_free``."""
        rules.check_may_post(actor, "arrange")
        rules.check_not_destroyed(self)
        if self.status != "received":
            raise RuleViolation(
                "R3",
                f"record {self.label} is already arranged (code {self.code}); "
                "use correct to answer a mistake",
            )
        rules.check_volume_pages(unit, self.pages)
        self.check_occurred_at(occurred_at)
        if code_free is not None:
            code_free()
        self.trigger_event(
            Arranged,
            actor=actor.id,
            occurred_at=occurred_at,
            category=category,
            retention=retention,
            code=code,
            unit=unit,
        )

    def shelve(self, *, actor: ActorView, occurred_at: datetime, location: str) -> None:
        rules.check_may_post(actor, "shelve")
        rules.check_not_destroyed(self)
        if self.status != "arranged":
            if self.status == "on-loan":
                hint = "it returns to its shelf when it is returned"
            else:
                hint = "use relocate to move it" if self.location else "arrange it first"
            raise RuleViolation("R4", f"record {self.label} is {self.status}, not arranged; {hint}")
        self.trigger_event(Shelved, actor=actor.id, occurred_at=occurred_at, location=location)

    def relocate(self, *, actor: ActorView, occurred_at: datetime, location: str) -> None:
        rules.check_may_post(actor, "relocate")
        rules.check_in_archive(self, "relocated")
        if location == self.location:
            raise InvalidInput(f"record {self.label} is already at {location}")
        self.trigger_event(
            Relocated,
            actor=actor.id,
            occurred_at=occurred_at,
            location=location,
            previous_location=self.location,
        )

    def consult(
        self,
        *,
        actor: ActorView,
        occurred_at: datetime,
        reader: ActorView,
        purpose: str,
        approver: ActorView | None = None,
        letter: str | None = None,
    ) -> None:
        use = checked_use(self, "consult", actor, occurred_at, reader, purpose, approver, letter)
        self.trigger_event(Consulted, **use)

    def copy(
        self,
        *,
        actor: ActorView,
        occurred_at: datetime,
        reader: ActorView,
        pages: int,
        purpose: str,
        approver: ActorView | None,
        letter: str | None = None,
    ) -> None:
        use = checked_use(self, "copy", actor, occurred_at, reader, purpose, approver, letter)
        check_copy_pages(self, pages)  # after R4-R8 and R12: a refused copy is kept, any pages
        self.trigger_event(Copied, **use, pages=pages)

    def lend(
        self,
        *,
        actor: ActorView,
        occurred_at: datetime,
        reader: ActorView,
        due: date,
        purpose: str,
        approver: ActorView | None,
        letter: str | None = None,
    ) -> None:
        use = checked_use(self, "lend", actor, occurred_at, reader, purpose, approver, letter)
        # R10 last: a loan the record's state or its people refuse (R4-R8, R12) is an
        # attempt the audit trail keeps, whatever due date it gave.
        rules.check_due(due, occurred_at.date())
        self.trigger_event(Lent, **use, due=due)

    def return_(
        self,
        *,
        actor: ActorView,
        occurred_at: datetime,
        pages: int,
        condition: Condition,
        note: str | None = None,
    ) -> None:
        rules.check_may_post(actor, "return")
        rules.check_not_destroyed(self)
        if self.loan is None:
            raise RuleViolation("R9", f"record {self.label} is not on loan; nothing to return")
        if self.loan["borrower"] == actor.id:  # 当面点清: counted by another than the borrower
            raise RuleViolation(
                "R9",
                f"{actor.id} borrowed record {self.label} and cannot check its own return; "
                "another archivist receives it",
            )
        check = ReturnCheck(damaged=condition is Condition.DAMAGED, pages=pages)
        self.trigger_event(
            Returned,
            actor=actor.id,
            occurred_at=occurred_at,
            borrower=self.loan["borrower"],
            pages=pages,
            condition=condition,
            note=note,
            discrepancy=check.discrepancy(self.pages),
        )

    def repair(self, *, actor: ActorView, occurred_at: datetime, note: str) -> None:
        rules.check_may_post(actor, "repair")
        self._check_discrepancy_open("repaired")
        self.trigger_event(Repaired, actor=actor.id, occurred_at=occurred_at, note=note)

    def report_loss(
        self, *, actor: ActorView, occurred_at: datetime, pages: int, note: str
    ) -> None:
        rules.check_may_post(actor, "report-loss")
        self._check_discrepancy_open("reported lost")
        if not 1 <= pages < self.pages:  # a loss leaves some pages, and fewer than before
            raise InvalidInput(
                f"pages after a loss must be at least 1 and fewer than the catalogue's {self.pages}"
            )
        self.trigger_event(
            LossReported, actor=actor.id, occurred_at=occurred_at, pages=pages, note=note
        )

    def _check_discrepancy_open(self, doing: str) -> None:
        rules.check_not_destroyed(self)
        rules.check_not_on_loan(self, doing)
        if self.discrepancy is None:
            raise RuleViolation("R9", f"record {self.label} has no open discrepancy")

    def appraise(
        self,
        *,
        actor: ActorView,
        occurred_at: datetime,
        decision: Decision,
        appraisers: list[ActorView],
        basis: str,
        review_on: date | None = None,
        secrecy_to: Secrecy | None = None,
    ) -> None:
        rules.check_may_post(actor, "appraise")
        rules.check_not_destroyed(self)
        after = secrecy_after(self, occurred_at.date(), decision, appraisers, review_on, secrecy_to)
        self.trigger_event(
            Appraised,
            actor=actor.id,
            occurred_at=occurred_at,
            decision=decision,
            appraisers=[a.id for a in appraisers],
            basis=basis,
            review_on=review_on,
            secrecy_after=after,
        )

    def destroy(
        self,
        *,
        actor: ActorView,
        occurred_at: datetime,
        approver: ActorView,
        witnesses: list[ActorView],
        register_no: str,
        method: str | None = None,
    ) -> None:
        rules.check_may_post(actor, "destroy")
        rules.check_not_destroyed(self)
        appraisal_version = check_destruction(
            self, occurred_at.date(), approver, witnesses, register_no, actor.id
        )
        self.trigger_event(
            Destroyed,
            actor=actor.id,
            occurred_at=occurred_at,
            approved_by=approver.id,
            witnesses=[w.id for w in witnesses],
            register_no=register_no,
            method=method,
            appraisal_version=appraisal_version,
        )

    def correct(
        self,
        *,
        actor: ActorView,
        occurred_at: datetime,
        version: int,
        reason: str,
        changes: dict[str, Any] | None = None,
    ) -> None:
        rules.check_may_post(actor, "correct")
        rules.check_not_destroyed(self)
        if not 1 <= version <= self.version:
            raise RuleViolation(
                "R13",
                f"record {self.label} has no version {version} (1-{self.version}); "
                "a correction must reference one of its events",
            )
        if not reason.strip():
            raise InvalidInput("a correction needs a reason")
        checked = checked_changes(self, version, changes or {})
        self.trigger_event(
            Corrected,
            actor=actor.id,
            occurred_at=occurred_at,
            corrects_version=version,
            reason=reason,
            changes=checked,
        )
