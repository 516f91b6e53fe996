"""Backend-neutral descriptions of the projections' tables, and what a page changes in them.

A projection names its tables once; the per-backend views (projections.views) turn a
``Table`` into DDL, bulk inserts, keyed updates and comparisons. Column types are
``text``, ``int`` (32-bit is enough) or ``big`` (notification ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Row = tuple[Any, ...]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()  # secondary indexes of the live table
    # Columns added since the table was first made, the last ones: a live table made
    # before them gets them, empty, when its view is made (a rebuild fills them).
    added: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def position(self, column: str) -> int:
        return self.names.index(column)

    def type_of(self, column: str) -> str:
        return dict(self.columns)[column]

    @property
    def values(self) -> tuple[str, ...]:
        """The columns an update sets: all but the key."""
        return tuple(n for n in self.names if n not in self.key)


@dataclass(frozen=True)
class ViewSpec:
    """A projection's name and tables; its tracking table is ``<name>_tracking``."""

    name: str
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)


@dataclass
class TableChanges:
    """Rows a page adds to a table, and rows it rewrites (matched by the table's key)."""

    inserts: list[Row] = field(default_factory=list)
    updates: list[Row] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.inserts or self.updates)


Changes = dict[str, TableChanges]
