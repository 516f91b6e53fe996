"""`ledger seal`, `ledger verify` and `ledger keygen`: the tamper-evident ledger."""

from __future__ import annotations

from typing import Any

import click

from commands.options import record_named
from commands.render import emit_json
from ledger.wording import counted

SHOWN_PROBLEMS = 1000


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the seal as JSON.")
@click.pass_obj
def seal(obj: Any, /, as_json: bool) -> None:
    """Seal the event log: a digest to write down or publish."""
    from ledger.seal import seal_log

    receipt = seal_log(obj.ledger(), obj.actor)
    if as_json:
        emit_json(receipt.as_dict())
        return
    click.echo(f"seal      {receipt.number}")
    click.echo(f"position  {receipt.position}")
    click.echo(f"events    {receipt.events}")
    click.echo(f"digest    {receipt.digest}")
    click.echo(f"sealed at {receipt.sealed_at.isoformat()}")
    click.echo(
        "Write the digest and the position down, or publish them. To prove later that no "
        "event up to this position has changed:"
    )
    click.echo(f"  ledger verify --digest {receipt.digest} --position {receipt.position}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--record",
    metavar="RECORD",
    callback=record_named,
    help="Check one record's chain (id or archival code; or any chain's id, e.g. an "
    "actor's) and the log's digests.",
)
@click.option("--digest", metavar="HEX", help="A digest written down from `ledger seal`.")
@click.option("--position", type=int, metavar="N", help="The position printed with that digest.")
@click.pass_obj
def verify(
    obj: Any, /, as_json: bool, record: str | None, digest: str | None, position: int | None
) -> None:
    """Recompute every hash, link and seal; exit 6 on any problem.

    A LEDGER_CIPHER_KEY that reads no event of the store (none on an encrypted store, one
    on a store that is not encrypted, the wrong one) is refused with exit 2, as every
    command refuses it.
    """
    from aggregates.errors import IntegrityFailure
    from ledger.verify import check_key, parse_given, resolve_record, verify_log

    given = parse_given(digest, position)
    ledger = obj.ledger(check_key=False)  # a changed first event must not stop it
    check_key(ledger)
    record_id = resolve_record(ledger, record) if record else None
    report = verify_log(ledger, record=record_id, given=given)
    if as_json:
        emit_json(report.as_dict(SHOWN_PROBLEMS))
    else:
        for line in report_lines(report, SHOWN_PROBLEMS):
            click.echo(line)
    if not report.intact:
        count = len(report.problems) + report.undiagnosed
        raise IntegrityFailure(
            f"verification failed: {counted(count, 'problem')}"
            f"{' (listed above)' if not as_json else ''}"
        )


@click.command()
def keygen() -> None:
    """Print a new encryption key for LEDGER_CIPHER_KEY."""
    from ledger.integrity import new_cipher_key

    click.echo(new_cipher_key())


def report_lines(report: Any, limit: int) -> list[str]:
    """Problems first (one line each), then what was checked."""
    lines = [problem.line() for problem in report.problems[:limit]]
    more = max(0, len(report.problems) - limit) + report.undiagnosed
    if more:
        lines.append(f"... and {counted(more, 'more problem')} (--json lists up to {limit})")
    lines.append(
        f"checked {counted(report.events, 'event')} up to position {report.head} in "
        f"{report.seconds:.2f} s ({report.rate:,.0f} events/s)"
    )
    lines.append(f"encryption: {'on' if report.encrypted else 'off'}")
    last = report.last_seal
    if last is None:
        lines.append("seals: none yet; the log is covered by the hash chains only (`ledger seal`)")
    else:
        lines.append(
            f"seals: {len(report.seals)}; the last is seal {last.number} at position "
            f"{last.position} ({last.sealed_at})"
        )
        lines.append(
            f"events after the last seal at position {last.position} are covered by the chain only"
        )
    if report.given is not None:
        verdict = {True: "matches", False: "DIFFERS", None: "not reached"}[report.given_matches]
        lines.append(f"given digest at position {report.given.position}: {verdict}")
    if report.digest is None:
        lines.append(
            f"log digest at position {report.head}: unknown "
            f"({counted(report.unreadable, 'event')} could not "
            "be read)"
        )
    else:
        lines.append(f"log digest at position {report.head}: {report.digest}")
    lines.append("intact" if report.intact else "NOT INTACT")
    return lines
