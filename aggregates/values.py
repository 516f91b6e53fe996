"""Value types of the archive domain: secrecy, carrier, retention, roles, location."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, PlainSerializer

from aggregates.errors import InvalidInput


class Secrecy(StrEnum):
    """密级, ordered from public to top-secret."""

    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    SECRET = "secret"
    TOP_SECRET = "top-secret"

    @property
    def rank(self) -> int:
        return _SECRECY_RANK[self]

    def covers(self, other: Secrecy) -> bool:
        """A clearance covers a record when it is at least the record's level."""
        return self.rank >= other.rank

    @property
    def is_classified(self) -> bool:
        """Confidential and above need a leader's approval to use (R6)."""
        return self.rank >= Secrecy.CONFIDENTIAL.rank


_SECRECY_RANK = {level: rank for rank, level in enumerate(Secrecy)}


class Carrier(StrEnum):
    PAPER = "paper"
    ELECTRONIC = "electronic"
    AUDIOVISUAL = "audiovisual"


class Retention(StrEnum):
    """保管期限: permanent (Y), 30 years (D30), 10 years (D10)."""

    PERMANENT = "permanent"
    YEARS_30 = "30y"
    YEARS_10 = "10y"

    @property
    def years(self) -> int | None:
        return {"permanent": None, "30y": 30, "10y": 10}[self.value]

    @property
    def code(self) -> str:
        return {"permanent": "Y", "30y": "D30", "10y": "D10"}[self.value]


class Role(StrEnum):
    ARCHIVIST = "archivist"
    DIRECTOR = "director"
    LIAISON = "liaison"
    LEADER = "leader"
    APPRAISER = "appraiser"
    BORROWER = "borrower"
    AUDITOR = "auditor"


class Condition(StrEnum):
    INTACT = "intact"
    DAMAGED = "damaged"


class Decision(StrEnum):
    RETAIN = "retain"
    DESTROY = "destroy"
    DECLASSIFY = "declassify"
    OPEN = "open"


class Unit(StrEnum):
    """An item (件) or a volume (卷)."""

    ITEM = "item"
    VOLUME = "volume"


KNOWN_CATEGORIES = (
    "administration",
    "business",
    "finance-audit",
    "personnel",
    "infrastructure",
    "equipment",
)
_SLUG = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
ACTOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9·.\-_/]{0,79}$")


def _whole_minute_offset(value: datetime) -> datetime:
    """The canonical encoding writes offsets as +HH:MM: seconds would be silently lost."""
    offset = value.utcoffset()
    if offset is not None and offset % timedelta(minutes=1):
        raise ValueError(f"UTC offset {_offset_text(offset)} is not whole minutes (e.g. +08:00)")
    return value


def _offset_text(offset: timedelta) -> str:
    """As ISO 8601 writes it (-05:00:30), not as a timedelta prints (-1 day, 18:59:30)."""
    sign = "-" if offset < timedelta(0) else "+"
    minutes, seconds = divmod(abs(int(offset.total_seconds())), 60)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}:{seconds:02d}"


def _category(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"category must be a lowercase slug such as {', '.join(KNOWN_CATEGORIES)}")
    return value


def _actor_id(value: str) -> str:
    if not ACTOR_ID.match(value):
        raise ValueError("actor id must be 1-64 letters, digits, '.', '_', '@' or '-'")
    return value


def _code(value: str) -> str:
    if not _CODE.match(value):
        raise ValueError(
            "archival code must be letters, digits and '-', '·', '.', '_', '/' (e.g. "
            "Z001-WS·2024-Y-BGS-0001)"
        )
    return value


Category = Annotated[str, AfterValidator(_category)]
ActorId = Annotated[str, AfterValidator(_actor_id)]
ArchivalCode = Annotated[str, AfterValidator(_code)]


def _given_whole_minute_offset(value: object) -> object:
    """Only a datetime given by Python code can have seconds in its offset: pydantic's ISO
    8601 parser refuses them in text. (Checking every value after validation took a tenth
    of loading a stored record.)"""
    return _whole_minute_offset(value) if isinstance(value, datetime) else value


# Datetimes are stored as orjson writes them: ISO 8601 with the offset (whole minutes),
# the same text as datetime.isoformat(); README "Integrity" documents the encoding.
Moment = Annotated[
    AwareDatetime,
    BeforeValidator(_given_whole_minute_offset),
    PlainSerializer(lambda d: d.isoformat(), return_type=str),
]
Day = Annotated[date, PlainSerializer(lambda d: d.isoformat(), return_type=str)]


def parse_location(text: str) -> str:
    """A location is room-cabinet-shelf-layer (库房-柜-架-层), e.g. ``A1-03-2-4``."""
    parts = [part.strip() for part in text.split("-")]
    if len(parts) != 4 or not all(parts):
        raise InvalidInput(f"location {text!r} must be room-cabinet-shelf-layer, e.g. A1-03-2-4")
    return "-".join(parts)


# ISO 8601's extended form, as RFC 3339 profiles it (a space for the T allowed): one rule
# for the command line and bulk lines. (Python's fromisoformat alone also took week dates,
# the basic form and any separator; pydantic's parser took others, and a lowercase z.)
_MOMENT = re.compile(
    r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?(Z|[+-]\d\d:\d\d(:\d\d)?)?",
    re.ASCII,  # digits 0-9 only
)
_DAY = re.compile(r"\d{4}-\d\d-\d\d", re.ASCII)


def parse_moment(text: str) -> datetime:
    """ISO 8601 with an offset (2026-03-01T09:30:00+08:00, or Z); a bare date or a naive
    time is refused."""
    match = _MOMENT.fullmatch(text)
    if match is None:
        raise InvalidInput(f"{text!r} is not an ISO 8601 time (e.g. 2026-03-01T09:30:00+08:00)")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise InvalidInput(f"{text!r} is not a time: {error}") from None
    zone, seconds = match.groups()
    if zone is None:
        raise InvalidInput(f"{text!r} has no UTC offset (e.g. 2026-03-01T09:30:00+08:00)")
    if seconds is not None:  # only then can the offset be other than whole minutes
        try:
            _whole_minute_offset(moment)
        except ValueError as error:
            raise InvalidInput(f"{text!r}: {error}") from None
    if moment.year in (1, 9999):  # in UTC it may fall outside years 1-9999
        try:
            moment.astimezone(UTC)
        except OverflowError:  # (a refusal at such a time stopped the audit trail for good)
            raise InvalidInput(f"{text!r} is out of range in UTC (years 1-9999)") from None
    return moment


def parse_day(text: str) -> date:
    """A calendar date, YYYY-MM-DD."""
    if not _DAY.fullmatch(text):
        raise InvalidInput(f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise InvalidInput(f"{text!r} is not a date: {error}") from None


def _location(value: str) -> str:
    try:
        return parse_location(value)
    except InvalidInput as error:  # a validation error of its field, not the whole command's
        raise ValueError(str(error)) from None


Location = Annotated[str, AfterValidator(_location)]
