"""`ledger verify` split across two processes (ledger.scan_split) reports exactly what the
one-process scan reports: forced on small stores (LEDGER_VERIFY_SPLIT_ABOVE=0), SQLite and
PostgreSQL, at several split points, after each tampering of the tamper scenario that the
backend's column types allow and after random single mutations, with room for every head in
memory or for two (so that both processes evict), on encrypted stores too. A second process
that is killed, fails or cannot connect stops verify with one line and exit 1."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger.scan
import ledger.scan_split
from aggregates.chain import GENESIS, canonical, digest, envelope
from ledger.application import Ledger
from ledger.config import store_from_url
from ledger.diagnosis import REGISTERED
from ledger.integrity import open_table
from ledger.machine import cores
from ledger.scan import LogScan
from ledger.verify import Given, Report, check_table, verify_log
from tests.cli import BACKENDS, LEDGER, TIMEOUT, children, environment, one_line
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
def goldens(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], tuple[Scenario, Callable[[], str]]]]:
    """The tamper scenario of a backend, written once per module when first wanted."""
    with ExitStack() as stack:
        made: dict[str, tuple[Scenario, Callable[[], str]]] = {}

        def golden(backend: str) -> tuple[Scenario, Callable[[], str]]:
            if backend not in made:
                folder = tmp_path_factory.mktemp(backend)
                made[backend] = stack.enter_context(copies(backend, folder))
            return made[backend]

        yield golden


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
    return lambda raw, _: raw.tamper(statement.format(table=raw.table, position=raw.position))


def _actor(raw: RawStore, actor_id: str) -> UUID:
    """The originator of an actor, from its registration."""
    rows = raw.query(f"SELECT originator_id, state FROM {raw.table} WHERE topic = ?", (REGISTERED,))
    for originator, state in rows:
        if orjson.loads(bytes(state))["body"]["actor_id"] == actor_id:
            return UUID(str(originator))
    raise LookupError(actor_id)


def _bound_to_another_role(raw: RawStore, s: Scenario) -> None:
    """The archivist's registration rewritten (a right hash) to bind it to a role it never
    acted from: every record it acted on is wrong from there (PostgreSQL rows name a role)."""
    raw.rewrite(_actor(raw, "arch"), 1, db_role="intruder")


def _written_by_another_role(raw: RawStore, s: Scenario) -> None:
    """The archivist bound to the role it acts from, and its last event's row then said
    to be written from another (late in the log: in the second process's part)."""
    ((role,),) = raw.query(f"SELECT db_role FROM {raw.table} LIMIT 1")
    raw.rewrite(_actor(raw, "arch"), 1, db_role=role)
    raw.tamper(
        f"UPDATE {raw.table} SET db_role = 'intruder' "
        "WHERE originator_id = ? AND originator_version = 6",
        (raw.key(s.a),),
    )


def _unbound_written_by_another_role(raw: RawStore, s: Scenario) -> None:
    """An event of the archivist, bound to no role, said to be written from a role that
    does not own the tables (late in the log: in the second process's part)."""
    raw.tamper(
        f"UPDATE {raw.table} SET db_role = 'intruder' "
        "WHERE originator_id = ? AND originator_version = 6",
        (raw.key(s.a),),
    )


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
    "no state": _sql("UPDATE {table} SET state = NULL WHERE {position} = 9"),
    "text version": _sql("UPDATE {table} SET originator_version = 'three' WHERE rowid = 9"),
    "no topic": _sql("UPDATE {table} SET topic = NULL WHERE {position} = 16"),
    "odd columns in a sealed segment that differs": lambda raw, s: (
        raw.rewrite(s.b, 3, location="B9-09-9-9"),
        _sql("UPDATE {table} SET originator_version = x'33' WHERE rowid = 9")(raw, s),
        _sql("UPDATE {table} SET originator_id = NULL, topic = 2.5 WHERE rowid = 12")(raw, s),
    ),
    "two states as text": _sql(
        "UPDATE {table} SET state = CAST(state AS TEXT) WHERE rowid IN (3, 18)"
    ),
    "bound to another role": _bound_to_another_role,
    "written by another role": _written_by_another_role,
    "unbound, written by another role": _unbound_written_by_another_role,
}
# Values PostgreSQL's column types refuse, and roles that SQLite rows do not name.
SQLITE_ONLY = {
    "state as text",
    "state not UTF-8 text",
    "state a number",
    "text version",
    "odd columns in a sealed segment that differs",
    "two states as text",
}
POSTGRES_ONLY = {
    "bound to another role",
    "written by another role",
    "unbound, written by another role",
}
CASES = [
    pytest.param("sqlite", name, id=f"sqlite-{name}")
    for name in TAMPERINGS
    if name not in POSTGRES_ONLY
] + [
    pytest.param("postgres", name, id=f"postgres-{name}", marks=pytest.mark.postgres)
    for name in TAMPERINGS
    if name not in SQLITE_ONLY
]


