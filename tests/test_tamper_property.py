"""Property: verify passes on the untouched store and fails after any single random mutation
of a stored row (a flipped bit, a changed column, a deleted, moved or copied row), on SQLite
and PostgreSQL.

The store is sealed at its end, so every event but the last seal itself is covered by a
seal; that last seal is the one row whose removal nothing can show (a seal cannot cover
itself), so it is never deleted or moved later in the log here. A move changes the row's
place in the log's order: renumbering rows in place changes nothing that was recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import open_ledger
from ledger.verify import verify_log
from tests.cli import BACKENDS
from tests.tamper import RawStore, Scenario, copies

MUTATIONS = ["flip", "version", "topic", "originator", "delete", "move", "copy"]


@pytest.fixture(scope="module", params=BACKENDS)
def golden(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Scenario, Callable[[], str]]]:
    with copies(request.param, tmp_path_factory.mktemp("property"), seal_at_end=True) as found:
        yield found


def intact(url: str) -> bool:
    ledger = open_ledger(url, check_key=False)  # as `ledger verify` opens it
    try:
        return verify_log(ledger).intact
    finally:
        ledger.close()


def test_the_untouched_store_verifies(golden: tuple[Scenario, Callable[[], str]]) -> None:
    assert intact(golden[1]())


@pytest.fixture(scope="module")
def store(golden: tuple[Scenario, Callable[[], str]]) -> tuple[str, list[tuple[Any, ...]]]:
    """One copy for every example: each mutation is undone after it is checked."""
    url = golden[1]()
    return url, RawStore(url).snapshot()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_single_mutation_of_a_row_is_found(
    store: tuple[str, list[tuple[Any, ...]]], data: st.DataObject
) -> None:
    url, original = store
    raw = RawStore(url)
    kind, row = mutate_one(raw, original, data)
    try:
        assert not intact(url), (kind, row[:4])
    finally:
        raw.restore(original)
    assert sorted(raw.snapshot()) == sorted(original)


def mutate_one(
    raw: RawStore, original: list[tuple[Any, ...]], data: st.DataObject
) -> tuple[str, tuple[Any, ...]]:
    """Apply one drawn mutation to one drawn row of ``original``; (kind, row)."""
    rows = [r[:5] for r in sorted(original)]
    kind = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    row = data.draw(st.sampled_from(rows if kind in ("flip", "version", "topic") else rows[:-1]))
    mutate(raw, kind, row, rows, rows[-1][0], data)
    return kind, row


def mutate(
    raw: RawStore,
    kind: str,
    row: tuple[Any, ...],
    rows: list[tuple[Any, ...]],
    last: int,
    data: st.DataObject,
) -> None:
    position, originator, version, topic, state = row
    where = f"WHERE {raw.position} = ?"
    if kind == "flip":
        changed = bytearray(bytes(state))
        at = data.draw(st.integers(0, len(changed) - 1), label="byte")
        changed[at] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        raw.tamper(f"UPDATE {raw.table} SET state = ? {where}", (bytes(changed), position))
    elif kind == "version":
        taken = {(r[1], r[2]) for r in rows}
        new = data.draw(
            st.integers(-3, 40).filter(lambda v: (originator, v) not in taken), label="version"
        )
        raw.tamper(f"UPDATE {raw.table} SET originator_version = ? {where}", (new, position))
    elif kind == "topic":
        new = data.draw(st.sampled_from(sorted({r[3] for r in rows} - {topic})), label="topic")
        raw.tamper(f"UPDATE {raw.table} SET topic = ? {where}", (new, position))
    elif kind == "originator":
        others = sorted(
            {str(r[1]) for r in rows if (r[1], version) not in {(x[1], x[2]) for x in rows}}
        )
        new = data.draw(st.sampled_from([*others, "fresh"]), label="originator")
        value = raw.key(uuid4()) if new == "fresh" else next(r[1] for r in rows if str(r[1]) == new)
        raw.tamper(f"UPDATE {raw.table} SET originator_id = ? {where}", (value, position))
    elif kind == "delete":
        raw.tamper(f"DELETE FROM {raw.table} {where}", (position,))
    elif kind == "move":  # to another place in the log's order (renumbering in place is
        # not a change: positions order the log, the digest covers the hashes in that order)
        index = [r[0] for r in rows].index(position)
        before = rows[index - 1][0] if index else None
        after = rows[index + 1][0]
        taken = {r[0] for r in rows}
        new = data.draw(
            st.integers(-5, last + 5).filter(
                lambda p: p not in taken and (p > after or (before is not None and p < before))
            ),
            label="to",
        )
        raw.tamper(f"UPDATE {raw.table} SET {raw.position} = ? {where}", (new, position))
    else:  # copy another row's stored bytes over this one
        source = data.draw(st.sampled_from([r for r in rows if r[0] != position]), label="from")
        raw.tamper(f"UPDATE {raw.table} SET state = ? {where}", (bytes(source[4]), position))


def test_with_little_memory_links_are_checked_by_lookup(
    golden: tuple[Scenario, Callable[[], str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keeping only two records' last hashes in memory, the older links are looked up by
    index: the untouched store still verifies, a broken link is still found."""
    import ledger.scan

    monkeypatch.setattr(ledger.scan, "HEADS_CAP", 2)
    monkeypatch.setattr(ledger.scan, "DEFER_BATCH", 3)
    scenario, make = golden
    assert intact(make())
    url = make()
    raw = RawStore(url)
    raw.rewrite(scenario.a, 6, prev_hash="f" * 64)
    ledger_ = open_ledger(url)
    try:
        report = verify_log(ledger_)
    finally:
        ledger_.close()
    assert [p.line() for p in report.problems if p.key == scenario.a.hex] == [
        f"record {scenario.a} (code Z001-WS·2020-D10-BGS-0001) version 6: does not link to "
        "version 5 (previous-hash mismatch: version 5 was changed or replaced, or this event "
        "was forged)"
    ]


ODD_VALUES = {
    "no state": "UPDATE {table} SET state = NULL WHERE {position} = 9",
    "no topic": "UPDATE {table} SET topic = NULL WHERE {position} = 9",
    "state as text": "UPDATE {table} SET state = CAST(state AS TEXT) WHERE {position} = 9",
    "text version": "UPDATE {table} SET originator_version = 'three' WHERE {position} = 9",
    "non-UTF-8 text": "UPDATE {table} SET state = x'7b22626f6479223aff' || substr(state, 10) "
    "WHERE {position} = 9",
}


@pytest.mark.parametrize("name", list(ODD_VALUES))
def test_odd_stored_values_are_problems_not_crashes(
    golden: tuple[Scenario, Callable[[], str]], name: str
) -> None:
    url = golden[1]()
    raw = RawStore(url)
    if not raw.sqlite and name in ("state as text", "text version", "non-UTF-8 text"):
        pytest.skip("PostgreSQL's column types refuse such values")
    raw.tamper(ODD_VALUES[name].format(table=raw.table, position=raw.position))
    ledger_ = open_ledger(url)
    try:
        report = verify_log(ledger_)
    finally:
        ledger_.close()
    assert report.problems
    assert report.problems[0].key == golden[0].a.hex  # position 9 is record A's version 3
