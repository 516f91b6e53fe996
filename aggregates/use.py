"""A use of a record (R4-R8, R12, R19): who may consult, copy or borrow it, and the fields
every use's event records once the rules allow it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from aggregates import rules
from aggregates.actor import ActorView
from aggregates.errors import InvalidInput

if TYPE_CHECKING:
    from aggregates.record import Record

DONE = {"consult": "consulted", "copy": "copied", "lend": "lent"}  # for refusals' messages


def checked_use(
    record: Record,
    action: str,
    actor: ActorView,
    occurred_at: datetime,
    reader: ActorView,
    purpose: str,
    approver: ActorView | None,
    letter: str | None,
) -> dict[str, Any]:
    """The fields of the event of an ``action`` of ``record`` by ``reader``, once the
    rules of who uses what allow it; raises the first rule the use breaks."""
    rules.check_may_post(actor, action)
    rules.check_in_archive(record, DONE[action])
    rules.check_use(record, action, reader, approver, letter)
    return {
        "actor": actor.id,
        "occurred_at": occurred_at,
        "reader": reader.id,
        "purpose": purpose,
        "approved_by": approver.id if approver else None,
        "letter": letter,
    }


def check_copy_pages(record: Record, pages: int) -> None:
    """A copy takes 1 to all of the record's pages."""
    if not 1 <= pages <= record.pages:
        raise InvalidInput(f"pages to copy must be between 1 and {record.pages}")
