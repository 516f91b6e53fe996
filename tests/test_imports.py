"""A command imports only what it needs: psycopg (about 0.3 s of every process here) only
for a PostgreSQL store, and `--help` none of the heavy libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest

from tests.cli import ARCHIVIST, DIRECTOR, LIAISON, environment, jsonl, post, setup_office

RECORD = "8c1e0d3a-5b7f-4c2e-9a61-0f3d2b4c5e6a"
HEAVY = {"psycopg", "psycopg_binary", "eventsourcing.postgres", "pydantic", "eventsourcing"}

# Runs the console script's entry point, then names the heavy modules it imported.
PROBE = """
import atexit, sys
heavy = set(sys.argv[1].split(","))
atexit.register(lambda: print("imported:", ",".join(sorted(heavy & set(sys.modules)))))
sys.argv = ["ledger", *sys.argv[2:]]
from commands.main import cli
cli()
"""


def imported(db_url: str, *args: str, actor: str | None = None, input: str = "") -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(sorted(HEAVY)), *args],
        env=environment(db_url, actor),
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    assert last.startswith("imported:"), done.stdout
    return set(filter(None, last.removeprefix("imported: ").split(",")))


def test_help_imports_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    assert imported(f"sqlite:///{tmp_path}/ledger.db", "--help") == set()


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('office')}/ledger.db"
    setup_office(url)
    assert post(url, [receipt("r1", RECORD)], actor=ARCHIVIST).code == 0
    return url


def receipt(line_id: str, record: str) -> dict[str, object]:
    return {"command": "receive", "id": line_id, "record": record, "title": "档案",
            "department": "办公室", "year": 2012, "carrier": "paper", "pages": 3,
            "secrecy": "internal", "transferred_by": LIAISON,
            "occurred_at": "2026-01-05T09:00:00+08:00"}  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("catalog",),
        ("show", RECORD),
        ("custody", RECORD),
        ("audit", "--record", RECORD),
        ("verify",),
        ("projections", "rebuild"),
        ("actor", "list"),
    ],
    ids=" ".join,
)
def test_a_command_on_a_sqlite_store_does_not_import_psycopg(office: str, args: tuple[str]) -> None:
    found = imported(office, *args, actor=DIRECTOR)
    assert "eventsourcing" in found, found  # the probe sees what the command imported
    assert not found & {"psycopg", "psycopg_binary", "eventsourcing.postgres"}, found


def test_posting_on_a_sqlite_store_does_not_import_psycopg(office: str) -> None:
    line = receipt("r2", str(uuid4()))
    found = imported(office, "post", "-", actor=ARCHIVIST, input=jsonl([line]))
    assert "pydantic" in found, found
    assert not found & {"psycopg", "psycopg_binary", "eventsourcing.postgres"}, found
