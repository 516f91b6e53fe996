"""Tampering with the columns that name a stored event (version, originator, topic) by
writing values of another type, which SQLite keeps (text, a real, a blob, NULL) and the ledger
never writes: `ledger verify`, the real process, names the row and the value and exits 6,
also when a sealed segment differs and its events are named from the seal's sketch, and
`ledger seal` refuses such a log; never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import pytest

from tests.cli import Result, one_line, run
from tests.tamper import CODE_A, RawStore, Scenario

# (column, value as SQL writes it, whether PostgreSQL's column types accept it)
ODD = [
    ("originator_version", "'x'", False),
    ("originator_version", "'3x'", False),
    ("originator_version", "2.5", False),
    ("originator_version", "x'33'", False),
    ("originator_version", "NULL", False),
    ("topic", "x'33'", False),
    ("topic", "NULL", True),
    ("originator_id", "x'33'", False),
    ("originator_id", "NULL", False),
]


def failed(done: Result) -> list[str]:
    """The problem lines of a verify that found tampering (exit 6, one error line)."""
    assert "Traceback" not in done.stdout + done.stderr, done
    assert done.code == 6, done
    assert one_line(done.stderr).startswith("error: verification failed: "), done
    return done.stdout.split("\nchecked ")[0].splitlines()


def expected(column: str, value: str, a: UUID, position: int) -> str:
    """The line naming record A's version 3 (stored at ``position``) with ``value``."""
    if column == "originator_version":
        return (
            f"record {a} (code {CODE_A}) version 3: stored at position {position} with version "
            f"{value}, which is not a whole number (the row was rewritten)"
        )
    if column == "topic":
        return (
            f"record {a} (code {CODE_A}) version 3: stored as {value}, but its body is "
            "ledger/Record/Shelved (swapped or moved)"
        )
    return f"record {value} version 3: stored under this id, but its body belongs to {a}"


@pytest.mark.parametrize(("column", "value", "on_pg"), ODD, ids=[f"{c}={v}" for c, v, _ in ODD])
def test_an_odd_column_in_a_sealed_segment_that_differs(
    golden: tuple[Scenario, Callable[[], str]], column: str, value: str, on_pg: bool
) -> None:
    """The seal's segment also differs (record B's version 3 rewritten with a right hash), so
    its events are named from the sketch, which the odd row must not crash."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    if not raw.sqlite and not on_pg:
        pytest.skip("PostgreSQL's column types refuse such values")
    raw.rewrite(scenario.b, 3, location="B9-09-9-9")
    position = raw.row(scenario.a, 3)[0]
    raw.tamper(f"UPDATE {raw.table} SET {column} = {value} WHERE {raw.position} = {position}")
    found = failed(run(url, "verify"))
    assert expected(column, value, scenario.a, position) in found
    assert any(
        line.startswith(f"log: digest at position {scenario.seal_position} differs from seal 1")
        for line in found
    ), found
    assert any("version 3: changed since seal 1: its hash was" in line for line in found), found
    as_json = run(url, "verify", "--json")
    failed(Result(as_json.code, "", as_json.stderr))
    assert expected(column, value, scenario.a, position) in [
        p["line"] for p in as_json.json()["problems"]
    ]


def test_an_event_moved_to_no_originator_after_the_seal(
    golden: tuple[Scenario, Callable[[], str]],
) -> None:
    """Record C's only event (after the seal, so covered by the chain only) with its
    originator set to NULL: it is found (it used to pass as intact)."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    if not raw.sqlite:
        pytest.skip("PostgreSQL's primary key refuses NULL")
    position = raw.row(scenario.c, 1)[0]
    raw.tamper(f"UPDATE {raw.table} SET originator_id = NULL WHERE {raw.position} = {position}")
    assert failed(run(url, "verify")) == [
        f"record NULL version 1: stored under this id, but its body belongs to {scenario.c}"
    ]


@pytest.mark.parametrize("column", ["originator_version", "topic", "originator_id"])
def test_seal_refuses_a_log_with_an_odd_column(
    golden: tuple[Scenario, Callable[[], str]], column: str
) -> None:
    """A row after the last seal that no sketch can hold: nothing is sealed (exit 6)."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    if not raw.sqlite and column != "topic":
        pytest.skip("PostgreSQL's column types refuse such values")
    position = raw.row(scenario.c, 1)[0]
    raw.tamper(f"UPDATE {raw.table} SET {column} = NULL WHERE {raw.position} = {position}")
    done = run(url, "seal", actor="audit")
    assert "Traceback" not in done.stdout + done.stderr, done
    assert done.code == 6, done
    assert one_line(done.stderr) == (
        f"error: the event at position {position} has a version, originator or topic the "
        "ledger never writes; run `ledger verify`; nothing was sealed"
    )
    assert failed(run(url, "verify"))
