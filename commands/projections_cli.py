"""`ledger projections status|rebuild|follow|check`: keeping the read side right."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import click

from commands.render import fmt, output_options, output_rows
from ledger.machine import cores
from ledger.wording import counted

NAMES = click.argument("names", nargs=-1, metavar="[NAME ...]")


@click.group()
def projections() -> None:
    """Projections: status, rebuild, follow, check."""


@projections.command()
@output_options
@click.pass_obj
def status(obj: Any, /, as_json: bool, as_csv: bool) -> None:
    """Each projection's position and how many events it is behind the log."""
    from projections.status import status_rows

    rows = status_rows(obj.ledger())
    output_rows(rows, fmt(as_json, as_csv), ["projection", "position", "head", "lag", "state"])


JOBS = click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=lambda: min(4, cores()),
    show_default="the number of cores, at most 4",
    help="Processes that build projections side by side; 1 builds them all in this one.",
)


@projections.command()
@NAMES
@JOBS
@click.pass_obj
def rebuild(obj: Any, /, names: tuple[str, ...], jobs: int) -> None:
    """Rebuild projections (default all) from the events alone, then swap them in.

    NAME is catalog, loans, audit or destruction.

    Builds into fresh tables and swaps them in atomically: readers never see a half-built
    projection, and an interrupted rebuild leaves the live ones untouched (run it again).
    What catch-ups applied meanwhile is applied to the new tables before the swap, so the
    projections never go back.
    With --jobs above 1, helper processes build some of the projections at the same time.
    Shows a progress bar on a terminal; prints a one-line summary.
    """
    from projections.parts import helpers
    from projections.rebuild import rebuild as run_rebuild
    from projections.runner import names_or_all

    chosen = names_or_all(names)
    with helpers(min(jobs, len(chosen)) - 1) as forked:  # before the store is opened
        ledger = obj.ledger()
        with _progress(ledger, "rebuilding") as progress, ledger.translated_errors():
            stats = run_rebuild(ledger, chosen, progress, helpers=forked)
    click.echo(f"rebuilt {', '.join(chosen)}: {stats.line()}")


@projections.command()
@NAMES
@JOBS
@click.pass_obj
def check(obj: Any, /, names: tuple[str, ...], jobs: int) -> None:
    """Rebuild into scratch tables and compare with the live projections (exit 6 if not equal).

    NAME is catalog, loans, audit or destruction (default all).

    Compares in one snapshot at the live positions, so queries and follow may catch up
    meanwhile. On SQLite it exits 5 if they moved on just before each of 5 attempts.
    """
    from aggregates.errors import IntegrityFailure
    from projections.parts import helpers
    from projections.rebuild import check as run_check
    from projections.runner import names_or_all

    chosen = names_or_all(names)
    with helpers(min(jobs, len(chosen)) - 1) as forked:  # before the store is opened
        ledger = obj.ledger()
        with ledger.translated_errors():
            differences, stats = run_check(ledger, chosen, helpers=forked)
    for difference in differences:
        click.echo(difference.line())
    if differences:
        differing = sorted({d.projection for d in differences})
        raise IntegrityFailure(f"projections differ from a rebuild: {', '.join(differing)}")
    click.echo(
        f"projections match a rebuild: {', '.join(chosen)} ({counted(stats.events, 'event')})"
    )


def _seconds(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    """A polling interval: click's FloatRange lets nan and inf through."""
    if not 0 < value < float("inf"):  # nan too
        raise click.BadParameter(f"{value} is not a number of seconds above 0")
    return value


@projections.command()
@NAMES
@click.option(
    "--interval",
    type=float,
    callback=_seconds,
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How often to poll the log (SQLite; PostgreSQL is notified).",
)
@click.pass_obj
def follow(obj: Any, /, names: tuple[str, ...], interval: float) -> None:
    """Keep projections up to date as events arrive, until stopped (SIGTERM, Ctrl-C).

    NAME is catalog, loans, audit or destruction (default all).
    """
    from projections.follow import Follower
    from projections.runner import names_or_all

    ledger = obj.ledger()
    follower = Follower(ledger, names_or_all(names), interval=max(interval, 0.05), report=_say)
    follower.prepare()  # a configuration error is the only line printed
    failure: list[BaseException] = []

    def work() -> None:
        try:
            follower.run()
        except BaseException as error:  # re-raised in the main thread
            failure.append(error)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: follower.stop())
    _say(f"following {ledger.store.shown}; stop with SIGTERM or Ctrl-C")
    worker = threading.Thread(target=work, name="follower")
    worker.start()
    while worker.is_alive():
        worker.join(0.2)
    if failure:
        raise failure[0]
    _say(f"stopped at position {follower.position}")


def _say(line: str) -> None:
    click.echo(line, err=True)


class _progress:
    """A progress bar on a terminal (stderr); nothing otherwise."""

    def __init__(self, ledger: Any, label: str) -> None:
        self.ledger = ledger
        self.label = label
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None] | None:
        if not sys.stderr.isatty():
            return None
        head = int(self.ledger.recorder.max_notification_id() or 0)
        self.bar = click.progressbar(length=max(head, 1), label=self.label, file=sys.stderr)
        self.bar.__enter__()
        return self.bar.update  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
