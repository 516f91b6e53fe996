"""A record's chain of custody and its state as of a moment, from its events alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aggregates.base import LedgerEvent
from aggregates.record import Record

BASE_FIELDS = {
    "originator_id",
    "originator_version",
    "timestamp",
    "occurred_at",
    "actor",
    "prev_hash",
    "originator_topic",
}


def known_by(events: list[Any], as_of: datetime | None, known_at: datetime | None) -> list[Any]:
    """Events that had happened by ``as_of`` and had been recorded by ``known_at``.

    Both times only grow along a record's events (occurred-at by R14; recorded-at because
    an event is never recorded before its predecessor, even by a clock stepped back), so
    this is a prefix.
    """
    kept = []
    for event in events:
        if as_of is not None and event.occurred_at > as_of:
            break
        if known_at is not None and event.timestamp > known_at:
            break
        kept.append(event)
    return kept


def custodian_after(event: LedgerEvent, current: str | None) -> str | None:
    name = event.NAME
    if name == "lent":
        return str(event.reader)  # type: ignore[attr-defined]
    if name == "returned" or name == "received":
        return "archive"
    if name == "destroyed":
        return None
    return current


def custody_chain(events: list[Any], db_roles: dict[int, str]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    intervals: list[dict[str, Any]] = []
    custodian: str | None = None
    code = None
    for event in events:
        before = custodian
        custodian = custodian_after(event, custodian)
        if event.NAME == "arranged":
            code = event.code
        fields = {k: v for k, v in event.model_dump().items() if k not in BASE_FIELDS}
        row = {
            "version": event.originator_version,
            "event": event.NAME,
            "occurred_at": event.occurred_at,
            "recorded_at": event.timestamp,
            "actor": event.actor,
            "custodian": custodian,
            **({"db_role": db_roles[event.originator_version]} if db_roles else {}),
            **fields,
            "prev_hash": event.prev_hash,
            "hash": event.event_hash,
        }
        rows.append(row)
        if custodian != before or not intervals:
            if intervals:
                intervals[-1]["until"] = event.occurred_at
            if custodian is not None:
                intervals.append({"custodian": custodian, "from": event.occurred_at, "until": None})
    return {
        "record": str(events[0].originator_id),
        "code": code,
        "events": rows,
        "intervals": intervals,
    }


def state_of(record: Record) -> dict[str, Any]:
    return {
        "record": str(record.id),
        "code": record.code,
        "title": record.title,
        "department": record.department,
        "year": record.year,
        "carrier": record.carrier,
        "pages": record.pages,
        "secrecy": record.secrecy,
        "status": record.status,
        "category": record.category,
        "retention": record.retention,
        "unit": record.unit,
        "location": record.location,
        "custodian": record.custodian,
        "loan": record.loan,
        "discrepancy": record.discrepancy,
        "appraisal": record.appraisal,
        "opened": record.opened,
        "late": record.late,
        "transferred_by": record.transferred_by,
        "received_by": record.received_by,
        "version": record.version,
        "last_event_at": record.last_occurred_at,
        "recorded_at": record.modified_on,
    }
