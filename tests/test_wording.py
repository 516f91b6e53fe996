"""Counts of events in the commands' lines say "1 event", never "1 events": `ledger post`'s
summary, `projections rebuild` and `check`, and `projections follow`'s catch-ups, through
the real `ledger` process on a store whose log holds one event, then two."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

from projections.runner import PROJECTIONS
from tests.cli import DIRECTOR, TIMEOUT, event_count, following, post, run, stop


def test_one_event_is_counted_in_the_singular(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    assert run(url, "init", "--director", DIRECTOR, "--name", "王主任").code == 0
    assert event_count(url) == 1  # the director's registration

    rebuilt = run(url, "projections", "rebuild")
    assert rebuilt.code == 0, rebuilt
    assert rebuilt.stdout.startswith("rebuilt catalog, loans, audit, destruction: 1 event in ")
    checked = run(url, "projections", "check")
    assert checked.code == 0, checked
    assert (
        checked.stdout
        == "projections match a rebuild: catalog, loans, audit, destruction (1 event)\n"
    )

    line = {
        "command": "actor-add",
        "id": "one",
        "actor_id": "arch",
        "name": "李档案员",
        "role": ["archivist"],
        "clearance": "internal",
    }
    posted = post(url, [line], actor=DIRECTOR)
    assert posted.code == 0, posted
    assert posted.stdout == "posted 1, skipped 0, refused 0, invalid 0 (1 event)\n"
    assert event_count(url) == 2
    assert _followed(url) == "at position 2 (+1 event)"
    assert run(url, "projections", "check").stdout.endswith(" (2 events)\n")


def _followed(url: str) -> str:
    """`projections follow`'s catch-up line, once it has caught up with the log."""
    with following(url) as follower:
        deadline = time.monotonic() + TIMEOUT
        while _positions(url) != {2}:
            assert follower.poll() is None and time.monotonic() < deadline, "not caught up"
            time.sleep(0.1)
        err = stop(follower)
    assert follower.returncode == 0, err
    return next(line for line in err.splitlines() if line.startswith("at position"))


def _positions(url: str) -> set[int]:
    """The positions the projections' tracking tables hold (read directly)."""
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
        return {
            int(conn.execute(f"SELECT max(notification_id) FROM {name}_tracking").fetchone()[0])
            for name in PROJECTIONS
        }
