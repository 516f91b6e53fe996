"""`ledger loans --as-of DATE` shows each row's title as it was then, through the real
`ledger` process, on SQLite and PostgreSQL.

The loan register took the title from the catalog, which holds the current one: a loan
listed as of 2012 showed the title a correction gave the record in 2016, while `ledger
show --as-of` said otherwise. The catalog projection now keeps the titles corrections
replaced (built from the events alone: a rebuild and a check agree).
"""

from __future__ import annotations

import csv
import io
import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from tests.cli import (
    ARCHIVIST,
    BACKENDS,
    BORROWER,
    LEADER,
    LIAISON,
    fresh_store,
    post,
    run,
    setup_office,
)

RECORD = "6a1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
CODE = "Z01-WS·2011-Y-BGS-0007"


def lines() -> list[dict[str, object]]:
    """A record titled T1, lent in 2012 and returned; its title corrected to T2 in 2014,
    lent again in 2015 (open), corrected to T3 on 2016-01-01 at 00:00 UTC; its
    department corrected in 2017 (not its title)."""
    at = {"record": RECORD}
    return [
        {"command": "receive", "id": "r", "title": "T1", "department": "办公室", "year": 2011,
         "carrier": "paper", "pages": 5, "secrecy": "internal", "transferred_by": LIAISON,
         "occurred_at": "2012-01-10T09:00:00+08:00", **at},
        {"command": "arrange", "id": "a", "category": "administration", "retention": "permanent",
         "code": CODE, "occurred_at": "2012-01-11T09:00:00+08:00", **at},
        {"command": "shelve", "id": "s", "location": "A1-01-1-1",
         "occurred_at": "2012-01-12T09:00:00+08:00", **at},
        {"command": "lend", "id": "l1", "to": BORROWER, "due": "2012-03-20", "purpose": "审计",
         "approved_by": LEADER, "occurred_at": "2012-02-20T09:00:00+08:00", **at},
        {"command": "return", "id": "b1", "pages": 5, "condition": "intact",
         "occurred_at": "2012-03-01T09:00:00+08:00", **at},
        {"command": "correct", "id": "c1", "version": 1, "reason": "typo", "set": {"title": "T2"},
         "occurred_at": "2014-06-01T09:00:00+08:00", **at},
        {"command": "lend", "id": "l2", "to": BORROWER, "due": "2030-01-01", "purpose": "编研",
         "approved_by": LEADER, "occurred_at": "2015-03-01T09:00:00+08:00", **at},
        # (R13: the title comes from the first correction, version 6, by then)
        {"command": "correct", "id": "c2", "version": 6, "reason": "typo", "set": {"title": "T3"},
         "occurred_at": "2016-01-01T08:00:00+08:00", **at},
        {"command": "correct", "id": "c3", "version": 1, "reason": "dept",
         "set": {"department": "档案室"}, "occurred_at": "2017-05-01T09:00:00+08:00", **at},
    ]  # fmt: skip


def titles(url: str, *as_of: str) -> list[tuple[str, str, str]]:
    """(lent_at, status, title) of every loan, as of a day or today, from the CSV."""
    done = run(url, "loans", "--all", *as_of, "--csv")
    assert done.code == 0, done
    rows = csv.DictReader(io.StringIO(done.stdout))
    return [(row["lent_at"][:10], row["status"], row["title"]) for row in rows]


EXPECTED = {
    ("--as-of", "2012-02-25"): [("2012-02-20", "open", "T1")],
    ("--as-of", "2014-05-31"): [("2012-02-20", "returned", "T1")],
    ("--as-of", "2014-06-01"): [("2012-02-20", "returned", "T2")],
    ("--as-of", "2015-12-31"): [("2012-02-20", "returned", "T2"), ("2015-03-01", "open", "T2")],
    ("--as-of", "2016-01-01"): [("2012-02-20", "returned", "T3"), ("2015-03-01", "open", "T3")],
    (): [("2012-02-20", "returned", "T3"), ("2015-03-01", "open", "T3")],
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_loans_as_of_a_day_show_the_title_of_that_day(backend: str, tmp_path: Path) -> None:
    with fresh_store(backend, tmp_path) as url:
        setup_office(url)
        done = post(url, lines(), actor=ARCHIVIST)
        assert done.code == 0, done
        shown = run(url, "show", CODE, "--as-of", "2012-02-25T00:00:00Z", "--json")
        assert shown.json()["title"] == "T1", shown
        assert {as_of: titles(url, *as_of) for as_of in EXPECTED} == EXPECTED
        rebuilt = run(url, "projections", "rebuild")
        assert rebuilt.code == 0, rebuilt
        assert {as_of: titles(url, *as_of) for as_of in EXPECTED} == EXPECTED
        checked = run(url, "projections", "check")
        assert checked.code == 0, checked


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_catalog_built_before_the_former_titles_is_completed_by_a_rebuild(
    backend: str, tmp_path: Path
) -> None:
    """A store whose catalog was built before it kept former titles gets the table empty:
    the check names the rows it lacks, and a rebuild of the catalog replaces it."""
    with fresh_store(backend, tmp_path) as url:
        setup_office(url)
        assert post(url, lines(), actor=ARCHIVIST).code == 0
        assert run(url, "catalog").code == 0  # built
        drop = "DROP TABLE former_titles"
        if backend == "sqlite":
            with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db, db:
                db.execute(drop)
        else:
            with psycopg.connect(url, autocommit=True) as db:
                db.execute(drop)
        assert titles(url, "--as-of", "2012-02-25") == [("2012-02-20", "open", "T3")]
        checked = run(url, "projections", "check", "catalog")
        assert checked.code == 6, checked
        assert checked.stdout.startswith(
            "catalog: table former_titles: 2 rebuilt rows not live (record_id,version: "
        ), checked
        assert run(url, "projections", "rebuild", "catalog").code == 0
        assert {as_of: titles(url, *as_of) for as_of in EXPECTED} == EXPECTED
        assert run(url, "projections", "check").code == 0
