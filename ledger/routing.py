"""Which worker posts a bulk line: by the keys the line shares with earlier lines.

A line's keys are the record it names ("r" and the record's id, however the id is
spelt; or "c" and an archival code, plus "r" and the id of the record that holds the code
in the store) and the code an arrangement claims ("c"). Each key has a home: the worker
that was sent the first line with it. A line goes to the home of its keys, so lines that
share anything a rule reads go to one worker, in file order; a line with new keys only
goes to the least loaded worker. A home lasts while lines with the key are in flight (a
record moves when a line joins two homes, after both have committed; a key's home is
forgotten once its lines are committed and its worker has moved past them: see
ledger.parallel, which also keeps a repeated line id after its first line).
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import msgspec

Numbered = list[tuple[int, bytes]]
RouteKeys = tuple[list[str], str | None, str | None]  # keys, code named, code claimed
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHORTEST_ID = 32  # UUID() accepts no fewer than 32 characters


def record_key(ref: str) -> str:
    """The key of a record reference: "r" and its id, or "c" and an archival code."""
    if len(ref) < _SHORTEST_ID:
        return "c" + ref
    if _CANONICAL_ID.fullmatch(ref):
        return "r" + ref
    try:
        return "r" + str(UUID(ref))
    except ValueError:
        return "c" + ref


class LineKeys(msgspec.Struct):
    """What routing reads of a line (msgspec skips the rest; the last of a repeated name
    wins, as for the line's own parser)."""

    id: Any = None
    command: Any = None
    record: Any = None
    code: Any = None


_LINE_KEYS = msgspec.json.Decoder(LineKeys)


def line_keys(text: bytes) -> LineKeys | None:
    """The line's keys, or None for a line that is not a JSON object."""
    try:
        return _LINE_KEYS.decode(text)
    except msgspec.MsgspecError:
        return None


def claimed_code(data: LineKeys | None) -> str | None:
    """The archival code an arrangement line claims."""
    if data is not None and data.command == "arrange" and isinstance(data.code, str):
        return data.code
    return None


def route_keys(data: LineKeys | None) -> RouteKeys:
    """A line's keys, the archival code it names its record by (None if by id), and the
    code it claims (an arrangement)."""
    if data is None:
        return [], None, None
    keys = []
    named = None
    record = data.record
    if isinstance(record, str) and record:
        key = record_key(record)
        keys.append(key)
        if key[0] == "c":
            named = record
    claimed = claimed_code(data)
    if claimed is not None:
        keys.append("c" + claimed)
    return keys, named, claimed
