"""Commands as validated pydantic models, shared by the CLI and bulk posting.

Field names are the CLI's option names in snake_case, so a JSON Lines file for
``ledger post`` reads like the command line it replaces.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aggregates.errors import InvalidInput
from aggregates.rules import MAX_PAGES
from aggregates.values import (
    ActorId,
    ArchivalCode,
    Carrier,
    Category,
    Condition,
    Decision,
    Location,
    Retention,
    Role,
    Secrecy,
    Unit,
    parse_day,
    parse_moment,
)

# What text may not hold (README, "Text"): C0 (but tab, line feed and carriage return),
# DEL and C1; Unicode's format characters (category Cf), among them the bidirectional
# embeddings, overrides, isolates and marks (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F,
# U+061C: each reorders the text next to it); and its other default-ignorable code points
# (DerivedCoreProperties.txt), drawn as nothing: the zero-width space U+200B and joiners
# U+200C-U+200D, the soft hyphen U+00AD, the word joiner U+2060, U+FEFF, the Mongolian
# vowel separator and selectors, the Hangul fillers, variation selectors and tags
# (U+E0000-U+E0FFF). Such a character makes a title, a location or a name look like one
# it is not.
_REFUSED_BMP = (
    r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891"
    r"\u08e2\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
    r"\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
)
_REFUSED_ASTRAL = (
    r"\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    r"\U000e0000-\U000e0fff"
)
_CONTROL = re.compile(f"[{_REFUSED_BMP}{_REFUSED_ASTRAL}]")
# Searched for first: a class of characters of the BMP is one table look-up a character,
# but each range beyond it is one more comparison (searching _CONTROL took 2.9 times the
# bidi check's time on a title). One range for all beyond the BMP costs one comparison, and
# only text holding such a character is searched again, from there, for those refused.
_SUSPECT = re.compile(rf"[{_REFUSED_BMP}\U00010000-\U0010ffff]")
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
NOT_PRINTABLE = (
    "control characters (such as NUL or ESC), invisible characters (such as U+200B or "
    "U+FEFF) and bidirectional formatting characters (such as U+202E) are not allowed"
)


def refused_at(text: str) -> int | None:
    """Where text holds the first character text may not hold, or None."""
    found = _SUSPECT.search(text)
    if found is not None:
        found = _CONTROL.search(text, found.start())
    return None if found is None else found.start()


def character_at(text: str, at: int) -> str:
    """A character named for a message, with where it is: it may not show at all."""
    char = text[at]
    name = unicodedata.name(char, "")
    return f"character {at + 1} is U+{ord(char):04X}{' ' + name if name else ''}"


def not_printable(text: str, at: int) -> str:
    """The refusal of text holding a character it may not hold, at ``at``: which one, and
    of which kind."""
    char = text[at]
    if unicodedata.category(char) == "Cc":
        kind = "a control character"
    elif _BIDI.match(char):
        kind = "a bidirectional formatting character"
    else:
        kind = "an invisible or format character"
    return f"{NOT_PRINTABLE}; {character_at(text, at)}, {kind}"


def _printable(value: str) -> str:
    """No control characters but tabs and line breaks: PostgreSQL's text refuses NUL (one
    stored would stop every projection there for good), and a terminal's escape codes
    would hide or forge text in a listing, as bidirectional overrides, isolates and marks
    would reverse or reorder it in any terminal or viewer. No invisible characters: a
    title, a location or a RECORD with a zero-width space prints as one without it, and
    is not what a search or a look-up for the text that shows finds."""
    found = _SUSPECT.search(value)
    if found is not None and (found := _CONTROL.search(value, found.start())) is not None:
        raise ValueError(not_printable(value, found.start()))
    return value


MAX_PLACE = 200


def _place(value: str) -> str:
    if len(value) > MAX_PLACE:
        raise ValueError(f"a location is at most {MAX_PLACE} characters")
    return _printable(value)


def _moment(value: Any) -> Any:
    """Times are ISO 8601 text, read as the command line reads them (parse_moment):
    pydantic would take a number, or text of one, as seconds since 1970 (a line's
    `"occurred_at": 0` was posted as 1970-01-01), and accepted other texts."""
    if isinstance(value, str):
        return _text(parse_moment, value)
    if isinstance(value, (int, float)):
        raise ValueError("must be ISO 8601 text, not a number")
    return value


def _day(value: Any) -> Any:
    """Dates are YYYY-MM-DD (pydantic took a number, or a time at midnight in any zone)."""
    if isinstance(value, str):
        return _text(parse_day, value)
    if isinstance(value, (int, float)):
        raise ValueError("must be a date as text (YYYY-MM-DD), not a number")
    return value


def _text(parse: Any, value: str) -> Any:
    try:
        return parse(value)
    except InvalidInput as error:  # a validation error of its field
        raise ValueError(str(error)) from None


Text = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_printable)]
Place = Annotated[Location, AfterValidator(_place)]
# Numbers and flags are JSON's own: no `true` for 1, no "7" or 7.0 for 7, no "yes" for true.
Count = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]
Year = Annotated[Count, Field(ge=1000, le=9999)]
Pages = Annotated[Count, Field(ge=1, le=MAX_PAGES)]  # a record's, or a copy's
When = Annotated[AwareDatetime, BeforeValidator(_moment)]
Day = Annotated[date, BeforeValidator(_day)]


def _not_derived(value: UUID) -> UUID:
    """The ledger derives version-5 ids (actors, archival codes, the seal chain) from names:
    a record given one would take that name's place for good."""
    if value.version == 5:
        raise ValueError(
            "a record id must not be a version-5 UUID (the ledger's own derived ids); "
            "give another (e.g. uuid4) or none"
        )
    return value


