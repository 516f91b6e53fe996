"""`ledger catalog`, `loans`, `audit` and `report`: reading the projections.

Unless given --no-catch-up, a query first brings the projections it reads up to the
head of the event log, so it never shows stale data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from commands.options import as_posted, record_named
from commands.render import fmt, output_options, output_rows

F = TypeVar("F", bound=Callable[..., Any])
SECRECY = click.Choice(["public", "internal", "confidential", "secret", "top-secret"])
STATUS = click.Choice(["received", "arranged", "shelved", "on-loan", "destroyed"])
YEAR = click.IntRange(1000, 9999)  # a record's year (ledger.requests.Year): no other is stored

CATALOG_COLUMNS = [
    "id", "code", "title", "department", "year", "category", "carrier", "pages", "retention",
    "unit", "secrecy", "status", "location", "custodian", "late", "discrepancy",
    "received_at", "last_event_at", "version",
]  # fmt: skip
CATALOG_TABLE = [
    "code", "title", "year", "category", "secrecy", "status", "location", "custodian",
    "late", "discrepancy", "id",
]  # fmt: skip
LOAN_COLUMNS = [
    "record", "code", "title", "lent_version", "borrower", "approved_by", "purpose", "letter",
    "lent_at", "due", "lent_by", "status", "returned_at", "returned_to", "condition",
    "pages_returned", "discrepancy",
]  # fmt: skip
LOAN_TABLE = [
    "code", "borrower", "approved_by", "lent_at", "due", "status", "returned_at", "condition",
    "pages_returned", "record",
]  # fmt: skip
AUDIT_COLUMNS = [
    "occurred_at", "record", "code", "secrecy", "action", "outcome", "rule", "actor", "reader",
    "approved_by", "letter", "purpose", "detail", "position",
]  # fmt: skip
AUDIT_TABLE = [
    "occurred_at", "code", "secrecy", "action", "outcome", "rule", "actor", "reader",
    "approved_by", "purpose",
]  # fmt: skip
REGISTER_COLUMNS = [
    "register_no", "destroyed_at", "record", "code", "title", "retention", "appraised_at",
    "decision", "appraisers", "basis", "approved_by", "witnesses", "method", "actor",
]  # fmt: skip
REGISTER_TABLE = [
    "register_no", "destroyed_at", "code", "title", "retention", "appraised_at",
    "appraisers", "approved_by", "witnesses", "method",
]  # fmt: skip


def catch_up_option(func: F) -> F:
    return click.option(
        "--no-catch-up",
        is_flag=True,
        help="Read the projections as they are, without first catching up with the log.",
    )(func)


def projections_view(obj: Any, names: Sequence[str], no_catch_up: bool) -> Any:
    """A live view to query, after bringing the named projections up to date."""
    from projections.runner import Runner, open_projections

    ledger = obj.ledger()
    projections = open_projections(ledger, names)
    if not no_catch_up:
        with ledger.translated_errors():
            if all(p.view.writable() for p in projections):
                Runner(ledger, projections).run()
            else:
                say_how_far_behind(ledger, projections)
    return projections[0].view


def say_how_far_behind(ledger: Any, projections: Sequence[Any]) -> None:
    """A role that may read the projections but not move them (an officer's: README
    "Who wrote it") reads them as they are; stderr says how far behind each one is."""
    from projections.log import EventLog

    log = EventLog(ledger)
    for projection in projections:
        lag = log.count_after(projection.position or 0)
        if lag:
            click.echo(
                f"warning: {projection.name} is {lag} event{'s' * (lag != 1)} behind the log, "
                "shown as it is "
                f"(database role {ledger.db_role} may not update the projections; "
                "the owner's `ledger projections follow` or any query of the owner's does)",
                err=True,
            )


def given(_ctx: click.Context, param: click.Parameter, text: str | None) -> str | None:
    """A text filter, read as posting reads the value it matches: spaces around it
    dropped (`--category ' administration '` found nothing posting stored)."""
    return as_posted(_not_blank(param, text), param.opts[0])


def given_record(ctx: click.Context, param: click.Parameter, text: str | None) -> str | None:
    """--record: a filter given, read as every command reads RECORD."""
    return record_named(ctx, param, _not_blank(param, text))


def _not_blank(param: click.Parameter, text: str | None) -> str | None:
    """A filter given empty or as whitespace only is invalid input: it read as no filter
    at all (every row listed), or as a value nothing stored has, for an actor as one never
    registered. (str.strip drops all that posting drops, and more: what passes here is
    never empty once read as posting reads it.)"""
    from aggregates.errors import InvalidInput

    if text is not None and not text.strip():
        blank = "whitespace only" if text else "empty"
        raise InvalidInput(f"{param.opts[0]}: {blank}; give a value, or leave the option out")
    return text


def render(rows: list[dict[str, Any]], form: str, columns: list[str], table: list[str]) -> None:
    output_rows(rows, form, columns if form != "table" else table)


@click.command()
@click.option("--status", type=STATUS, help="Only records in this state.")
@click.option("--secrecy-at-least", type=SECRECY, metavar="LEVEL", help="Secrecy at or above.")
@click.option("--category", callback=given, metavar="C", help="Only this category.")
@click.option("--year", type=YEAR, metavar="Y", help="Only records of this year.")
@click.option(
    "--search",
    callback=given,
    metavar="TEXT",
    help="Text in the title, code, department or id.",
)
@catch_up_option
@output_options
@click.pass_obj
def catalog(obj: Any, /, no_catch_up: bool, as_json: bool, as_csv: bool, **filters: Any) -> None:
    """List the catalog: one row per record, filtered."""
    from projections import queries

    view = projections_view(obj, ["catalog"], no_catch_up)
    render(queries.catalog(view, **filters), fmt(as_json, as_csv), CATALOG_COLUMNS, CATALOG_TABLE)


@click.command()
@click.option("--open", "open_", is_flag=True, help="Open loans (default).")
@click.option("--overdue", is_flag=True, help="Open loans past their due date.")
@click.option("--all", "all_", is_flag=True, help="Every loan, returned ones too.")
@click.option("--borrower", callback=given, metavar="ID", help="Only this borrower's loans.")
@click.option(
    "--as-of",
    callback=lambda _ctx, _param, text: _day(text, "--as-of"),
    metavar="DATE",
    help="Judge open and overdue at the end of this day in UTC, YYYY-MM-DD (default: now, "
    "each loan overdue once its due day has passed in its own offset); "
    "rows show what had happened by then, titles included.",
)
@catch_up_option
@output_options
@click.pass_obj
def loans(
    obj: Any,
    /,
    open_: bool,
    overdue: bool,
    all_: bool,
    borrower: str | None,
    as_of: datetime | None,
    no_catch_up: bool,
    as_json: bool,
    as_csv: bool,
) -> None:
    """List loans: open (default), overdue or all (R10)."""
    from projections import queries

    chosen = [name for name, on in (("open", open_), ("overdue", overdue), ("all", all_)) if on]
    if len(chosen) > 1:
        raise click.UsageError("choose one of --open, --overdue and --all")
    which = chosen[0] if chosen else "open"
    if borrower is not None:
        _registered(obj, borrower)
    view = projections_view(obj, ["loans", "catalog"], no_catch_up)
    day = as_of.date() if as_of else None
    rows = queries.loans(view, which=which, borrower=borrower, as_of=day)
    render(rows, fmt(as_json, as_csv), LOAN_COLUMNS, LOAN_TABLE)


@click.command()
@click.option("--secrecy-at-least", type=SECRECY, metavar="LEVEL", help="Secrecy at or above.")
@click.option(
    "--actor", "who", callback=given, metavar="ID", help="Who posted it or who read the record."
)
@click.option(
    "--record", callback=given_record, metavar="RECORD", help="A record's id or archival code."
)
@click.option("--since", metavar="TIME", help="From this time on (ISO 8601; a date is 00:00 UTC).")
@click.option("--until", metavar="TIME", help="Before this time (ISO 8601; a date is 00:00 UTC).")
@click.option("--refused", is_flag=True, help="Only refused attempts (R11, R12, R18, R19).")
@catch_up_option
@output_options
@click.pass_obj
def audit(
    obj: Any,
    /,
    who: str | None,
    since: str | None,
    until: str | None,
    no_catch_up: bool,
    as_json: bool,
    as_csv: bool,
    **filters: Any,
) -> None:
    """List uses and refused attempts of records: the audit trail."""
    from aggregates.errors import NotFound
    from projections import queries

    unregistered: NotFound | None = None
    if who is not None:
        try:
            _registered(obj, who)
        except NotFound as error:  # an impostor's attempts (R19) are in the trail all the same
            unregistered = error
    if filters["record"] is not None:  # by id in any spelling or by code, as `show` names it
        filters["record"] = str(obj.ledger().record(filters["record"]).id)
    view = projections_view(obj, ["audit"], no_catch_up)
    rows = queries.audit(
        view, actor=who, since=_utc(since, "--since"), until=_utc(until, "--until"), **filters
    )
    # Whether the trail names an unregistered actor: the whole trail, not these filters' rows.
    if unregistered is not None and who is not None and not rows and not queries.names(view, who):
        raise NotFound(f"{unregistered}, and the audit trail does not name it")
    render(rows, fmt(as_json, as_csv), AUDIT_COLUMNS, AUDIT_TABLE)


def _registered(obj: Any, actor_id: str) -> None:
    """An actor a query filters by is registered (exit 4): a typo is no empty answer."""
    from ledger.batch import Batch

    Batch(obj.ledger()).actor(actor_id)


def _day(text: str | None, option: str) -> datetime | None:
    """A date, YYYY-MM-DD, as the start of that day (the one rule: aggregates.values)."""
    from aggregates.errors import InvalidInput
    from aggregates.values import parse_day

    if text is None:
        return None
    try:
        return datetime.combine(parse_day(text), datetime.min.time())
    except InvalidInput as error:
        raise InvalidInput(f"{option}: {error}") from None


def _utc(text: str | None, option: str) -> str | None:
    """An ISO 8601 time (or a date, meaning 00:00 UTC) as the audit's UTC text."""
    from aggregates.errors import InvalidInput
    from aggregates.values import parse_day, parse_moment
    from projections.base import utc_text

    if text is None:
        return None
    try:  # the one rule for times and dates (aggregates.values)
        if len(text) == 10:
            moment = datetime.combine(parse_day(text), datetime.min.time(), UTC)
        else:
            moment = parse_moment(text)
    except InvalidInput as error:
        raise InvalidInput(f"{option}: {error}") from None
    return utc_text(moment.isoformat())


@click.group()
def report() -> None:
    """Reports: the destruction register and statistics."""


@report.command("destruction-register")
@catch_up_option
@output_options
@click.pass_obj
def destruction_register(obj: Any, /, no_catch_up: bool, as_json: bool, as_csv: bool) -> None:
    """The destruction register (销毁清册): every destruction, its appraisal and approvals."""
    from projections import queries

    view = projections_view(obj, ["destruction", "catalog"], no_catch_up)
    rows = queries.destruction_register(view)
    render(rows, fmt(as_json, as_csv), REGISTER_COLUMNS, REGISTER_TABLE)


@report.command()
@click.option(
    "--period",
    type=click.Choice(["year", "month", "day"]),
    default="month",
    show_default=True,
    help="Period of the use counts (UTC).",
)
@catch_up_option
@output_options
@click.pass_obj
def statistics(obj: Any, /, period: str, no_catch_up: bool, as_json: bool, as_csv: bool) -> None:
    """Counts by category, year, retention, secrecy, status, carrier; uses per period."""
    from projections import queries

    view = projections_view(obj, ["catalog", "audit"], no_catch_up)
    rows = queries.statistics(view, period)
    output_rows(rows, fmt(as_json, as_csv), ["dimension", "value", "count"])
