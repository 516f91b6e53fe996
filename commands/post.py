"""`ledger post FILE`: bulk posting from JSON Lines, idempotent per line id."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import click

from commands.render import emit_json
from ledger.machine import cores
from ledger.wording import counted


@click.command()
@click.argument("file", type=click.File("rb"), metavar="FILE")
@click.option("--stop-on-error", is_flag=True, help="Stop at the first refused or bad line.")
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Lines per transaction.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=lambda: min(4, cores()),
    show_default="the number of cores, at most 4",
    help="Worker processes for files of jobs x chunk size lines or more; 1 posts here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_obj
def post(
    obj: Any, /, file: IO[bytes], stop_on_error: bool, chunk_size: int, jobs: int, as_json: bool
) -> None:
    """Post commands in bulk from a JSON Lines file.

    FILE is JSON Lines (- for stdin); each line is {"command": NAME, "id": KEY, ...options
    in snake_case}, with an optional "actor". A line whose id was posted before is
    skipped, so a re-run after a crash posts nothing twice; a line whose id a refused
    attempt took before is named again as refused. Refused and malformed lines are
    reported on stderr with their line number. Exit 0 when every line was posted or
    skipped, 3 if some were refused, 2 if some were malformed.

    Long files are posted by --jobs worker processes, lines that touch the same record,
    archival code or line id kept together and in order; the outcome is that of posting
    the file in order. --stop-on-error posts in this process.
    """
    from ledger.bulk import BulkPoster, Problem
    from ledger.parallel import ParallelPoster

    def report(problem: Problem) -> None:
        click.echo(f"line {problem.line}: {problem.message}", err=True)

    poster: BulkPoster | ParallelPoster
    if jobs > 1 and not stop_on_error:
        poster = ParallelPoster(
            obj.ledger, obj.actor, jobs=jobs, chunk_size=max(1, chunk_size), on_problem=report
        )
    else:
        poster = BulkPoster(
            obj.ledger(),
            obj.actor,
            chunk_size=max(1, chunk_size),
            stop_on_error=stop_on_error,
            on_problem=report,
        )
    summary = poster.post(_lines(file))
    if as_json:
        emit_json(
            {
                k: getattr(summary, k)
                for k in ("posted", "skipped", "refused", "invalid", "events", "jobs")
            }
        )
    else:
        click.echo(
            f"posted {summary.posted}, skipped {summary.skipped}, "
            f"refused {summary.refused}, invalid {summary.invalid} "
            f"({counted(summary.events, 'event', grouped=False)})"
        )
    sys.exit(summary.exit_code)


def _lines(file: IO[bytes]) -> Iterator[bytes]:
    """The file's lines, with a progress bar on a terminal."""
    size = _size(file)
    if size is None or not sys.stderr.isatty():
        yield from file
        return
    with click.progressbar(length=size, label="posting", file=sys.stderr) as bar:
        for line in file:
            bar.update(len(line))
            yield line


def _size(file: IO[bytes]) -> int | None:
    try:
        stat = os.fstat(file.fileno())
    except (OSError, ValueError):
        return None
    return stat.st_size if stat.st_size else None