RecordId = Annotated[UUID, AfterValidator(_not_derived)]


def _not_an_id(code: str) -> str:
    """A record is named by its id or its code, and text that parses as a UUID is an id:
    such a code would name another record (or none)."""
    try:
        UUID(code)
    except ValueError:
        return code
    raise ValueError("an archival code must not read as a record id (a UUID)")


NewCode = Annotated[ArchivalCode, AfterValidator(_not_an_id)]  # stored codes stay as they are


class Request(BaseModel):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, frozen=True, populate_by_name=True
    )
    occurred_at: When | None = None


class RecordRequest(Request):
    record: Annotated[str, Field(min_length=1), AfterValidator(_printable)]


class TextRequest(Request):
    """Text that is no command's field, such as a query's filter, read as every request
    reads its text: spaces around it dropped (Unicode's, the ideographic U+3000 too)."""

    text: str


class Receive(Request):
    command: Literal["receive"] = "receive"
    title: Text
    department: Text
    year: Year
    carrier: Carrier
    pages: Pages
    secrecy: Secrecy
    transferred_by: ActorId
    record: RecordId | None = None


class Arrange(RecordRequest):
    command: Literal["arrange"] = "arrange"
    category: Category
    retention: Retention
    code: NewCode
    unit: Unit = Unit.ITEM


class Shelve(RecordRequest):
    command: Literal["shelve"] = "shelve"
    location: Place


class Relocate(RecordRequest):
    command: Literal["relocate"] = "relocate"
    location: Place


class Consult(RecordRequest):
    command: Literal["consult"] = "consult"
    reader: ActorId
    purpose: Text
    approved_by: ActorId | None = None
    letter: Text | None = None


class Copy(RecordRequest):
    command: Literal["copy"] = "copy"
    reader: ActorId
    pages: Pages
    purpose: Text
    approved_by: ActorId
    letter: Text | None = None


class Lend(RecordRequest):
    command: Literal["lend"] = "lend"
    to: ActorId
    due: Day
    purpose: Text
    approved_by: ActorId
    letter: Text | None = None


class Return(RecordRequest):
    command: Literal["return"] = "return"
    pages: Annotated[Count, Field(ge=0, le=MAX_PAGES)]
    condition: Condition
    note: Text | None = None


class Repair(RecordRequest):
    command: Literal["repair"] = "repair"
    note: Text


class ReportLoss(RecordRequest):
    command: Literal["report-loss"] = "report-loss"
    pages: Pages  # what is left: fewer than the record's (checked by the record)
    note: Text


