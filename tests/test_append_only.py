"""Append-only where the data lives: the database itself refuses to change or remove a stored
event, whoever asks, through its own command-line program (sqlite3, psql).

If the `sqlite3` program is not installed, the same statements run through Python's sqlite3
module in a separate process (``python -c``); the refusal comes from the same triggers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import DIRECTOR, post, run
from tests.pg import fresh_database, require_pg
from tests.tamper import RawStore

SQLITE_RUNNER = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1])\n"
    "try:\n"
    "    conn.execute(sys.argv[2]); conn.commit()\n"
    "except sqlite3.Error as error:\n"
    "    sys.exit(f'Error: {error}')\n"
)


def start_ledger(url: str) -> None:
    """A ledger with a director, one more actor and one posted bulk line."""
    assert run(url, "init", "--director", DIRECTOR, "--name", "王主任").code == 0
    line = {
        "command": "actor-add",
        "id": "line-1",
        "actor_id": "li",
        "name": "李",
        "role": ["archivist"],
        "clearance": "secret",
    }
    assert post(url, [line], actor=DIRECTOR).code == 0


def everything(url: str) -> list[tuple[object, ...]]:
    """Every stored event and posted line, as the database holds them."""
    raw = RawStore(url)
    events = raw.query(
        f"SELECT {raw.position}, originator_id, originator_version, topic, state "
        f"FROM {raw.table} ORDER BY 1"
    )
    posted = raw.query("SELECT id, outcome FROM ledger_posted ORDER BY id")
    assert len(events) == 2 and len(posted) == 1
    return events + posted


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One ledger for every statement below: each is refused, so it stays as it was."""
    path = tmp_path_factory.mktemp("append-only") / "ledger.db"
    start_ledger(f"sqlite:///{path}")
    return f"sqlite:///{path}", path


@pytest.fixture(scope="module")
def pg_store() -> Iterator[str]:
    require_pg()
    with fresh_database() as url:
        start_ledger(url)
        yield url


def sqlite3_program(path: Path, statement: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("sqlite3"):
        command = ["sqlite3", str(path), statement]
    else:
        command = [sys.executable, "-c", SQLITE_RUNNER, str(path), statement]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE stored_events SET topic = 'ledger/Record/Destroyed' WHERE rowid = 1",
        "UPDATE stored_events SET state = x'00'",
        "DELETE FROM stored_events WHERE rowid = 2",
        "DELETE FROM stored_events",  # SQLite's TRUNCATE
        "UPDATE ledger_posted SET outcome = 'x'",
        "DELETE FROM ledger_posted",
    ],
)
def test_sqlite_refuses_update_and_delete(sqlite_store: tuple[str, Path], statement: str) -> None:
    url, path = sqlite_store
    before = everything(url)
    done = sqlite3_program(path, statement)
    assert done.returncode != 0, done
    assert "ledger tables are append-only" in done.stderr, done
    assert everything(url) == before


def test_sqlite_still_appends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    start_ledger(url)
    statement = "INSERT INTO ledger_posted (id, outcome) VALUES ('by-hand', 'posted')"
    assert sqlite3_program(tmp_path / "ledger.db", statement).returncode == 0
    assert sqlite3_program(tmp_path / "ledger.db", "DELETE FROM ledger_posted").returncode != 0


def psql(url: str, statement: str) -> subprocess.CompletedProcess[str]:
    if not shutil.which("psql"):
        pytest.skip("the psql program is not installed")
    return subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", statement],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


PG_STATEMENTS = [
    (
        "UPDATE ledger_events SET topic = 'ledger/Record/Destroyed'",
        "UPDATE on ledger_events refused",
    ),
    ("DELETE FROM ledger_events WHERE notification_id = 2", "DELETE on ledger_events refused"),
    ("TRUNCATE ledger_events", "TRUNCATE on ledger_events refused"),
    ("UPDATE ledger_posted SET outcome = 'x'", "UPDATE on ledger_posted refused"),
    ("DELETE FROM ledger_posted", "DELETE on ledger_posted refused"),
    ("TRUNCATE ledger_posted", "TRUNCATE on ledger_posted refused"),
]


@pytest.mark.postgres
@pytest.mark.parametrize(("statement", "refused"), PG_STATEMENTS)
def test_postgres_refuses_update_delete_and_truncate(
    pg_store: str, statement: str, refused: str
) -> None:
    """Even for the superuser who owns the tables: the triggers fire for every role."""
    before = everything(pg_store)
    done = psql(pg_store, statement)
    assert done.returncode != 0, done
    assert f"ledger tables are append-only: {refused}" in done.stderr, done
    assert everything(pg_store) == before


@pytest.mark.postgres
@pytest.mark.parametrize(("statement", "refused"), PG_STATEMENTS)
def test_postgres_refuses_them_in_replication_mode_too(
    pg_store: str, statement: str, refused: str
) -> None:
    """A superuser's session in replica mode skips ordinary triggers without disabling
    them (an exploratory find: its UPDATE went through); the ledger's fire always."""
    before = everything(pg_store)
    done = psql(pg_store, f"SET session_replication_role = replica; {statement}")
    assert done.returncode != 0, done
    assert f"ledger tables are append-only: {refused}" in done.stderr, done
    assert everything(pg_store) == before


@pytest.mark.postgres
def test_init_makes_the_triggers_of_a_store_made_before_fire_always() -> None:
    require_pg()
    with fresh_database() as url:
        start_ledger(url)
        for table in ("ledger_events", "ledger_posted"):  # as `ledger init` left them before
            assert psql(url, f"ALTER TABLE {table} ENABLE TRIGGER USER").returncode == 0
        assert run(url, "init").code == 0
        modes = RawStore(url).query("SELECT tgenabled FROM pg_trigger WHERE NOT tgisinternal")
        assert sorted(mode for (mode,) in modes) == ["A"] * 4
