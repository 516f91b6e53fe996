"""`ledger show` and `ledger custody`: one record, now or as of a moment."""

from __future__ import annotations

from typing import Any

import click

from commands.options import RECORD
from commands.render import cell, emit_json, fmt, output_mapping, output_options, output_rows

AS_OF = click.option(
    "--as-of", metavar="TIME", help="What had happened by this time (ISO 8601 with offset)."
)
KNOWN_AT = click.option(
    "--known-at",
    metavar="TIME",
    help="Only what had been recorded by this time (for back-dated entries).",
)


def _history(
    obj: Any, /, record: str, as_of: str | None, known_at: str | None
) -> tuple[list[Any], dict[int, str]]:
    """The record's events up to the moment, and the database role of each."""
    from aggregates.errors import NotFound
    from commands.options import moment_of
    from ledger.custody import known_by

    moment = moment_of(as_of, "--as-of")
    known = moment_of(known_at, "--known-at")
    events, roles = obj.ledger().record_history(record)
    kept = known_by(events, moment, known)
    if not kept:
        if known_by(events, moment, None):  # it existed then; nothing was recorded yet
            raise NotFound(f"nothing of record {record!r} had been recorded by {known_at}")
        raise NotFound(f"record {record!r} did not exist yet at {as_of}")
    return kept, roles


@click.command()
@RECORD
@AS_OF
@KNOWN_AT
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
@click.pass_obj
def show(obj: Any, /, record: str, as_of: str | None, known_at: str | None, as_json: bool) -> None:
    """Show a record's state, now or as of a moment."""
    from ledger.custody import state_of

    events, _ = _history(obj, record, as_of, known_at)
    state = obj.ledger().record(str(events[0].originator_id), version=len(events))
    output_mapping(state_of(state), fmt(as_json))


@click.command()
@RECORD
@AS_OF
@KNOWN_AT
@output_options
@click.pass_obj
def custody(
    obj: Any, record: str, as_of: str | None, known_at: str | None, as_json: bool, as_csv: bool
) -> None:
    """Show a record's chain of custody."""
    from ledger.custody import custody_chain

    form = fmt(as_json, as_csv)
    events, roles = _history(obj, record, as_of, known_at)
    chain = custody_chain(events, roles)
    if form == "json":
        emit_json(chain)
        return
    role = ["db_role"] if roles else []  # PostgreSQL only, as in --json
    columns = ["version", "occurred_at", "event", "actor", *role, "custodian", "details"]
    rows = [dict(r, details=_details(r)) for r in chain["events"]]
    if form == "csv":  # every field of --json's events, the others in details
        everything = ["version", "occurred_at", "recorded_at", "event", "actor", "custodian",
                      *role, "details", "prev_hash", "hash"]  # fmt: skip
        output_rows(rows, form, everything)
        return
    click.echo(f"record {chain['record']}  code {chain['code'] or '-'}")
    output_rows(rows, form, columns)
    click.echo("\ncustody intervals:")
    output_rows(chain["intervals"], form, ["custodian", "from", "until"])


_NOT_DETAILS = {"version", "occurred_at", "recorded_at", "event", "actor", "custodian",
                "prev_hash", "hash", "db_role"}  # fmt: skip


def _details(row: dict[str, Any]) -> str:
    """An event's own fields as ``name=value``, one space apart (null ones, and an empty
    list or mapping, left out); a mapping's fields as ``name.field=value``. A value that
    is empty or holds a space, '=', '"' or any character not printable is quoted, a '"'
    in it doubled: a purpose of 'x approved_by=y' read as an approval (exploratory find)."""
    return " ".join(_pairs({k: v for k, v in row.items() if k not in _NOT_DETAILS}))


def _pairs(fields: dict[str, Any], prefix: str = "") -> list[str]:
    pairs: list[str] = []
    for name, value in fields.items():
        if value is None or value == [] or value == {}:
            continue
        if isinstance(value, dict):
            pairs.extend(_pairs(dict(sorted(value.items())), f"{prefix}{name}."))
        else:
            pairs.append(f"{prefix}{name}={_quoted(cell(value))}")
    return pairs


def _quoted(text: str) -> str:
    if text and text.isprintable() and not any(ch in text for ch in ' ="'):
        return text
    return '"' + text.replace('"', '""') + '"'