@pytest.mark.parametrize(("backend", "name"), CASES)
def test_two_processes_report_what_one_reports(
    goldens: Callable[[str], tuple[Scenario, Callable[[], str]]], backend: str, name: str
) -> None:
    scenario, make = goldens(backend)
    url = make()
    TAMPERINGS[name](RawStore(url), scenario)
    one = same_reports(url)
    assert one["intact"] == (name == "untouched")


@pytest.fixture(scope="module", params=BACKENDS)
def sealed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """A store sealed at its end, one copy for every example (each mutation is undone)."""
    folder = tmp_path_factory.mktemp("split_p")
    with copies(request.param, folder, seal_at_end=True) as (_, make):
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


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_encrypted_store_gives_the_same_report(tmp_path: Path, backend: str) -> None:
    with copies(backend, tmp_path, KEY) as (scenario, make):
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


@pytest.fixture(scope="module", params=BACKENDS)
def long_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The scenario and 100,000 more records of one event each (intact): the second
    process lives long enough to be killed."""
    rows = []
    for number in range(100_000):
        originator = UUID(int=number + 1)
        body = canonical(forged_received(originator))
        rows.append((originator, 1, "ledger/Record/Received", envelope(body, digest(body))))
    with copies(request.param, tmp_path_factory.mktemp("long")) as (_, make):
        url = make()
        if request.param == "sqlite":
            with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
                conn.executemany(
                    "INSERT INTO stored_events VALUES (?, ?, ?, ?)",
                    [(originator.hex, *rest) for originator, *rest in rows],
                )
        else:
            copy_in = "COPY ledger_events (originator_id, originator_version, topic, state) "
            with psycopg.connect(url) as pg, pg.cursor().copy(copy_in + "FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        yield url


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
    raw = RawStore(long_log)
    ((head,),) = raw.query(f"SELECT max({raw.position}) FROM {raw.table}")
    middle = int(head * ledger.scan_split.SHARE)
    assert one_line(err) == (
        f"error: verify's second process (positions {middle + 1} to {head}) stopped before it "
        "answered (signal 9); nothing was concluded: run verify again"
    )


@pytest.mark.skipif(cores() < 2, reason="the split needs two cores")
def test_a_killed_verify_takes_its_second_process_with_it(long_log: str) -> None:
    """The child is held (SIGSTOP) once it is scanning, then verify is killed: the kernel
    kills the child too. (It read on, alone, until its next handover found the pipe
    closed; held, it stayed for good.)"""
    env = {**environment(long_log), "LEDGER_VERIFY_SPLIT_ABOVE": "0"}
    quiet = subprocess.DEVNULL  # a pipe would stay open in a child that outlived verify
    process = subprocess.Popen([LEDGER, "verify"], env=env, stdout=quiet, stderr=quiet)
    child, deadline = 0, time.monotonic() + TIMEOUT
    try:
        while not (child and cpu_ticks(child)):  # scanning: past its first statements
            assert process.poll() is None, "verify finished before its child was seen"
            assert time.monotonic() < deadline, "verify's second process never started"
            child = next(iter(children(process.pid)), 0)
            time.sleep(0.001)
        os.kill(child, signal.SIGSTOP)
        assert state(child) in "TRS", "the child ended before it was held"
        process.kill()
        process.wait(timeout=TIMEOUT)
        deadline = time.monotonic() + 5
        while state(child) not in ("", "Z") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert state(child) in ("", "Z"), "verify's second process outlived it"
    finally:
        if child and state(child) not in ("", "Z"):
            os.kill(child, signal.SIGKILL)


def cpu_ticks(pid: int) -> int:
    """The CPU time a process has used, in clock ticks (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime, stime


def state(pid: int) -> str:
    """A process's state letter (R, S, T, Z, ...), or '' once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


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


@pytest.mark.postgres
def test_a_second_process_that_cannot_connect_stops_verify_with_one_line(
    goldens: Callable[[str], tuple[Scenario, Callable[[], str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the second process opens connections of its own: here to a port where
    no server listens any more (this process is connected already)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("LEDGER_VERIFY_SPLIT_ABOVE", "0")
    monkeypatch.setattr(ledger.scan_split, "cores", lambda: 2)
    ledger_ = Ledger(store_from_url(goldens("postgres")[1]()))
    try:
        with open_table(ledger_) as table, pytest.raises(ledger.scan_split.ScanStopped) as stopped:
            assert table.lookups  # type: ignore[attr-defined]  # this process's, connected
            table.conninfo = {**table.conninfo, "port": port}  # type: ignore[attr-defined]
            check_table(table, Report(head=table.head()))
    finally:
        ledger_.close()
    line = one_line(stopped.value.line())
    assert line.startswith(
        "error: verify's second process could not connect to the database (connection failed: "
    ), line
    assert line.endswith("Connection refused); nothing was concluded: run verify again"), line


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
