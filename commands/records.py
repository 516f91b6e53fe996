"""Posting commands on records: one event each, checked against the archive rules."""

from __future__ import annotations

from functools import partial
from typing import Any

import click

from commands.options import RECORD, build, posting
from commands.render import emit_json

SECRECY = click.Choice(["public", "internal", "confidential", "secret", "top-secret"])


def post(obj: Any, name: str, as_json: bool, **options: Any) -> dict[str, Any]:
    from ledger import requests as rq

    # RECORD is an argument, but a receipt's --record is an option.
    arguments = None if name == "Receive" else {"record": "RECORD"}
    request = build(getattr(rq, name), arguments, **options)
    result: dict[str, Any] = obj.ledger().execute(request, obj.actor)
    if as_json:
        emit_json(result)
    elif name != "Receive":
        click.echo(
            f"{request.command}: {result.get('code') or result['record']} "
            f"version {result['version']}"
        )
    return result


@click.command()
@click.option("--title", required=True, help="题名.")
@click.option("--department", required=True, help="形成部门, the department that formed it.")
@click.option("--year", required=True, type=int, help="年度, the year of formation.")
@click.option("--carrier", required=True, type=click.Choice(["paper", "electronic", "audiovisual"]))
@click.option("--pages", required=True, type=int, help="页数, at least 1.")
@click.option("--secrecy", required=True, type=SECRECY, help="密级.")
@click.option("--transferred-by", required=True, metavar="ID", help="The department liaison.")
@click.option(
    "--record",
    metavar="UUID",
    help="Use this id for the new record (free, and not a version-5 UUID: the ledger's own).",
)
@posting
@click.pass_obj
def receive(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Receive a record (R1, R2); prints its id."""
    result = post(obj, "Receive", as_json, **options)
    if not as_json:
        click.echo(result["record"])


@click.command()
@RECORD
@click.option("--category", required=True, help="门类, e.g. administration, business.")
@click.option("--retention", required=True, type=click.Choice(["permanent", "30y", "10y"]))
@click.option("--code", required=True, help="档号, unique across the ledger; not a UUID.")
@click.option("--unit", type=click.Choice(["item", "volume"]), help="件 or 卷 (default item).")
@posting
@click.pass_obj
def arrange(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Classify, set retention and archival code (R3)."""
    post(obj, "Arrange", as_json, **options)


@click.command()
@RECORD
@click.option("--location", required=True, help="room-cabinet-shelf-layer, e.g. A1-03-2-4.")
@posting
@click.pass_obj
def shelve(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Put an arranged record on a shelf (R4)."""
    post(obj, "Shelve", as_json, **options)


@click.command()
@RECORD
@click.option("--location", required=True, help="The new room-cabinet-shelf-layer.")
@posting
@click.pass_obj
def relocate(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Move a shelved record (R4)."""
    post(obj, "Relocate", as_json, **options)


def use_options(func: Any, *, approval: bool = False) -> Any:
    """A use's options; ``approval``: the use needs one whatever the record (R5)."""
    for option in reversed(
        [
            click.option("--purpose", required=True),
            click.option(
                "--approved-by",
                required=approval,
                metavar="ID",
                help="The approving leader (R5-R7).",
            ),
            click.option(
                "--letter", metavar="REF", help="Introduction letter (external users, R7)."
            ),
        ]
    ):
        func = option(func)
    return func


@click.command()
@RECORD
@click.option("--reader", required=True, metavar="ID")
@use_options
@posting
@click.pass_obj
def consult(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Register a consultation in the reading room."""
    post(obj, "Consult", as_json, **options)


@click.command()
@RECORD
@click.option("--reader", required=True, metavar="ID")
@click.option("--pages", required=True, type=int)
@partial(use_options, approval=True)
@posting
@click.pass_obj
def copy(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Register an approved copy (R5)."""
    post(obj, "Copy", as_json, **options)


@click.command()
@RECORD
@click.option("--to", required=True, metavar="ID", help="The borrower.")
@click.option("--due", required=True, metavar="DATE", help="Due date, YYYY-MM-DD (R10).")
@partial(use_options, approval=True)
@posting
@click.pass_obj
def lend(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Lend a record with a leader's approval (R5, R8, R10)."""
    post(obj, "Lend", as_json, **options)


@click.command("return")
@RECORD
@click.option("--pages", required=True, type=int, help="Pages counted at return.")
@click.option("--condition", required=True, type=click.Choice(["intact", "damaged"]))
@click.option("--note")
@posting
@click.pass_obj
def return_(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Take a loan back, checking condition and pages (R9)."""
    post(obj, "Return", as_json, **options)


@click.command()
@RECORD
@click.option("--note", required=True, help="What was repaired.")
@posting
@click.pass_obj
def repair(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Record a repair; closes an open discrepancy (R9)."""
    post(obj, "Repair", as_json, **options)


@click.command("report-loss")
@RECORD
@click.option(
    "--pages",
    required=True,
    type=int,
    help="Pages the archive now holds: at least 1, fewer than catalogued.",
)
@click.option("--note", required=True, help="What was lost and how.")
@posting
@click.pass_obj
def report_loss(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Record a loss; closes a discrepancy (R9)."""
    post(obj, "ReportLoss", as_json, **options)


@click.command()
@RECORD
@click.option(
    "--decision", required=True, type=click.Choice(["retain", "destroy", "declassify", "open"])
)
@click.option(
    "--appraiser",
    required=True,
    multiple=True,
    metavar="ID",
    help="A committee member; give at least two.",
)
@click.option("--basis", required=True, help="The grounds of the decision.")
@click.option(
    "--review-on", metavar="DATE", help="Next review date, after the appraisal (needed to retain)."
)
@click.option(
    "--secrecy", type=SECRECY, help="Level a declassification lowers to (default public)."
)
@posting
@click.pass_obj
def appraise(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Record an appraisal committee's decision (R11)."""
    options["appraiser"] = list(options["appraiser"])
    post(obj, "Appraise", as_json, **options)


@click.command()
@RECORD
@click.option("--approved-by", required=True, metavar="ID", help="The approving leader.")
@click.option(
    "--witness",
    required=True,
    multiple=True,
    metavar="ID",
    help="A witness (监销人); give at least two.",
)
@click.option("--register", required=True, metavar="NO", help="Destruction-register number.")
@click.option("--method", help="How it was destroyed.")
@posting
@click.pass_obj
def destroy(obj: Any, /, as_json: bool, **options: Any) -> None:
    """Destroy a record under R12."""
    options["witness"] = list(options["witness"])
    post(obj, "Destroy", as_json, **options)


@click.command()
@RECORD
@click.option("--version", required=True, type=int, help="The version this corrects.")
@click.option("--reason", required=True)
@click.option(
    "--set",
    "changes",
    multiple=True,
    metavar="FIELD=VALUE",
    help="A corrected catalogue field: title, department, year (not after the receipt; "
    "the late flag follows it) or pages.",
)
@posting
@click.pass_obj
def correct(obj: Any, /, as_json: bool, changes: tuple[str, ...], **options: Any) -> None:
    """Answer a mistake with a correcting event (R13)."""
    from aggregates.errors import InvalidInput

    pairs = [c.partition("=") for c in changes]
    if any(not sep or not key for key, sep, _ in pairs):
        raise InvalidInput("--set takes FIELD=VALUE")
    keys = [key for key, _, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:  # the last would win unseen
        raise InvalidInput(f"--set gives {', '.join(twice)} more than once")
    fields = {k: _number(v) if k in NUMBERS else v for k, _, v in pairs}
    post(obj, "Correct", as_json, set=fields, **options)


NUMBERS = ("year", "pages")  # the corrections' numbers: a request takes no "7" for 7


def _number(value: str) -> int | str:
    """Plain decimal digits, perhaps after a minus sign (refused by the field's range, not
    as text); int() would also take 1_3, +13 or Arabic-Indic digits."""
    if value.isascii() and value.removeprefix("-").isdigit():
        return int(value)
    return value  # refused as not a number, naming the field
