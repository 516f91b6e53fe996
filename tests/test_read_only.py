"""A SQLite store in a folder that cannot be written (a read-only file system, a folder
without the write permission): what only reads works, and what must write says so in
one line, exit 1 (`error: database unavailable: ...`), never `error: unexpected ...`."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from tests.cli import ARCHIVIST, LIAISON, TIMEOUT, one_line, run, setup_office, start


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[str]:
    """A store with its projections built (an event behind since), never rebuilt there
    since (no lock file), open in another process, in a folder then made read-only: by
    its permissions (which root ignores) or, for root, by a read-only bind mount of it."""
    folder = tmp_path / "store"
    folder.mkdir()
    url = f"sqlite:///{folder}/ledger.db"
    setup_office(url)
    received = run(
        url, "receive", "--title", "T", "--department", "D", "--year", "2010", "--carrier",
        "paper", "--pages", "3", "--secrecy", "public", "--transferred-by", LIAISON,
        actor=ARCHIVIST,
    )  # fmt: skip
    assert received.code == 0, received
    assert run(url, "projections", "rebuild").code == 0
    again = run(url, "receive", "--title", "T2", "--department", "D", "--year", "2010",
        "--carrier", "paper", "--pages", "3", "--secrecy", "public", "--transferred-by",
        LIAISON, actor=ARCHIVIST,
    )  # fmt: skip
    assert again.code == 0, again  # the projections are an event behind
    (folder / "ledger.db.projections.lock").unlink()  # as before the first rebuild
    # Another process has the store open (a query, `follow`): its write-ahead log and
    # shared-memory files stay, so the store can be opened, as SQLite needs them.
    with closing(sqlite3.connect(folder / "ledger.db")) as other:
        other.execute("SELECT count(*) FROM stored_events").fetchone()
        if os.geteuid() != 0:
            folder.chmod(0o555)
            yield url
            folder.chmod(0o755)
            return
        mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], check=False)
        if mounted.returncode != 0:
            pytest.skip("root, and no bind mount here: the folder cannot be made read-only")
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            yield url
        finally:
            subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("command", ["rebuild", "check"])
def test_a_rebuild_or_check_in_a_read_only_folder_is_one_line(read_only: str, command: str) -> None:
    done = run(read_only, "projections", command)
    assert done.code == 1, done
    lock = f"{read_only.removeprefix('sqlite:///')}.projections.lock"
    assert one_line(done.stderr).startswith(
        f"error: database unavailable: the lock of rebuilds and checks cannot be opened ({lock}: "
    ), done
    assert done.stdout == ""


def test_reading_a_read_only_folder_works(read_only: str) -> None:
    assert run(read_only, "catalog", "--no-catch-up").code == 0
    assert run(read_only, "projections", "status").code == 0
    assert run(read_only, "verify").code == 0


def test_follow_of_a_store_it_may_not_write_ends_at_once(read_only: str) -> None:
    """As a PostgreSQL role that may not write the projections: it used to retry for
    good (`database unavailable (attempt to write a readonly database); retrying in
    30.0 s`), as if a connection had dropped."""
    process = start(read_only, "projections", "follow", "--interval", "0.1")
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:  # still retrying: stopped, so the folder can be let go
            process.kill()
            process.communicate()
    assert (process.returncode, out) == (1, ""), err
    following, error = err.splitlines()
    assert following.startswith("following ")
    assert error == (
        "error: database unavailable: attempt to write a readonly database (this process "
        "may not write the store's file, where follow updates the projections)"
    )
    assert run(read_only, "catalog").code == 1  # a query may not catch up either
