"""Tampering with the stored events by raw SQL (guards off), on SQLite and PostgreSQL:
`ledger verify`, the real process, exits 6 and names the record and the version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from aggregates.chain import GENESIS, link
from tests.cli import BACKENDS, Result, fresh_store, one_line, run
from tests.tamper import CODE_A, CODE_B, RawStore, Scenario, forged_received


@pytest.fixture
def scenario(golden: tuple[Scenario, Callable[[], str]]) -> Scenario:
    return golden[0]


@pytest.fixture
def url(golden: tuple[Scenario, Callable[[], str]]) -> str:
    return golden[1]()


def problems(url: str, *args: str) -> list[str]:
    """The problem lines of a failed `ledger verify` (exit 6)."""
    done = run(url, "verify", *args)
    assert done.code == 6, done
    assert one_line(done.stderr).startswith("error: verification failed: "), done
    return done.stdout.split("\nchecked ")[0].splitlines()


def intact(url: str, *args: str) -> Result:
    done = run(url, "verify", *args)
    assert done.code == 0, done
    assert done.stdout.splitlines()[-1] == "intact", done
    return done


def test_the_untouched_store_is_intact(url: str, scenario: Scenario) -> None:
    done = intact(url, "--digest", scenario.seal_digest, "--position", str(scenario.seal_position))
    lines = done.stdout.splitlines()
    assert lines[0].startswith("checked 19 events up to position 19 in ")
    assert lines[0].endswith(" events/s)")
    assert "encryption: off" in lines
    assert f"given digest at position {scenario.seal_position}: matches" in lines
    assert (
        f"events after the last seal at position {scenario.seal_position} are covered by the "
        "chain only" in lines
    )


def test_a_changed_byte_of_a_payload(url: str, scenario: Scenario) -> None:
    raw = RawStore(url)
    state = raw.row(scenario.a, 3)[2]
    assert b"A1-01-1-1" in state
    raw.set_state(scenario.a, 3, state.replace(b"A1-01-1-1", b"A1-01-1-7"))
    assert problems(url) == [
        f"record {scenario.a} (code {CODE_A}) version 3: payload changed (hash mismatch)"
    ]


def test_a_deleted_middle_event(url: str, scenario: Scenario) -> None:
    RawStore(url).delete(scenario.a, 3)
    found = problems(url)
    assert found[0] == (
        f"record {scenario.a} (code {CODE_A}) version 3: missing (deleted event; "
        "versions jump 2 -> 4)"
    )
    assert found[1].startswith(f"log: digest at position {scenario.seal_position} differs from ")
    assert len(found) == 2


def test_the_deleted_last_event_of_a_sealed_record(url: str, scenario: Scenario) -> None:
    position = RawStore(url).delete(scenario.b, 3)
    assert problems(url) == [
        f"log: digest at position {scenario.seal_position} differs from seal 1 (an event at a "
        f"position up to {scenario.seal_position} was changed, inserted, deleted or reordered; "
        f"it holds {scenario.seal_position - 1} events, the seal counted {scenario.seal_position})",
        f"record {scenario.b} (code {CODE_B}) version 3: missing since seal 1 (deleted; it was "
        f"at position {position})",
    ]


def test_a_truncated_tail_against_the_written_down_digest(url: str, scenario: Scenario) -> None:
    raw = RawStore(url)
    raw.tamper(f"DELETE FROM {raw.table} WHERE {raw.position} >= ?", (scenario.seal_position,))
    # With the seal itself gone, the log left behind is consistent: only the digest that was
    # written down shows that it lost its tail.
    intact(url)
    given = ["--digest", scenario.seal_digest, "--position", str(scenario.seal_position)]
    assert problems(url, *given) == [
        f"log: head position {scenario.seal_position - 1} is before the given position "
        f"{scenario.seal_position} (truncated tail)"
    ]


def test_a_forged_event_that_breaks_the_chain(url: str, scenario: Scenario) -> None:
    raw = RawStore(url)
    fields = raw.body(scenario.a, 6)
    fields.update(originator_version=7, prev_hash=GENESIS, timestamp="2024-03-09T09:00:00+00:00")
    raw.insert(fields)
    assert problems(url) == [
        f"record {scenario.a} (code {CODE_A}) version 7: does not link to version 6 "
        "(previous-hash mismatch: version 6 was changed or replaced, or this event was forged)"
    ]


def test_a_well_forged_record_inserted_before_the_seal(url: str, scenario: Scenario) -> None:
    forged = uuid4()
    RawStore(url).insert(forged_received(forged), position=0)
    found = problems(url)
    assert found[-1] == (
        f"record {forged} version 1: not covered by seal 1: inserted at position 0 (forged, "
        "or moved from elsewhere)"
    )
    assert found[0].startswith(f"log: digest at position {scenario.seal_position} differs")


def test_two_swapped_versions(url: str, scenario: Scenario) -> None:
    raw = RawStore(url)
    second, third = raw.row(scenario.a, 2)[2], raw.row(scenario.a, 3)[2]
    raw.set_state(scenario.a, 2, third)
    raw.set_state(scenario.a, 3, second)
    record = f"record {scenario.a} (code {CODE_A})"
    found = problems(url)
    assert found[:2] == [
        f"{record} version 2: stored as version 2 of ledger/Record/Arranged, but its body is "
        "version 3 of ledger/Record/Shelved (swapped or moved)",
        f"{record} version 3: stored as version 3 of ledger/Record/Shelved, but its body is "
        "version 2 of ledger/Record/Arranged (swapped or moved)",
    ]


def test_two_events_swapped_in_the_log(url: str, scenario: Scenario) -> None:
    raw = RawStore(url)
    second, third = raw.row(scenario.a, 2)[0], raw.row(scenario.a, 3)[0]
    where = f"WHERE {raw.position} = ?"
    raw.tamper(f"UPDATE {raw.table} SET {raw.position} = -1 {where}", (second,))
    raw.tamper(f"UPDATE {raw.table} SET {raw.position} = ? {where}", (second, third))
    raw.tamper(f"UPDATE {raw.table} SET {raw.position} = ? {where}", (third, -1))
    found = problems(url)
    record = f"record {scenario.a} (code {CODE_A})"
    assert (
        f"{record} version 3: recorded at position {second}, before version 2 at position "
        f"{third} (reordered or inserted)" in found
    )
    assert (
        f"{record} version 2: moved from position {second} to {third} since seal 1 (reordered)"
        in found
    )


def test_sealed_events_rewritten_with_valid_hashes(url: str, scenario: Scenario) -> None:
    raw = RawStore(url)
    old = raw.row(scenario.b, 3)[2][-66:-2].decode()
    new = raw.rewrite(scenario.b, 3, location="B9-09-9-9")
    found = problems(url)
    assert found[-1] == (
        f"record {scenario.b} (code {CODE_B}) version 3: changed since seal 1: its hash was "
        f"{old[:16]}…, is now {new[:16]}… (rewritten)"
    )


def test_rewritten_seals_are_caught_by_the_written_down_digest(
    url: str, scenario: Scenario
) -> None:
    """An intruder who rewrites an event and then re-seals the log consistently fools the
    stored seals; the digest written down at sealing time does not change."""
    raw = RawStore(url)
    raw.rewrite(scenario.b, 3, location="B9-09-9-9")
    digest = GENESIS
    for (state,) in raw.query(
        f"SELECT state FROM {raw.table} WHERE {raw.position} <= ? ORDER BY {raw.position}",
        (scenario.seal_position,),
    ):
        digest = link(digest, bytes(state)[-66:-2].decode())
    seal_id = UUID(raw.body(scenario.b, 3)["originator_id"])  # any id; replaced below
    seal_id = next(
        UUID(str(o))
        for (o,) in raw.query(
            f"SELECT originator_id FROM {raw.table} WHERE topic = ?", ("ledger/Seal/Sealed",)
        )
    )
    raw.rewrite(seal_id, 2, digest=digest)
    intact(url)  # the stored seal now agrees with the rewritten log
    given = ["--digest", scenario.seal_digest, "--position", str(scenario.seal_position)]
    assert problems(url, *given) == [
        f"log: digest at position {scenario.seal_position} differs from the given digest (an "
        "event up to that position was changed, inserted, deleted or reordered); seal 1 stored "
        f"for that position records {digest[:16]}…: the stored seals were rewritten too"
    ]


def test_one_record_is_checked_by_id_or_code(url: str, scenario: Scenario) -> None:
    RawStore(url).delete(scenario.a, 3)
    assert problems(url, "--record", CODE_A)[0] == (
        f"record {scenario.a} (code {CODE_A}) version 3: missing (deleted event; versions "
        "jump 2 -> 4)"
    )
    done = run(url, "verify", "--record", str(scenario.c))
    assert done.code == 6, done  # the log's digest at seal 1 differs, whoever it concerns
    assert not any(str(scenario.c) in line for line in done.stdout.splitlines())
    for unknown in ("Z999-NO-SUCH-CODE", str(uuid4())):
        missing = run(url, "verify", "--record", unknown)
        assert missing.code == 4, missing


def test_problems_as_json(url: str, scenario: Scenario) -> None:
    RawStore(url).delete(scenario.a, 3)
    done = run(url, "verify", "--json")
    assert done.code == 6, done
    report = done.json()
    assert report["intact"] is False
    assert report["problems"][0] == {
        "subject": f"record {scenario.a} (code {CODE_A})",
        "originator": str(scenario.a),
        "version": 3,
        "problem": "missing (deleted event; versions jump 2 -> 4)",
        "line": f"record {scenario.a} (code {CODE_A}) version 3: missing (deleted event; "
        "versions jump 2 -> 4)",
    }
    assert report["last_seal"]["position"] == scenario.seal_position
    assert report["chain_only_after"] == scenario.seal_position


def test_a_store_path_that_is_not_a_ledger(tmp_path: Path) -> None:
    done = run(f"sqlite:///{tmp_path}/none.db", "verify")
    assert done.code == 4, done


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_count_of_one_is_singular(backend: str, tmp_path: Path) -> None:
    """`ledger verify` said "checked 1 events", and "it holds 1 events" of a sealed
    segment left with one. --json keeps its numbers."""
    with fresh_store(backend, tmp_path) as url:
        assert run(url, "init", "--director", "d", "--name", "王").code == 0
        done = intact(url)
        assert done.stdout.startswith("checked 1 event up to position "), done
        assert run(url, "verify", "--json").json()["events"] == 1
        added = run(url, "actor", "add", "a", "--name", "李", "--role", "archivist",
                    "--clearance", "internal", actor="d")  # fmt: skip
        assert added.code == 0, added
        assert run(url, "seal", actor="d").code == 0  # seal 1 counts the 2 events
        raw = RawStore(url)
        second = f"SELECT min({raw.position}) FROM {raw.table} WHERE {raw.position} > "
        second += f"(SELECT min({raw.position}) FROM {raw.table})"
        raw.tamper(f"DELETE FROM {raw.table} WHERE {raw.position} = ({second})")
        assert "it holds 1 event, the seal counted 2)" in problems(url)[0]
