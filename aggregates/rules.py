"""The archive rules as guards. Each raises RuleViolation naming its rule."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING

from aggregates.actor import ActorView
from aggregates.errors import RuleViolation
from aggregates.values import Retention, Role, Secrecy

if TYPE_CHECKING:
    from aggregates.record import Record

MAX_VOLUME_PAGES = 200
MAX_PAGES = 1_000_000  # an upper bound on any page count (the store keeps 64-bit ints)
# R19: which roles may post which action.
POSTING_ROLES: dict[str, tuple[Role, ...]] = {
    "receive": (Role.ARCHIVIST, Role.DIRECTOR),
    "arrange": (Role.ARCHIVIST, Role.DIRECTOR),
    "shelve": (Role.ARCHIVIST, Role.DIRECTOR),
    "relocate": (Role.ARCHIVIST, Role.DIRECTOR),
    "consult": (Role.ARCHIVIST, Role.DIRECTOR),
    "copy": (Role.ARCHIVIST, Role.DIRECTOR),
    "lend": (Role.ARCHIVIST, Role.DIRECTOR),
    "return": (Role.ARCHIVIST, Role.DIRECTOR),
    "repair": (Role.ARCHIVIST, Role.DIRECTOR),
    "report-loss": (Role.ARCHIVIST, Role.DIRECTOR),
    "destroy": (Role.ARCHIVIST, Role.DIRECTOR),
    "correct": (Role.ARCHIVIST, Role.DIRECTOR),
    "appraise": (Role.APPRAISER,),
    "manage-actors": (Role.DIRECTOR,),
    "seal": (Role.ARCHIVIST, Role.DIRECTOR, Role.AUDITOR),
}


def check_may_post(actor: ActorView, action: str) -> None:
    """R19: only a registered, active actor acts, and only within its roles."""
    if not actor.active:
        raise RuleViolation("R19", f"actor {actor.id} is deactivated and may not act")
    allowed = POSTING_ROLES[action]
    if not actor.has(*allowed):
        names = " or ".join(r.value for r in allowed)
        raise RuleViolation("R19", f"actor {actor.id} may not {action}: it needs the role {names}")


def check_is_liaison(actor: ActorView) -> None:
    """R1: a receipt names the department liaison who transferred the record: one of the
    office's departments' (各部门应指定专人), not a person of an external unit."""
    if not actor.active or not actor.has(Role.LIAISON):
        raise RuleViolation("R1", f"{actor.id} is not an active department liaison")
    if actor.external:
        raise RuleViolation(
            "R1",
            f"{actor.id} is of an external unit ({actor.unit}), not a department liaison of "
            "the office",
        )


def is_late(year: int, occurred_at: datetime) -> bool:
    """R2: records of year Y are due by 31 March of Y+1."""
    return occurred_at.date() > date(year + 1, 3, 31)


def check_volume_pages(unit: str, pages: int) -> None:
    if unit == "volume" and pages > MAX_VOLUME_PAGES:
        raise RuleViolation(
            "R3", f"a volume holds at most {MAX_VOLUME_PAGES} pages; this record has {pages}"
        )


def check_not_destroyed(record: Record) -> None:
    if record.status == "destroyed":
        raise RuleViolation(
            "R12", f"record {record.label} was destroyed; it takes no further event"
        )


def check_not_on_loan(record: Record, doing: str) -> None:
    if record.loan is not None:
        raise RuleViolation(
            "R8",
            f"record {record.label} is on loan to {record.loan['borrower']}; "
            f"it must be returned before it can be {doing}",
        )


def check_due(due: date, lent_on: date) -> None:
    """R10: every loan has a due date, not before the loan."""
    if due < lent_on:
        raise RuleViolation("R10", f"due date {due} lies before the loan ({lent_on})")


def check_in_archive(record: Record, doing: str) -> None:
    """R4/R5: only a shelved record, present in the archive room, is served."""
    check_not_destroyed(record)
    check_not_on_loan(record, doing)
    if record.status != "shelved":
        raise RuleViolation(
            "R4", f"record {record.label} is {record.status}, not shelved; it cannot be {doing}"
        )


def check_approver(
    approver: ActorView | None,
    record: Record,
    what: Callable[[], str],
    rule: str,
    clearance_rule: str = "R6",
) -> None:
    """An approval comes from an active leader whose clearance covers the record. ``what``
    names the act for the message (called only when the approval is refused); a leader not
    cleared for the record is refused under ``clearance_rule`` (R6 for a use; a
    destruction's approval is R12's)."""
    _check_cleared(_leader(approver, what, rule), record, clearance_rule)


def check_use_approver(
    approver: ActorView | None,
    record: Record,
    what: Callable[[], str],
    rule: str,
    reader: ActorView,
) -> None:
    """A use's approval (R5-R7), as any approval, comes from a leader of the office (经单位
    领导批准), not of an external unit, and not from the ``reader`` it lets use the record:
    a leader's own use is approved by another leader."""
    leader = _leader(approver, what, rule)
    if leader.external:
        raise RuleViolation(
            rule,
            f"{leader.id} is of an external unit ({leader.unit}) and cannot approve a use "
            "of the office's records",
        )
    if leader.id == reader.id:
        raise RuleViolation(
            rule, f"{leader.id} cannot approve its own {what()}; another leader must approve it"
        )
    _check_cleared(leader, record)


