"""An appraisal's decision (R11) and the destruction that rests on it (R12): what a
committee may decide about a record, and what its destruction needs."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from aggregates import rules
from aggregates.actor import ActorView
from aggregates.errors import RuleViolation
from aggregates.values import Decision, Secrecy

if TYPE_CHECKING:
    from aggregates.record import Record


def secrecy_after(
    record: Record,
    on: date,
    decision: Decision,
    appraisers: list[ActorView],
    review_on: date | None,
    secrecy_to: Secrecy | None,
) -> Secrecy:
    """The secrecy of ``record`` after an appraisal on day ``on`` that decides
    ``decision``; raises the first rule the appraisal breaks."""
    if record.retention is None:
        raise RuleViolation("R11", f"record {record.label} must be arranged before appraisal")
    rules.check_committee(appraisers)
    after = record.secrecy
    if decision is Decision.DESTROY:
        rules.check_not_on_loan(record, "appraised for destruction")
        rules.check_destroy_allowed(record, on, "appraised for destruction")
    elif decision is Decision.RETAIN and review_on is None:
        raise RuleViolation("R11", "a decision to retain needs a next review date (--review-on)")
    elif decision is Decision.DECLASSIFY:
        after = rules.lower_secrecy(record.secrecy, secrecy_to)
    elif decision is Decision.OPEN:
        after = Secrecy.PUBLIC
    rules.check_review_date(review_on, on)
    return after


def check_destruction(
    record: Record,
    on: date,
    approver: ActorView,
    witnesses: list[ActorView],
    register_no: str,
    destroyer: str,
) -> int:
    """The version of the standing appraisal that a destruction of ``record`` on day
    ``on`` by ``destroyer`` rests on; raises the first rule the destruction breaks."""
    rules.check_not_on_loan(record, "destroyed")
    if not record.appraisal or record.appraisal["decision"] != Decision.DESTROY:
        raise RuleViolation(
            "R12", f"record {record.label} has no standing appraisal decision to destroy"
        )
    rules.check_destroy_allowed(record, on, "destroyed")
    rules.check_approver(
        approver, record, lambda: f"destruction of record {record.label}", "R12", "R12"
    )
    if not register_no.strip():
        raise RuleViolation("R12", "a destruction needs a destruction-register number")
    rules.check_witnesses(witnesses, destroyer)
    version: int = record.appraisal["version"]
    return version
