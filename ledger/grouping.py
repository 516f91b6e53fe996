"""Splitting a window of bulk lines into groups that share nothing a rule reads.

Lines are joined into one group when they name the same record (by its id in any
spelling, or by an archival code), the same archival code, or the same line id. Each
group carries its keys ("r" and a record id, "c" and a code, "i" and a line id), so that
the scheduler (ledger.parallel) can send a later group after an earlier one it shares a
key with, to the same worker.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec

Numbered = list[tuple[int, bytes]]
_CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def record_key(ref: str) -> str:
    """The key of a record reference: "r" and its id, or "c" and an archival code."""
    if _CANONICAL_ID.fullmatch(ref):
        return "r" + ref
    try:
        return "r" + str(UUID(ref))
    except ValueError:
        return "c" + ref


@dataclass
class Group:
    lines: Numbered  # in file order
    keys: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)  # the lines' ids (idempotency keys)


class LineKeys(msgspec.Struct):
    """What grouping reads of a line (msgspec skips the rest; the last of a repeated name
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


class Grouping:
    """Lines joined when they share a key (union-find over line indexes, the first line
    of each key standing for it)."""

    def __init__(self, lines: Numbered, decoded: list[LineKeys | None]) -> None:
        self.lines = lines
        self.parent = list(range(len(lines)))
        self.first: dict[str, int] = {}
        self.referenced: dict[str, list[int]] = {}  # code naming a record -> its lines
        self.line_keys: list[list[str]] = [[] for _ in lines]
        self.line_ids: list[str | None] = [None] * len(lines)
        arranged: set[str] = set()
        for index, data in enumerate(decoded):
            if data is None:
                continue
            line_id, record, code = data.id, data.record, data.code
            if isinstance(line_id, str):
                self._key("i" + line_id, index)
                self.line_ids[index] = line_id
            if isinstance(record, str) and record:
                key = record_key(record)
                self._key(key, index)
                if key[0] == "c":
                    self.referenced.setdefault(record, []).append(index)
            if isinstance(code, str) and data.command == "arrange":
                self._key("c" + code, index)
                arranged.add(code)
        for code in arranged:
            self.referenced.pop(code, None)

    def _key(self, key: str, index: int) -> None:
        self.line_keys[index].append(key)
        first = self.first.setdefault(key, index)
        if first != index:
            self._join(first, index)

    def _find(self, index: int) -> int:
        parent = self.parent
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    def _join(self, a: int, b: int) -> None:
        a, b = self._find(a), self._find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def groups(self, owners: Callable[[list[str]], dict[str, UUID]]) -> list[Group]:
        """The groups, in the order of their first lines. ``owners`` names the records of
        codes arranged before this window, which lines here may name by id: each such line
        also gets the record's id as a key."""
        for code, record_id in owners(sorted(self.referenced)).items():
            for index in self.referenced[code]:
                self._key("r" + str(record_id), index)
        by_root: dict[int, Group] = {}
        for index, line in enumerate(self.lines):
            group = by_root.setdefault(self._find(index), Group([]))
            group.lines.append(line)
            group.keys.update(self.line_keys[index])
            line_id = self.line_ids[index]
            if line_id is not None:
                group.ids.add(line_id)
        return list(by_root.values())
