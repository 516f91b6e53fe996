"""A rebuild killed with SIGKILL half-way leaves the live projections as they were, and the
next rebuild completes with the result of an uninterrupted one (real processes)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.application import open_ledger
from ledger.bulk import BulkPoster
from projections.rebuild import LOCK_KEY
from projections.runner import PROJECTIONS, catch_up
from tests.cli import (
    LEDGER,
    TIMEOUT,
    children,
    environment,
    event_count,
    fresh_store,
    generate,
    run,
)

# About 39,000 events, in pages of 25: each part commits every 8 pages, some 190 times.
# With a quarter of that log the command's own part could pass half-way before its
# helper's first commit (the helper starts a few tens of milliseconds later), and the
# rebuild ended before every part had been seen short of half-way (1 run in 6).
RECORDS = 4800
PAGE = "25"


def tables() -> list[tuple[str, tuple[str, ...]]]:
    found = [(f"{name}_tracking", ("application_name",)) for name in PROJECTIONS]
    found += [(t.name, t.key) for p in PROJECTIONS.values() for t in p.spec.tables]
    return found


def select(url: str, sql: str) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]  # type: ignore[arg-type]


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every live projection table, tracking included, in key order."""
    return {
        name: select(url, f"SELECT * FROM {name} ORDER BY {', '.join(key)}")
        for name, key in tables()
    }


def scratch_position(url: str, name: str = "audit") -> int | None:
    try:
        rows = select(url, f"SELECT notification_id FROM {name}_tracking_new "
                           "WHERE application_name = 'Ledger'")  # fmt: skip
    except (sqlite3.Error, psycopg.Error):
        return None  # not created yet
    return int(rows[0][0]) if rows else None


def scratch_positions(url: str) -> dict[str, int | None]:
    return {name: scratch_position(url, name) for name in PROJECTIONS}


def scratch_tables(url: str) -> list[str]:
    if url.startswith("sqlite:"):
        sql = "SELECT name FROM sqlite_master WHERE type = 'table' "
        sql += "AND name LIKE '%\\_new' ESCAPE '\\'"
    else:
        sql = "SELECT tablename FROM pg_tables WHERE tablename LIKE '%\\_new'"
    return sorted(str(r[0]) for r in select(url, sql))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ledger of about ten thousand events, its live projections up to date."""
    generated = generate(tmp_path / "lines.jsonl", RECORDS)
    with fresh_store(request.param, tmp_path) as url:
        ledger = open_ledger(url, must_exist=False)
        ledger.create_tables()
        ledger.initialise("dir", "主任")
        lines = [line.encode() for line in generated.path.read_text().splitlines()]
        summary = BulkPoster(ledger, "g.arch").post(lines)
        assert summary.posted == generated.posted, summary.problems[:3]
        catch_up(ledger)
        ledger.close()
        yield url


def start_rebuild(url: str) -> subprocess.Popen[str]:
    env = {**environment(url), "LEDGER_PROJECTION_PAGE_SIZE": PAGE}
    return subprocess.Popen(
        [LEDGER, "projections", "rebuild", "--jobs", "2"],  # a helper process builds a part
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_half_way(url: str, process: subprocess.Popen[str], head: int) -> int:
    """SIGKILL the rebuild once its scratch tables hold part of the log and every part (the
    rebuild's own, its helper's) is short of half-way; the audit's scratch position then."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        positions = scratch_positions(url)
        position = positions["audit"]
        if all(p is not None and p < head // 2 for p in positions.values()) and position:
            helpers = children(process.pid)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=TIMEOUT)
            assert helpers, "the rebuild had no helper process"
            time.sleep(0.3)  # the helpers die with the rebuild: no part goes on to the end
            after = scratch_positions(url)
            assert all((p or 0) < head * 3 // 4 for p in after.values()), (positions, after)
            assert all(gone(pid) for pid in helpers)
            assert lock_released(url)
            return position
        assert process.poll() is None, "the rebuild ended before it could be killed"
        time.sleep(0.002)
    raise AssertionError("the rebuild never got going")


def lock_released(url: str) -> bool:
    """PostgreSQL ends a killed client's session, and with it the rebuild lock (an advisory
    lock), once its backend notices the client is gone: true once that has happened (within
    a few seconds). Until then a new rebuild is told to try again later (exit 5)."""
    if url.startswith("sqlite:"):
        return True  # a file lock: released by the kernel with the process
    held = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 "
        f"AND objid = {LOCK_KEY} AND objsubid = 1 AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    deadline = time.monotonic() + 5
    while select(url, held)[0][0]:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def gone(pid: int) -> bool:
    """The process ended (or is a zombie waiting for its reaper) within a few seconds."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "State:\tZ" in status:
            return True
        time.sleep(0.01)
    return False


def test_killed_rebuild_leaves_live_projections_and_the_next_one_completes(store: str) -> None:
    before = dump(store)
    [head] = [n for name, n in before["audit_tracking"] if name == "Ledger"]
    events = event_count(store)
    assert events > 5000 and len(before["catalog"]) == RECORDS
    process = start_rebuild(store)
    position = kill_half_way(store, process, head)
    assert process.returncode == -signal.SIGKILL
    assert dump(store) == before  # the live projections: untouched
    assert scratch_tables(store)  # what the killed rebuild left behind
    left = scratch_position(store)  # a page or two may have committed before the kill landed
    assert left is not None and position <= left < head
    status = run(store, "projections", "status", "--json")
    assert {(r["position"], r["lag"]) for r in status.json()} == {(head, 0)}

    again = run(store, "projections", "rebuild", "--jobs", "3")  # three parts this time
    assert again.code == 0, again
    assert again.stdout.startswith(
        f"rebuilt catalog, loans, audit, destruction: {events:,} events in "
    )
    assert scratch_tables(store) == []
    assert dump(store) == before  # the same as the projections kept up incrementally
    checked = run(store, "projections", "check")
    assert checked.code == 0, checked
    assert (
        checked.stdout
        == f"projections match a rebuild: catalog, loans, audit, destruction ({events:,} events)\n"
    )


def test_a_killed_helper_stops_the_rebuild_with_one_line(store: str) -> None:
    before = dump(store)
    process = start_rebuild(store)
    deadline = time.monotonic() + TIMEOUT
    while not (helpers := children(process.pid)) or not scratch_position(store, "catalog"):
        assert process.poll() is None and time.monotonic() < deadline, "no helper at work"
        time.sleep(0.002)
    for pid in helpers:
        os.kill(pid, signal.SIGKILL)
    out, err = process.communicate(timeout=TIMEOUT)
    assert (process.returncode, out) == (5, "")
    assert err == "error: a projection helper process stopped; run the command again\n"
    assert dump(store) == before  # nothing swapped in
    assert run(store, "projections", "rebuild").code == 0
    assert dump(store) == before