class Appraise(RecordRequest):
    command: Literal["appraise"] = "appraise"
    decision: Decision
    appraiser: list[ActorId]
    basis: Text
    review_on: Day | None = None
    secrecy: Secrecy | None = None  # the level a declassification lowers to

    # Options that the decision would ignore are refused: an officer who gave them
    # expects them kept (a level with "open" would be public all the same).
    @field_validator("review_on")
    @classmethod
    def _not_destroyed(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and info.data.get("decision") is Decision.DESTROY:
            raise ValueError("a decision to destroy has no next review")
        return value

    @field_validator("secrecy")
    @classmethod
    def _declassified(cls, value: Secrecy | None, info: ValidationInfo) -> Secrecy | None:
        if value is not None and info.data.get("decision") is not Decision.DECLASSIFY:
            raise ValueError("a level to lower to goes with a decision to declassify only")
        return value


class Destroy(RecordRequest):
    command: Literal["destroy"] = "destroy"
    approved_by: ActorId
    # None given is a missing option (as on the command line), not a refused attempt
    # (R12, kept): one or two of the same are the attempt's, and refused.
    witness: Annotated[list[ActorId], Field(min_length=1)]
    register_no: Text = Field(alias="register")
    method: Text | None = None


class Corrections(BaseModel):
    """The catalogue fields a correction sets (R13), each checked as a receipt checks it
    (a correction could set an empty or untrimmed title that a receipt refuses)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)
    title: Text | None = None
    department: Text | None = None
    year: Year | None = None
    pages: Pages | None = None

    @model_validator(mode="before")
    @classmethod
    def _only_these(cls, given: Any) -> Any:
        if isinstance(given, dict):
            for field, value in given.items():
                if field not in cls.model_fields:
                    raise ValueError(
                        f"only {', '.join(cls.model_fields)} can be corrected, not {field!r}"
                    )
                if value is None:
                    raise ValueError(f"{field} needs a value")
        return given

    def changes(self) -> dict[str, Any]:
        """The fields given, and their checked values."""
        return self.model_dump(exclude_none=True)


class Correct(RecordRequest):
    command: Literal["correct"] = "correct"
    version: Annotated[Count, Field(ge=1)]
    reason: Text
    set: Corrections = Corrections()


class AddActor(Request):
    command: Literal["actor-add"] = "actor-add"
    actor_id: ActorId
    name: Text
    role: Annotated[list[Role], Field(min_length=1)]
    clearance: Secrecy
    external: Flag = False
    unit: Text | None = None
    db_role: Text | None = None

    @field_validator("unit")
    @classmethod
    def _external(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not info.data.get("external"):
            raise ValueError("a unit is given for an external actor only")
        return value


class GrantRoles(Request):
    command: Literal["actor-grant"] = "actor-grant"
    actor_id: ActorId
    role: Annotated[list[Role], Field(min_length=1)]


class RevokeRoles(Request):
    command: Literal["actor-revoke"] = "actor-revoke"
    actor_id: ActorId
    role: Annotated[list[Role], Field(min_length=1)]


class ChangeClearance(Request):
    command: Literal["actor-clearance"] = "actor-clearance"
    actor_id: ActorId
    clearance: Secrecy


class DeactivateActor(Request):
    command: Literal["actor-deactivate"] = "actor-deactivate"
    actor_id: ActorId
    reason: Text


def first_problem(error: ValidationError, *, skip: int = 0) -> tuple[str, str]:
    """The first problem of a validation error: (field path, message).

    ``skip`` drops leading location parts (the union tag of a bulk line)."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"][skip:] if not isinstance(p, int))
    return where, str(first["msg"])


AnyRequest = Annotated[
    Receive
    | Arrange
    | Shelve
    | Relocate
    | Consult
    | Copy
    | Lend
    | Return
    | Repair
    | ReportLoss
    | Appraise
    | Destroy
    | Correct
    | AddActor
    | GrantRoles
    | RevokeRoles
    | ChangeClearance
    | DeactivateActor,
    Field(discriminator="command"),
]
