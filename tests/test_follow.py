"""`ledger projections follow` keeps up while another process posts, survives its
PostgreSQL connections being killed (pg_terminate_backend), and stops on SIGTERM; what it
built is exactly a rebuild: nothing missed, nothing counted twice."""

from __future__ import annotations

import secrets
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ledger.application import open_ledger
from projections.rebuild import check
from projections.runner import PROJECTIONS
from tests.cli import TIMEOUT, following, fresh_store, generate, start, stop
from tests.pg import require_pg

RECORDS = 300
USES = ("Consulted", "Copied", "Lent", "Returned")


def positions(url: str) -> set[int | None]:
    found: set[int | None] = set()
    for name in PROJECTIONS:
        sql = f"SELECT notification_id FROM {name}_tracking WHERE application_name = 'Ledger'"
        try:
            rows = query(url, sql)
        except (sqlite3.Error, psycopg.Error):
            rows = []  # not created yet
        found.add(int(rows[0][0]) if rows else None)
    return found


def query(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [tuple(r) for r in conn.execute(sql.replace("%s", "?"), params).fetchall()]
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]  # type: ignore[arg-type]


def head(url: str) -> int:
    table, column = (
        ("stored_events", "rowid")
        if url.startswith("sqlite")
        else ("ledger_events", "notification_id")
    )
    return int(query(url, f"SELECT max({column}) FROM {table}")[0][0] or 0)  # type: ignore[arg-type]


def wait_until_caught_up(url: str, follower: subprocess.Popen[str]) -> int:
    """Wait (polling the stored positions) until every projection is at the head."""
    target = head(url)
    deadline = time.monotonic() + TIMEOUT
    while positions(url) != {target}:
        assert follower.poll() is None, follower.communicate()
        assert time.monotonic() < deadline, f"follower stuck at {positions(url)}, head {target}"
        time.sleep(0.05)
    return target


def post(url: str, path: Path) -> subprocess.Popen[str]:
    return start(url, "post", str(path), "--chunk-size", "150", actor="g.arch")


def kill_connections(url: str, name: str) -> int:
    """pg_terminate_backend every connection of the follower; how many there were."""
    admin = require_pg()
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (name,),
        ).fetchall()
    return len(rows)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """A store with its director, and two files of lines (the second without actors)."""
    first = generate(tmp_path / "first.jsonl", RECORDS).path
    second = tmp_path / "second.jsonl"
    lines = first.read_text().splitlines()
    actors = [line for line in lines if '"actor-add"' in line]
    rest = [line for line in lines if '"actor-add"' not in line]
    half = len(rest) // 2
    first.write_text("\n".join(actors + rest[:half]) + "\n")
    second.write_text("\n".join(rest[half:]) + "\n")
    with fresh_store(request.param, tmp_path) as url:
        ledger = open_ledger(url, must_exist=False)
        ledger.create_tables()
        ledger.initialise("dir", "主任")
        ledger.close()
        yield url, first, second


def test_follow_keeps_up_and_resumes_after_its_connections_are_killed(
    store: tuple[str, Path, Path],
) -> None:
    url, first, second = store
    name = f"ledger-follow-{secrets.token_hex(4)}"
    with following(url, name) as follower:
        posting = post(url, first)  # while the follower runs
        assert posting.wait(timeout=TIMEOUT) == 3, posting.communicate()  # refused attempts
        wait_until_caught_up(url, follower)
        if url.startswith("postgresql"):
            assert kill_connections(url, name) >= 1  # at least its LISTEN connection
        posting = post(url, second)
        assert posting.wait(timeout=TIMEOUT) in (0, 3), posting.communicate()
        position = wait_until_caught_up(url, follower)
        err = stop(follower)
    print(err)  # shown when the test fails
    assert follower.returncode == 0, err
    assert err.splitlines()[-1] == f"stopped at position {position}"
    if url.startswith("postgresql"):
        assert "database unavailable" in err and "retrying in" in err
    ledger = open_ledger(url)
    differences, _ = check(ledger)
    assert [d.line() for d in differences] == []
    topics = [f"ledger/Record/{use}" for use in USES] + ["ledger/Refusal/AttemptRefused"]
    events = "stored_events" if url.startswith("sqlite") else "ledger_events"
    marks = ", ".join(["%s"] * len(topics))
    [(uses,)] = query(url, f"SELECT count(*) FROM {events} WHERE topic IN ({marks})", *topics)
    [(rows,)] = query(url, "SELECT count(*) FROM audit")
    assert rows == uses and rows > RECORDS * 3
    ledger.close()
