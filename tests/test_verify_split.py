"""`ledger verify` split across two processes (ledger.scan_split) reports exactly what the
one-process scan reports: forced on small SQLite stores (LEDGER_VERIFY_SPLIT_ABOVE=0), at
several split points, after each tampering of the tamper scenario and after random single
mutations, with room for every head in memory or for two (so that both processes evict),
on encrypted stores too. A second process that is killed or fails stops verify with one
line and exit 1."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger.scan
import ledger.scan_split
from aggregates.chain import GENESIS, canonical, digest, envelope
from ledger.application import Ledger
from ledger.config import store_from_url
from ledger.machine import cores
from ledger.scan import LogScan
from ledger.verify import Given, verify_log
from tests.cli import LEDGER, TIMEOUT, children, environment, one_line
from tests.tamper import RawStore, Scenario, copies, forged_received
from tests.test_tamper_property import mutate_one

KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # tests/test_encryption.py's key
SHARES = [0.1, 0.5, 0.8]  # where the split falls: before, in and after the sealed segment


def report(
    url: str, *, split: bool, share: float = 0.45, cap: int = 250_000, key: str | None = None
) -> list[dict[str, Any]]:
    """The reports (as data, timings left out) of a verify, then of a verify given the last
    seal's digest if there is one, in one or two processes."""
    splits: list[int] = []
    real = ledger.scan_split.scan_in_two

    def counted(scan: LogScan, head: int) -> None:
        splits.append(head)
        real(scan, head)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEDGER_VERIFY_SPLIT_ABOVE", "0" if split else str(1 << 40))
        patch.setattr(ledger.scan_split, "cores", lambda: 2)
        patch.setattr(ledger.scan_split, "SHARE", share)
        patch.setattr(ledger.scan_split, "scan_in_two", counted)
        patch.setattr(ledger.scan, "HEADS_CAP", cap)
        patch.setattr(ledger.scan, "DEFER_BATCH", 3 if cap < 10 else 2_000)
        ledger_ = Ledger(store_from_url(url, cipher_key=key))
        try:
            reports = [verify_log(ledger_)]
            seal = reports[0].last_seal
            if seal is not None:
                reports.append(verify_log(ledger_, given=Given(seal.position, seal.digest)))
        finally:
            ledger_.close()
    assert len(splits) == (len(reports) if split else 0)
    found = [found.as_dict(10**6) for found in reports]
    for data in found:
        del data["seconds"], data["events_per_second"]
    return found


def same_reports(url: str, key: str | None = None) -> dict[str, Any]:
    """The plain report, after checking that two processes give the same reports."""
    one = report(url, split=False, key=key)
    for share in SHARES:
        for cap in (250_000, 2):
            assert report(url, split=True, share=share, cap=cap, key=key) == one, (share, cap)
    return one[0]


@pytest.fixture(scope="module")
def golden(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Scenario, Callable[[], str]]]:
    with copies("sqlite", tmp_path_factory.mktemp("split")) as found:
        yield found


def _swap_positions(raw: RawStore, s: Scenario) -> None:
    second, third = raw.row(s.a, 2)[0], raw.row(s.a, 3)[0]
    where = f"WHERE {raw.position} = ?"
    raw.tamper(f"UPDATE {raw.table} SET {raw.position} = -1 {where}", (second,))
    raw.tamper(f"UPDATE {raw.table} SET {raw.position} = ? {where}", (second, third))
    raw.tamper(f"UPDATE {raw.table} SET {raw.position} = ? {where}", (third, -1))


def _swap_states(raw: RawStore, s: Scenario) -> None:
    second, third = raw.row(s.a, 2)[2], raw.row(s.a, 3)[2]
    raw.set_state(s.a, 2, third)
    raw.set_state(s.a, 3, second)


def _malformed_body(raw: RawStore, s: Scenario) -> None:
    state = raw.row(s.a, 6)[2]
    body = state[8:-75].replace(b'"A1-01-1-3"', b'"A1-01-1-\xff"')
    raw.set_state(s.a, 6, envelope(body, digest(body)))


def _forged_link(raw: RawStore, s: Scenario) -> None:
    fields = raw.body(s.a, 6)
    fields.update(originator_version=7, prev_hash=GENESIS, timestamp="2024-03-09T09:00:00+00:00")
    raw.insert(fields)


def _sql(statement: str) -> Callable[[RawStore, Scenario], None]:
    return lambda raw, _: raw.tamper(statement.format(table=raw.table))


