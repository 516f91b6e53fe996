"""`ledger init`: create the store, and register the first director."""

from __future__ import annotations

from typing import Any

import click


@click.command()
@click.option(
    "--director",
    metavar="ID",
    help="Register this first director (while no actor is registered); an actor id.",
)
@click.option("--name", metavar="TEXT", help="The director's name.")
@click.pass_obj
def init(obj: Any, /, director: str | None, name: str | None) -> None:
    """Create the store (safe to run twice); first director."""
    from aggregates.errors import InvalidInput

    if director and not name:
        raise InvalidInput("--director needs --name")
    if name and not director:
        raise InvalidInput("--name goes with --director")
    ledger = obj.ledger(must_exist=False)
    ledger.create_tables()
    registered = ledger.initialise(director, name)
    if registered:
        click.echo(f"ledger ready at {ledger.store.shown}; director {registered} registered")
    else:
        click.echo(f"ledger ready at {ledger.store.shown}")
