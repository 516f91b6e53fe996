"""The ``ledger`` command: global options, lazy sub-commands, one place for errors.

Exit codes: 0 done; 1 unexpected; 2 invalid input; 3 refused by an archive rule;
4 not found; 5 conflict with a concurrent writer; 6 integrity or projection difference.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

# name -> (module:attribute, one-line help). Modules load only when their command runs,
# so `ledger --help` stays fast; tests check each line matches the command's own help.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("commands.setup:init", "Create the store (safe to run twice); first director."),
    "actor": ("commands.actors:actor", "Register, list and manage actors."),
    "receive": ("commands.records:receive", "Receive a record (R1, R2); prints its id."),
    "arrange": ("commands.records:arrange", "Classify, set retention and archival code (R3)."),
    "shelve": ("commands.records:shelve", "Put an arranged record on a shelf (R4)."),
    "relocate": ("commands.records:relocate", "Move a shelved record (R4)."),
    "consult": ("commands.records:consult", "Register a consultation in the reading room."),
    "copy": ("commands.records:copy", "Register an approved copy (R5)."),
    "lend": ("commands.records:lend", "Lend a record with a leader's approval (R5, R8, R10)."),
    "return": ("commands.records:return_", "Take a loan back, checking condition and pages (R9)."),
    "repair": ("commands.records:repair", "Record a repair; closes an open discrepancy (R9)."),
    "report-loss": ("commands.records:report_loss", "Record a loss; closes a discrepancy (R9)."),
    "appraise": ("commands.records:appraise", "Record an appraisal committee's decision (R11)."),
    "destroy": ("commands.records:destroy", "Destroy a record under R12."),
    "correct": ("commands.records:correct", "Answer a mistake with a correcting event (R13)."),
    "post": ("commands.post:post", "Post commands in bulk from a JSON Lines file."),
    "show": ("commands.reading:show", "Show a record's state, now or as of a moment."),
    "custody": ("commands.reading:custody", "Show a record's chain of custody."),
    "catalog": ("commands.queries:catalog", "List the catalog: one row per record, filtered."),
    "loans": ("commands.queries:loans", "List loans: open (default), overdue or all (R10)."),
    "audit": (
        "commands.queries:audit",
        "List uses and refused attempts of records: the audit trail.",
    ),
    "report": ("commands.queries:report", "Reports: the destruction register and statistics."),
    "projections": (
        "commands.projections_cli:projections",
        "Projections: status, rebuild, follow, check.",
    ),
    "seal": ("commands.integrity:seal", "Seal the event log: a digest to write down or publish."),
    "verify": (
        "commands.integrity:verify",
        "Recompute every hash, link and seal; exit 6 on any problem.",
    ),
    "keygen": ("commands.integrity:keygen", "Print a new encryption key for LEDGER_CIPHER_KEY."),
}


class Context:
    """Global options; the ledger opens on first use."""

    def __init__(self, db: str | None, actor: str | None) -> None:
        self.db = db
        self.actor = actor
        self._ledger: Any = None

    def ledger(self, *, must_exist: bool = True, check_key: bool = True) -> Any:
        if self._ledger is None:
            from ledger.application import open_ledger

            self._ledger = open_ledger(self.db, must_exist=must_exist, check_key=check_key)
        return self._ledger


class LedgerGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*COMMANDS, *self.commands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[cmd_name][0].split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Every failure is one line on stderr and a documented exit code."""
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Exit as done:
            sys.exit(done.exit_code)
        except click.exceptions.NoArgsIsHelpError as bare:  # `ledger` or `ledger actor` alone
            click.echo(bare.ctx.get_help())
            sys.exit(0)
        except click.UsageError as error:
            fail(f"error: {one_line(error.format_message())} (see --help)", 2)
        except click.ClickException as error:
            fail(f"error: {one_line(error.format_message())}", error.exit_code)
        except click.Abort:
            fail("error: aborted", 1)
        except Exception as error:  # the one place where errors become lines
            fail_with(error)
        sys.exit(result if isinstance(result, int) else 0)


def fail_with(error: BaseException) -> None:
    from aggregates.errors import LedgerError

    if isinstance(error, LedgerError):
        fail(error.line(), error.exit_code)
    from eventsourcing.persistence import InterfaceError, OperationalError
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        fail(f"error: {describe_validation(error)}", 2)
    import sqlite3

    # The library's (a folder that is missing), SQLite's own (not a database file, a
    # read-only one), or psycopg's where the ledger reads with it (`verify`, `seal`).
    if isinstance(error, OperationalError | InterfaceError | sqlite3.DatabaseError) or (
        disconnected(error)
    ):
        fail(f"error: database unavailable: {str(error).splitlines()[0]}", 1)
    if denied(error):  # a grant the role lacks (README "Who wrote it: database roles")
        message = str(error).splitlines()[0]  # "permission denied for table x", ...
        fail(f"error: {message} (a right this database role was not granted)", 1)
    if os.environ.get("LEDGER_DEBUG"):
        raise error
    message = str(error).splitlines()[0] if str(error) else ""
    fail(f"error: unexpected {type(error).__name__}: {message}", 1)


def denied(error: BaseException) -> bool:
    """PostgreSQL refused the session's role a right (the library wraps the driver's error)."""
    if "psycopg" not in sys.modules:  # a SQLite store never imports it
        return False
    from psycopg.errors import InsufficientPrivilege

    return isinstance(error, InsufficientPrivilege) or isinstance(
        error.__cause__, InsufficientPrivilege
    )


def disconnected(error: BaseException) -> bool:
    """The driver lost its connection (the server ended it, or went away) where the ledger
    reads PostgreSQL with psycopg itself, not through the library, which wraps it."""
    if "psycopg" not in sys.modules:  # a SQLite store never imports it
        return False
    from psycopg import OperationalError

    return isinstance(error, OperationalError)


def describe_validation(error: Any) -> str:
    """The first problem of a pydantic ValidationError, as option-name: message."""
    from ledger.requests import first_problem

    where, message = first_problem(error)
    return f"{where.replace('_', '-')}: {message}" if where else message


def one_line(message: str) -> str:
    """Click lists choices one per line (a missing Choice option): every error is one."""
    return " ".join(message.split())


def fail(line: str, code: int) -> None:
    click.echo(line, err=True)
    sys.exit(code)


@click.group(cls=LedgerGroup)
@click.option(
    "--db",
    envvar="LEDGER_DB",
    metavar="URL",
    help="sqlite:///FILE (default sqlite:///ledger.db) or "
    "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB. Env: LEDGER_DB.",
)
@click.option(
    "--actor",
    envvar="LEDGER_ACTOR",
    metavar="ID",
    help="The registered actor who acts. Env: LEDGER_ACTOR.",
)
@click.version_option(package_name="records-custody-ledger", prog_name="ledger")
@click.pass_context
def cli(ctx: click.Context, db: str | None, actor: str | None) -> None:
    """Records-custody ledger: every lifecycle action of an archive's records as an
    immutable, rule-checked, hash-chained event.

    Exit codes: 0 done, 1 unexpected, 2 invalid input, 3 refused by an archive rule,
    4 not found, 5 conflict with a concurrent writer (run again), 6 integrity or
    projection difference.
    """
    ctx.obj = Context(db, actor)
