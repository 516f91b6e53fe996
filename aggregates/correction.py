"""A correction's changes (R13): which fields, converted and bounded as at a receipt, each
referencing the event that set its current value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aggregates import rules
from aggregates.errors import InvalidInput, RuleViolation

if TYPE_CHECKING:
    from aggregates.record import Record

CORRECTABLE = {"title": str, "department": str, "year": int, "pages": int}


def checked_changes(record: Record, version: int, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` as a correction referencing ``version`` of ``record`` may make them;
    raises the first rule or input they break."""
    checked = _converted(changes)
    if "pages" in checked and not 1 <= checked["pages"] <= rules.MAX_PAGES:
        raise InvalidInput(f"pages must be between 1 and {rules.MAX_PAGES}")
    if "pages" in checked:
        rules.check_volume_pages(record.unit, checked["pages"])
    if "year" in checked and checked["year"] > record.received_at.year:  # as a receipt
        raise InvalidInput(
            f"year {checked['year']} lies after the receipt ({record.received_at.date()})"
        )
    for field, value in checked.items():
        set_version, set_name = record.set_by[field]
        if version != set_version:  # the current value is that event's, not this one's
            raise RuleViolation(
                "R13",
                f"the {field} of record {record.label} comes from version {set_version} "
                f"({set_name}); a correction of it must reference that version, "
                f"not {version}",
            )
        if value == getattr(record, field):
            raise InvalidInput(f"the {field} of record {record.label} is already {value!r}")
    return checked


def _converted(changes: dict[str, Any]) -> dict[str, Any]:
    """Each change to a correctable field, as that field's type."""
    converted = {}
    for field, value in changes.items():
        if field not in CORRECTABLE:
            raise InvalidInput(f"only {', '.join(CORRECTABLE)} can be corrected, not {field!r}")
        try:
            converted[field] = CORRECTABLE[field](value)
        except ValueError:
            raise InvalidInput(f"{field} must be {CORRECTABLE[field].__name__}") from None
    return converted
