"""Rebuilds and checks while catch-ups move the live projections on: a rebuild's swap
never takes them back, and a check compares at one position, whatever commits meanwhile.
The interleavings are driven in this process (a rebuild's progress calls, a check's hook),
on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ledger.application import Ledger, open_ledger
from projections.log import EventLog
from projections.rebuild import check, rebuild
from projections.runner import catch_up, open_view
from projections.status import status_rows
from tests.test_projections_history import (
    LIFE,
    LIFE_ID,
    OTHERS,
    new_office,
    numbered,
    post_in_process,
    receive,
)


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    ledger = open_ledger(db_url, must_exist=False)
    new_office(ledger)
    post_in_process(ledger, numbered(LIFE, "life") + numbered(OTHERS, "others"))
    catch_up(ledger)
    yield ledger
    ledger.close()


class Mover:
    """Posts a new record and catches the live projections up past it, ``times`` times."""

    def __init__(self, ledger: Ledger, times: int) -> None:
        self.ledger = ledger
        self.left = times
        self.records: list[str] = []

    def __call__(self, *_: Any) -> None:
        if self.left == 0:
            return
        self.left -= 1
        record = f"99999999-9999-4999-8999-{len(self.records):012d}"
        line = receive(record, "2022-01-05T09:00:00+08:00", title="新", year=2021, secrecy="public")
        assert post_in_process(self.ledger, numbered([line], record)).posted == 1
        assert catch_up(self.ledger).events > 0
        self.records.append(record)


def positions(ledger: Ledger) -> set[int]:
    return {row["position"] for row in status_rows(ledger)}


def catalog_ids(ledger: Ledger) -> set[str]:
    return {row["id"] for row in open_view(ledger, "catalog").select("SELECT id FROM catalog")}


def test_a_rebuild_never_takes_the_live_projections_back(ledger: Ledger) -> None:
    """The build reads up to the head as it was when it started; a reader then catches
    the live projections up past it (at the build's progress call), and again while the
    rebuild catches its tables up before the swap (its next one). The swap brings the new
    tables up to the live position: they are where the live ones were, not before."""
    move = Mover(ledger, 2)
    stats = rebuild(ledger, progress=move)
    head = EventLog(ledger).head()
    assert positions(ledger) == {head}
    assert set(move.records) <= catalog_ids(ledger)
    assert move.left == 0 and stats.events == head
    assert check(ledger)[0] == []


def test_a_check_compares_one_position_while_catch_ups_commit(ledger: Ledger) -> None:
    """A catch-up commits after the check's tables first caught up with the live ones
    (they chase it: SQLite in a second attempt, PostgreSQL inside its snapshot) and then
    in the middle of the comparison: the check finds the one changed row and nothing else
    (it exited 5, "kept moving", when the live tables moved in each of its attempts)."""
    with open_view(ledger, "catalog").transaction() as curs:
        curs.execute(f"UPDATE catalog SET title = 'x' WHERE id = '{LIFE_ID}'")
    move = Mover(ledger, 10)
    stages: list[str] = []

    def hook(stage: str) -> None:
        stages.append(stage)
        if stage == "compare" or stages.count("chased") == 1:
            move()

    differences, _ = check(ledger, hook=hook)
    chased = ["chased", "chased"] if ledger.store.backend == "sqlite" else ["chased"]
    assert stages == [*chased, "compare"] and len(move.records) == 2
    assert [(d.projection, d.table, d.side, d.count) for d in differences] == [
        ("catalog", "catalog", "live", 1),
        ("catalog", "catalog", "rebuilt", 1),
    ]
    assert differences[0].keys == [(LIFE_ID,)]
    assert positions(ledger) == {EventLog(ledger).head()}


def test_two_openers_of_a_projection_never_built_both_find_it_made(db_url: str) -> None:
    """A rebuild's swap, a query and `follow` each make the live tables of a projection
    never built. The library reads whether its tracking table exists, then makes it with
    a migration row: the later of two such openers collided on that row, and the rebuild
    exited 5 (an exploratory find). Here the other opener makes the tables just after the
    first one looked."""
    ledger = open_ledger(db_url, must_exist=False)
    try:
        new_office(ledger)
        first, other = open_view(ledger, "catalog"), open_view(ledger, "catalog")
        looked = first.max_tracking_id
        calls = []

        def look_then_lose_the_race(name: str) -> Any:
            calls.append(name)
            try:
                return looked(name)
            finally:
                other.create_table()

        first.max_tracking_id = look_then_lose_the_race  # type: ignore[method-assign]
        first.create_table()
        assert len(calls) >= 2  # it lost the race once, and made nothing twice
        assert first.position() is None and first.select("SELECT count(*) AS n FROM catalog")
    finally:
        ledger.close()