TAMPERINGS: dict[str, Callable[[RawStore, Scenario], object]] = {
    "untouched": lambda raw, s: None,
    "changed payload": lambda raw, s: raw.set_state(
        s.a, 3, raw.row(s.a, 3)[2].replace(b"A1-01-1-1", b"A1-01-1-7")
    ),
    "deleted middle event": lambda raw, s: raw.delete(s.a, 3),
    "deleted sealed last event": lambda raw, s: raw.delete(s.b, 3),
    "deleted first event": lambda raw, s: raw.delete(s.a, 1),
    "forged link": _forged_link,
    "forged record at 0": lambda raw, s: raw.insert(forged_received(uuid4()), position=0),
    "swapped states": _swap_states,
    "swapped positions": _swap_positions,
    "rewritten sealed event": lambda raw, s: raw.rewrite(s.b, 3, location="B9-09-9-9"),
    "rewritten last link": lambda raw, s: raw.rewrite(s.a, 6, prev_hash="f" * 64),
    "malformed body, right hash": _malformed_body,
    "state as text": _sql("UPDATE {table} SET state = CAST(state AS TEXT) WHERE rowid = 9"),
    "state not UTF-8 text": _sql(
        "UPDATE {table} SET state = x'7b22626f6479223aff' || substr(state, 10) WHERE rowid = 12"
    ),
    "state a number": _sql("UPDATE {table} SET state = 1.5 WHERE rowid = 17"),
    "no state": _sql("UPDATE {table} SET state = NULL WHERE rowid = 9"),
    "text version": _sql("UPDATE {table} SET originator_version = 'three' WHERE rowid = 9"),
    "no topic": _sql("UPDATE {table} SET topic = NULL WHERE rowid = 16"),
    "odd columns in a sealed segment that differs": lambda raw, s: (
        raw.rewrite(s.b, 3, location="B9-09-9-9"),
        _sql("UPDATE {table} SET originator_version = x'33' WHERE rowid = 9")(raw, s),
        _sql("UPDATE {table} SET originator_id = NULL, topic = 2.5 WHERE rowid = 12")(raw, s),
    ),
    "two states as text": _sql(
        "UPDATE {table} SET state = CAST(state AS TEXT) WHERE rowid IN (3, 18)"
    ),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_two_processes_report_what_one_reports(
    golden: tuple[Scenario, Callable[[], str]], name: str
) -> None:
    scenario, make = golden
    url = make()
    TAMPERINGS[name](RawStore(url), scenario)
    one = same_reports(url)
    assert one["intact"] == (name == "untouched")


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """A store sealed at its end, one copy for every example (each mutation is undone)."""
    with copies("sqlite", tmp_path_factory.mktemp("split_p"), seal_at_end=True) as (_, make):
        url = make()
        yield url, RawStore(url).snapshot()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_single_mutation_gives_the_same_report(
    sealed: tuple[str, list[tuple[Any, ...]]], data: st.DataObject
) -> None:
    url, original = sealed
    raw = RawStore(url)
    mutate_one(raw, original, data)
    share = data.draw(st.sampled_from(SHARES), label="share")
    cap = data.draw(st.sampled_from([250_000, 2]), label="cap")
    try:
        one = report(url, split=False)
        assert not one[0]["intact"]
        assert report(url, split=True, share=share, cap=cap) == one
    finally:
        raw.restore(original)


def test_an_encrypted_store_gives_the_same_report(tmp_path: Path) -> None:
    with copies("sqlite", tmp_path, KEY) as (scenario, make):
        url = make()
        assert same_reports(url, KEY)["intact"]
        raw = RawStore(url)
        raw.delete(scenario.a, 5)
        state = bytearray(raw.row(scenario.b, 2)[2])
        state[40] ^= 1
        raw.set_state(scenario.b, 2, bytes(state))
        _swap_positions(raw, scenario)
        assert len(same_reports(url, KEY)["problems"]) > 3
        without_key = same_reports(url)
        assert without_key["unreadable"] == without_key["events"] > 0


# -- a second process that does not answer ------------------------------------------------


@pytest.fixture(scope="module")
def long_log(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The scenario and 100,000 more records of one event each (intact): the second
    process lives long enough to be killed."""
    with copies("sqlite", tmp_path_factory.mktemp("long")) as (_, make):
        url = make()
    rows = []
    for number in range(100_000):
        originator = UUID(int=number + 1)
        body = canonical(forged_received(originator))
        rows.append((originator.hex, 1, "ledger/Record/Received", envelope(body, digest(body))))
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", rows)
    return url


@pytest.mark.skipif(cores() < 2, reason="the split needs two cores")
def test_a_killed_second_process_stops_verify_with_one_line(long_log: str) -> None:
    env = {**environment(long_log), "LEDGER_VERIFY_SPLIT_ABOVE": "0"}
    process = subprocess.Popen(
        [LEDGER, "verify"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    killed, deadline = False, time.monotonic() + TIMEOUT
    while process.poll() is None and not killed and time.monotonic() < deadline:
        child = next(iter(children(process.pid)), 0)
        if child:
            os.kill(child, signal.SIGKILL)
            killed = True
        time.sleep(0.001)
    out, err = process.communicate(timeout=TIMEOUT)
    assert killed, "verify finished before its second process could be killed"
    assert process.returncode == 1, (out, err)
    middle = int(100_019 * ledger.scan_split.SHARE)
    assert one_line(err) == (
        f"error: verify's second process (positions {middle + 1} to 100019) stopped before it "
        "answered (signal 9); nothing was concluded: run verify again"
    )


def test_a_failing_second_process_stops_verify_with_its_error(
    golden: tuple[Scenario, Callable[[], str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Failing(LogScan):
        def resolve(self) -> None:
            raise RuntimeError("disk on fire")

    monkeypatch.setattr(ledger.scan_split, "LogScan", Failing)
    with pytest.raises(ledger.scan_split.ScanStopped) as stopped:
        report(golden[1](), split=True)
    assert stopped.value.line() == (
        "error: verify failed in its second process: RuntimeError: disk on fire"
    )


def test_the_threshold_is_a_number(
    golden: tuple[Scenario, Callable[[], str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_VERIFY_SPLIT_ABOVE", "many")
    ledger_ = Ledger(store_from_url(golden[1]()))
    try:
        with pytest.raises(ledger.scan_split.InvalidInput):
            verify_log(ledger_)
    finally:
        ledger_.close()