def _leader(approver: ActorView | None, what: Callable[[], str], rule: str) -> ActorView:
    """The approver, an active leader."""
    if approver is None:
        raise RuleViolation(rule, f"{what()} needs a leader's approval (--approved-by)")
    if not approver.active or not approver.has(Role.LEADER):
        raise RuleViolation(rule, f"{approver.id} is not an active leader and cannot approve")
    return approver


def _check_cleared(approver: ActorView, record: Record, rule: str = "R6") -> None:
    if not approver.clearance.covers(record.secrecy):
        raise RuleViolation(
            rule,
            f"approver {approver.id} (clearance {approver.clearance}) is not cleared for "
            f"{record.secrecy} record {record.label}",
        )


def check_use(
    record: Record,
    action: str,
    reader: ActorView,
    approver: ActorView | None,
    letter: str | None,
) -> None:
    """R5-R7 for consult, copy and lend."""
    if not reader.active:
        raise RuleViolation("R5", f"reader {reader.id} is deactivated")
    if reader.external:
        if not letter:
            raise RuleViolation(
                "R7", f"external reader {reader.id} ({reader.unit}) needs an introduction letter"
            )
        check_use_approver(
            approver,
            record,
            lambda: f"{action} of record {record.label} by external {reader.id}",
            "R7",
            reader,
        )

    def plain() -> str:
        return f"{action} of record {record.label}"

    if action in ("copy", "lend"):
        check_use_approver(approver, record, plain, "R5", reader)
    if record.secrecy.is_classified:
        check_use_approver(
            approver,
            record,
            lambda: f"{action} of {record.secrecy} record {record.label}",
            "R6",
            reader,
        )
    if not reader.clearance.covers(record.secrecy):
        raise RuleViolation(
            "R6",
            f"{reader.id} (clearance {reader.clearance}) is not cleared for "
            f"{record.secrecy} record {record.label}",
        )
    if approver is not None:  # an approval given where none is needed must still be real
        check_use_approver(approver, record, plain, "R5", reader)


def retention_expiry(year: int, retention: Retention) -> date | None:
    """R11: the period counts from 1 January after the year of formation."""
    if retention.years is None:
        return None
    return date(year + 1 + retention.years, 1, 1)


def check_destroy_allowed(record: Record, on: date, doing: str) -> None:
    if record.retention is None:
        raise RuleViolation("R11", f"record {record.label} is not arranged; it has no retention")
    expiry = retention_expiry(record.year, record.retention)
    if expiry is None:
        raise RuleViolation("R11", f"record {record.label} is permanent and is never destroyed")
    if on < expiry:
        raise RuleViolation(
            "R11",
            f"retention of record {record.label} ({record.retention}) runs until "
            f"{expiry.isoformat()}; it cannot be {doing} before {expiry.isoformat()}",
        )


def check_review_date(review_on: date | None, appraised_on: date) -> None:
    """R11: a next review lies after the appraisal."""
    if review_on is not None and review_on <= appraised_on:
        raise RuleViolation(
            "R11",
            f"the next review date ({review_on.isoformat()}) must lie after the appraisal "
            f"({appraised_on.isoformat()})",
        )


def check_committee(appraisers: list[ActorView]) -> None:
    ids = {a.id for a in appraisers}
    if len(ids) < 2:
        raise RuleViolation("R11", "an appraisal needs a committee of at least two appraisers")
    for a in appraisers:
        if not a.active or not a.has(Role.APPRAISER):
            raise RuleViolation("R11", f"{a.id} is not an active appraiser")


def check_witnesses(witnesses: list[ActorView], destroyer: str) -> None:
    """R12: at least two distinct, active witnesses supervise (监销) the destruction; the
    actor who carries it out is not one of them (no one supervises their own act)."""
    if any(w.id == destroyer for w in witnesses):
        raise RuleViolation(
            "R12", f"{destroyer} carries out the destruction and cannot also witness it"
        )
    ids = {w.id for w in witnesses}
    if len(ids) < 2:
        raise RuleViolation("R12", "a destruction needs at least two distinct witnesses")
    for w in witnesses:
        if not w.active:
            raise RuleViolation("R12", f"witness {w.id} is not an active actor")


def lower_secrecy(current: Secrecy, to: Secrecy | None) -> Secrecy:
    """R11: a declassification (降密/解密) lowers the secrecy, to ``to`` (default public)."""
    target = to or Secrecy.PUBLIC
    if target.rank > current.rank:
        raise RuleViolation("R11", f"declassifying cannot raise secrecy from {current} to {target}")
    if target == current:
        raise RuleViolation(
            "R11", f"declassifying to {target} lowers nothing: the record is {current} already"
        )
    return target
