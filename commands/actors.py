"""`ledger actor ...`: register and manage the people who act, approve, read and witness."""

from __future__ import annotations

from typing import Any

import click

from commands.options import build, posting
from commands.render import emit_json, fmt, output_options, output_rows

ROLES = click.Choice(
    ["archivist", "director", "liaison", "leader", "appraiser", "borrower", "auditor"]
)
LEVELS = click.Choice(["public", "internal", "confidential", "secret", "top-secret"])
ID_ARGUMENT = {"actor_id": "ID"}  # a bad ID is named as the usage names it


@click.group()
def actor() -> None:
    """Register, list and manage actors."""


@actor.command("add")
@click.argument("actor_id", metavar="ID")
@click.option("--name", required=True, metavar="TEXT")
@click.option("--role", required=True, multiple=True, type=ROLES, help="Repeat for more roles.")
@click.option("--clearance", required=True, type=LEVELS, help="Highest secrecy it may see.")
@click.option("--external", is_flag=True, help="A person from an external unit (R7).")
@click.option("--unit", metavar="TEXT", help="The external unit.")
@click.option(
    "--db-role",
    metavar="ROLE",
    help="Bind to this PostgreSQL role, one the server has (names are case-sensitive): "
    "only its sessions may act as the actor. Not on SQLite, which has no roles.",
)
@posting
@click.pass_obj
def add(obj: Any, /, actor_id: str, as_json: bool, **options: Any) -> None:
    """Register an actor (the acting actor must be a director)."""
    from ledger import requests as rq

    options["role"] = list(options["role"])
    request = build(rq.AddActor, ID_ARGUMENT, actor_id=actor_id, **options)
    result = obj.ledger().execute(request, obj.actor)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"actor {result['actor']} registered")  # as stored: stripped


@actor.command("list")
@output_options
@click.pass_obj
def list_(obj: Any, /, as_json: bool, as_csv: bool) -> None:
    """List actors."""
    form = fmt(as_json, as_csv)
    rows = [
        {
            "id": a.actor_id,
            "name": a.name,
            "roles": sorted(r.value for r in a.roles),
            "clearance": a.clearance.value,
            "external": a.external,
            "unit": a.unit,
            "active": a.active,
            "db_role": a.db_role,
        }
        for a in obj.ledger().actors()
    ]
    rows.sort(key=lambda r: r["id"])
    output_rows(
        rows, form, ["id", "name", "roles", "clearance", "external", "unit", "active", "db_role"]
    )


def _change(obj: Any, name: str, as_json: bool, **options: Any) -> None:
    from ledger import requests as rq

    request = build(getattr(rq, name), ID_ARGUMENT, **options)
    result = obj.ledger().execute(request, obj.actor)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"actor {result['actor']}: {request.command.removeprefix('actor-')}")


@actor.command("grant")
@click.argument("actor_id", metavar="ID")
@click.option("--role", required=True, multiple=True, type=ROLES)
@posting
@click.pass_obj
def grant(obj: Any, /, actor_id: str, as_json: bool, role: tuple[str, ...], **options: Any) -> None:
    """Grant roles to an active actor that does not have them."""
    _change(obj, "GrantRoles", as_json, actor_id=actor_id, role=list(role), **options)


@actor.command("revoke")
@click.argument("actor_id", metavar="ID")
@click.option("--role", required=True, multiple=True, type=ROLES)
@posting
@click.pass_obj
def revoke(
    obj: Any, /, actor_id: str, as_json: bool, role: tuple[str, ...], **options: Any
) -> None:
    """Revoke roles an actor has; it keeps at least one (deactivate it instead), and
    the last active director keeps the director role (R19)."""
    _change(obj, "RevokeRoles", as_json, actor_id=actor_id, role=list(role), **options)


@actor.command("clearance")
@click.argument("actor_id", metavar="ID")
@click.argument("level", type=LEVELS)
@posting
@click.pass_obj
def clearance(obj: Any, /, actor_id: str, level: str, as_json: bool, **options: Any) -> None:
    """Change an actor's clearance (to another level)."""
    _change(obj, "ChangeClearance", as_json, actor_id=actor_id, clearance=level, **options)


@actor.command("deactivate")
@click.argument("actor_id", metavar="ID")
@click.option("--reason", required=True)
@posting
@click.pass_obj
def deactivate(obj: Any, /, actor_id: str, as_json: bool, **options: Any) -> None:
    """Deactivate an actor: it may no longer act, approve, read or witness.

    The last active director is not deactivated (R19): grant the role to another first."""
    _change(obj, "DeactivateActor", as_json, actor_id=actor_id, **options)
