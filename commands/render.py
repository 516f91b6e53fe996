"""One renderer: a readable table by default, --json or --csv; data to stdout only."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any, TypeVar
from uuid import UUID

import click

F = TypeVar("F", bound=Callable[..., Any])


def output_options(func: F) -> F:
    """--json and --csv, mutually exclusive; the default is a table."""
    func = click.option("--csv", "as_csv", is_flag=True, help="CSV with a header row.")(func)
    func = click.option("--json", "as_json", is_flag=True, help="JSON output.")(func)
    return func


def fmt(as_json: bool, as_csv: bool = False) -> str:
    if as_json and as_csv:
        raise click.UsageError("choose one of --json and --csv")
    return "json" if as_json else "csv" if as_csv else "table"


def plain(value: Any) -> Any:
    """Make a value JSON-ready: times as ISO 8601, enums and ids as strings."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def emit_json(data: Any) -> None:
    click.echo(json.dumps(plain(data), ensure_ascii=False, indent=2))


def cell(value: Any, *, text: bool = False) -> str:
    """A value in a CSV cell (a mapping as JSON), or, with ``text``, in a text table:
    there a mapping's strings stay raw, as every other cell's, and the table escapes a
    tab, a line break or a backslash once (JSON's own escapes would be escaped again)."""
    value = plain(value)
    if isinstance(value, list):
        return ",".join(_scalar(v) for v in value)
    if isinstance(value, dict):
        if text:
            return "{" + ", ".join(f'"{k}": {_raw(v)}' for k, v in sorted(value.items())) + "}"
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _scalar(value)


def _scalar(value: Any) -> str:
    """Null as nothing; a flag as --json spells it, true or false (Python's True and False
    reached CSV exports, tables and custody details)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _raw(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def output_rows(rows: Sequence[dict[str, Any]], form: str, columns: Sequence[str] = ()) -> None:
    columns = list(columns) or (list(rows[0]) if rows else [])
    if form == "json":
        emit_json([{c: row.get(c) for c in columns} for row in rows])
    elif form == "csv":
        buffer = io.StringIO()
        writer = csv.writer(_EndInNewline(buffer), lineterminator="\r\n")
        writer.writerow(columns)
        writer.writerows([cell(row.get(c)) for c in columns] for row in rows)
        click.echo(buffer.getvalue(), nl=False)
    else:
        click.echo(table(rows, columns))


class _EndInNewline:
    """Rows written with the terminator "\\r\\n" ended in "\\n". The csv writer quotes a
    field holding a character of its terminator: with "\\n" alone, a field holding a CR
    went unquoted and a CSV reader split the row there (exploratory find)."""

    def __init__(self, out: io.StringIO) -> None:
        self.out = out

    def write(self, line: str) -> int:
        return self.out.write(line.removesuffix("\r\n") + "\n")


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_on_one_line(cell(row.get(c), text=True)) for c in columns] for row in rows]
    widths = [max(_width(x) for x in [c, *(r[i] for r in cells)]) for i, c in enumerate(columns)]
    lines = [_line(columns, widths), _line(["-" * w for w in widths], widths)]
    lines.extend(_line(r, widths) for r in cells)
    return "\n".join(lines)


_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _on_one_line(text: str) -> str:
    """A table cell on one line: a line break or tab in a title (text may hold them)
    is shown as \\n or \\t, not laid out by the terminal (JSON and CSV keep them); a
    backslash as \\\\, so that a title holding a backslash and an n reads otherwise."""
    if text.isprintable() and "\\" not in text:
        return text
    return text.translate(_ESCAPES)


def _width(text: str) -> int:
    """Display width in a terminal's columns: wide and fullwidth characters (CJK, 全角
    punctuation) take two, combining marks none, the rest one (halfwidth forms and
    East Asian "ambiguous" ones such as · and —, as most terminals draw them)."""
    if text.isascii():
        return len(text)
    return sum(_char_width(ch) for ch in text)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _line(values: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(
        v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=True)
    ).rstrip()


def output_mapping(data: dict[str, Any], form: str) -> None:
    if form == "json":
        emit_json(data)
    else:
        width = max((len(k) for k in data), default=0)
        for key, value in data.items():
            click.echo(f"{key.ljust(width)}  {_on_one_line(cell(value, text=True))}")
