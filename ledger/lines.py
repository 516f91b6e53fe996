"""Bulk posting's lines: JSON Lines parsed into validated requests, numbered in chunks.

Each line is one command with its options in snake_case, an idempotency key ``id`` and
optionally the acting ``actor`` (README, "Bulk posting"). A line that cannot be a request
keeps the reason as its problem; it is reported, never posted.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, get_args

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from ledger.requests import AnyRequest, character_at, first_problem, not_printable, refused_at

LINE = TypeAdapter(AnyRequest)
MAX_KEY = 200  # characters of a line's id
DIGEST_SIZE = 16  # bytes of a line's content digest: two lines sharing an id never match
DIGEST_V2 = "ledger line v2"  # named first in what a version-2 digest hashes


@dataclass(slots=True)
class Line:
    number: int
    key: str | None = None
    actor: str | None = None
    request: Any = None
    problem: str | None = None
    digest: bytes | None = None  # of the command it asks for (see ``content_digest``)
    text: bytes = b""  # as read (version 1 of its digest is computed from it)

    def matches(self, digest: bytes) -> bool:
        """Whether a digest taken before (a key's in the store, or this run's) is of a line
        that asks for what this one does: its version-2 digest, or, for a key kept before
        version 2, its version-1 digest (computed only then: it matches its own line as it
        did). A line that is no request (malformed) matches nothing."""
        if self.digest is None:
            return False
        return digest == self.digest or digest == raw_digest(self.text)


def parse(number: int, text: bytes, default_actor: str | None) -> Line:
    line = Line(number, text=text)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        line.problem = f"bad JSON: {error}"
        try:  # orjson blames bytes that are not UTF-8 on surrogates, at char 0
            text.decode()
        except UnicodeDecodeError as bad:
            line.problem = f"not UTF-8 text (byte {bad.start + 1} of the line)"
        return line
    if not isinstance(data, dict):
        line.problem = "a line must be a JSON object"
        return line
    repeated = repeated_key(text, data)
    if repeated is not None:
        line.problem = f"field {repeated!r} is given twice"
        return line
    key = data.pop("id", None)
    if not isinstance(key, str) or not key.strip():
        line.problem = 'each line needs an "id" (its idempotency key), a non-empty string'
        return line
    if not (len(key) <= MAX_KEY and key.isprintable() and printable_text(key)):
        line.problem = key_problem(key)
        return line
    line.key = key
    named = actor = data.pop("actor", None)
    if actor is None:  # absent or null: whoever the run acts as
        actor = default_actor
    elif not isinstance(actor, str) or not actor:  # "": not "no --actor given"
        line.problem = '"actor" must be an actor id (a non-empty string)'
        return line
    line.actor = actor
    try:  # the schema's own validator: TypeAdapter's wrapper cost a seventh of the call
        line.request = LINE.validator.validate_python(data)
    except ValidationError as error:
        where, message = first_problem(error, skip=1)
        line.problem = f"{where or 'command'}: {_huge_integer(error, data) or message}"
        return line
    line.digest = content_digest(line.request, named)
    return line


def printable_text(key: str) -> bool:
    """Whether a printable key holds none of what text may not hold either: variation
    selectors and Hangul fillers, say, which Python prints (as nothing). ASCII holds none
    (and asking costs nothing)."""
    return key.isascii() or refused_at(key) is None


def key_problem(key: str) -> str:
    """Why a line id that is too long or not printable is refused. A key is stored and
    looked up as text: PostgreSQL refuses NUL in text, and its key index a long one;
    either failed every run of the file, for good. What text may not hold (control,
    invisible and bidirectional formatting characters) is refused in the words text is;
    tabs, line breaks and other characters Python does not print (spaces but U+0020,
    private-use and unassigned ones) would hide in a report, or look like another id."""
    if len(key) > MAX_KEY:
        return f'"id" must be at most {MAX_KEY} characters'
    at = refused_at(key)
    if at is not None:
        return f'"id": {not_printable(key, at)}'
    at = next(n for n, char in enumerate(key) if not char.isprintable())
    return (
        '"id" must be printable: no tabs, line breaks, spaces but U+0020, private-use or '
        f"unassigned characters; {character_at(key, at)}"
    )


def content_digest(request: BaseModel, actor: str | None) -> bytes:
    """The digest a line's key is kept with (version 2): of what the line asks for, its
    request as validated (text stripped, a time's Z read as +00:00, defaults filled in),
    and of the actor it names, if any (not the run's --actor, so a re-run by someone else
    matches): fields in name order, those without a value (None) left out, so that a
    re-run's line, however written, matches, and another line given the same id does not.
    Times keep their offset, as the events do. Version 2 is named first in what is hashed:
    version 1 hashed a list of two. (1.3-2.1 µs a line; version 1 1.1-1.6 µs beside it.)"""
    content = orjson.dumps(
        [DIGEST_V2, actor, _fields(request)], default=_fields, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.blake2b(content, digest_size=DIGEST_SIZE).digest()


_OPTIONAL: dict[type, tuple[str, ...]] = {}  # a model's fields that may be None


def _fields(model: Any) -> dict[str, Any]:
    """A request's fields as validated, or a nested model's (orjson's default for them),
    those without a value (None) left out: a copy less the few that may be None (half
    the time of a comprehension over them all)."""
    try:
        optional = _OPTIONAL[type(model)]
    except KeyError:
        if not isinstance(model, BaseModel):
            raise TypeError(f"{type(model).__name__} is not a request's value") from None
        optional = _OPTIONAL[type(model)] = tuple(
            name
            for name, field in type(model).model_fields.items()
            if field.default is None or type(None) in get_args(field.annotation)
        )
    fields: dict[str, Any] = model.__dict__.copy()
    for name in optional:
        if fields[name] is None:
            del fields[name]
    return fields


def raw_digest(text: bytes) -> bytes:
    """Version 1 of the digest of a line that ``parse`` made a request of, as keys posted
    before version 2 were kept with: of its raw JSON values."""
    command = orjson.loads(text)
    command.pop("id")
    return raw_values_digest(command, command.pop("actor", None))


def raw_values_digest(command: dict[str, Any], actor: str | None) -> bytes:
    """Version 1 of a line's digest, of its JSON values as given (a field given null left
    out) besides its id, and of the actor it names (0.7 µs a line)."""
    if None in command.values():  # a field given null is a field left out
        command = {name: value for name, value in command.items() if value is not None}
    content = orjson.dumps([actor, command], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(content, digest_size=DIGEST_SIZE).digest()


def _huge_integer(error: ValidationError, data: dict[str, Any]) -> str | None:
    """orjson reads an integer beyond 64 bits as a float, which the schema refuses as not
    an integer: the message of the integer instead (a bounded field's range), on this
    failing path only."""
    first = error.errors()[0]
    value = first.get("input")
    if not (first["type"] == "int_type" and isinstance(value, float)):
        return None
    if not (value.is_integer() and abs(value) >= 2**63):
        return None
    try:
        *path, name = first["loc"][1:]  # (the first part is the command's tag)
        parent: Any = data
        for part in path:
            parent = parent[part]
        parent[name] = int(value)
        LINE.validator.validate_python(data)
    except ValidationError as again:
        if again.errors()[0]["loc"] == first["loc"]:
            return first_problem(again, skip=1)[1]
    except (LookupError, TypeError, ValueError):
        return None
    return "Input should be a valid integer (this one is too large to be read exactly)"


def repeated_key(text: bytes, data: dict[str, Any]) -> str | None:
    """A name given twice in one object of the line: orjson keeps the last value, so a
    line's `"set": {"pages": 30}, "set": {"title": "C"}` lost its pages unseen.

    Cheap for a line without one (0.4 µs): each key ends in a quote and a colon, with
    JSON's whitespace between them removed; if there are no more such ends than the keys
    orjson kept, no key was repeated. Only a line with more (a repeated key, or a quote
    and colon inside a string) is parsed again, keeping every pair."""
    ends = text.translate(None, b" \t\n\r").count(b'":')
    if ends == len(data) or ends == _count_keys(data):
        return None
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [name for name, _ in items]
        repeated.extend(name for i, name in enumerate(names) if name in names[:i])
        return dict(items)

    try:
        json.loads(text, object_pairs_hook=pairs)
    except ValueError:  # what orjson took, the standard parser refused: judged as it is
        return None
    return repeated[0] if repeated else None


def _count_keys(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(
            _count_keys(v) for v in value.values() if isinstance(v, dict | list)
        )
    if isinstance(value, list):
        return sum(_count_keys(v) for v in value if isinstance(v, dict | list))
    return 0


BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark, which some editors put first


def chunks(lines: Iterable[bytes], size: int) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for number, text in enumerate(lines, start=1):
        if number == 1 and text.startswith(BOM):
            text = text[len(BOM) :]
        if text.strip():
            chunk.append((number, text))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def few_collections() -> Iterator[None]:
    """Bulk posting allocates millions of short-lived objects that reference counting
    frees; the cyclic collector's passes over everything alive (all modules included)
    cost a tenth of the time. Objects alive now are frozen out of its passes and it
    runs less often; settings are restored afterwards."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
