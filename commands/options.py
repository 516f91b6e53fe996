"""Options shared by commands, and turning options into validated requests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from aggregates.errors import InvalidInput

F = TypeVar("F", bound=Callable[..., Any])


def posting(func: F) -> F:
    """--occurred-at (R14) and --json for every command that posts an event."""
    func = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")(func)
    func = click.option(
        "--occurred-at",
        metavar="TIME",
        help="When it happened, ISO 8601 with offset (default now, in the machine's local "
        "offset; never in the future, never before the record's previous event).",
    )(func)
    return func


def build(request_class: type[Any], arguments: dict[str, str] | None = None, **options: Any) -> Any:
    """Validate options into a request; a bad value is one line, exit 2, naming its
    option, or its positional argument by its metavar (``arguments``: field -> metavar)."""
    from pydantic import ValidationError

    from ledger.requests import first_problem

    occurred = moment_of(options.pop("occurred_at", None), "--occurred-at")
    values = {k: v for k, v in options.items() if v is not None and v != ()}
    if occurred is not None:
        values["occurred_at"] = occurred
    try:
        return request_class.model_validate(values)
    except ValidationError as error:
        where, message = first_problem(error)
        name = (arguments or {}).get(where) or f"--{where.replace('_', '-')}"
        raise InvalidInput(f"{name}: {message}") from None


def record_named(_ctx: click.Context, param: click.Parameter, text: str | None) -> str | None:
    """A RECORD (an id in any spelling, or an archival code) read as a posting command reads
    it, by its request (spaces around it dropped; empty or spaces only is invalid input
    naming the argument or option): `show ' H-0001 '` found no record `arrange` finds."""
    from ledger.requests import RecordRequest

    if text is None:
        return None
    argument = isinstance(param, click.Argument) and param.metavar  # else --record
    record: str = build(
        RecordRequest, {"record": argument} if argument else None, record=text
    ).record
    return record


RECORD = click.argument("record", metavar="RECORD", callback=record_named)


def as_posted(text: str | None, name: str) -> str | None:
    """Text that no request takes (a query's filter) read as posting reads text, by a
    request: spaces around it dropped; text that is no Unicode (bytes of no UTF-8 in
    argv) is invalid input naming ``name``, its option."""
    from ledger.requests import TextRequest

    if text is None:
        return None
    value: str = build(TextRequest, {"text": name}, text=text).text
    return value


def moment_of(text: str | None, option: str) -> datetime | None:
    """An option's ISO 8601 time (the one rule: aggregates.values); a bad one is invalid
    input naming the option."""
    from aggregates.values import parse_moment

    if text is None:
        return None
    try:
        return parse_moment(text)
    except InvalidInput as error:
        raise InvalidInput(f"{option}: {error}") from None
