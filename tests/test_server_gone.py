"""The PostgreSQL server ends a command's connection mid-way (pg_terminate_backend, as an
administrator or a failover would): `verify` and `seal` say `error: database unavailable:
...` in one line, exit 1, as every other command does, not `error: unexpected ...` (the
form kept for bugs). Real processes and a real server: a relay in the test passes the
command's connections through and holds the one that asks for a statement, so that its
backend is ended at that very point."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from projections.rebuild import LOCK_KEY
from tests.cli import TIMEOUT, fresh_store, generate, one_line, run, start
from tests.pg import require_pg

pytestmark = pytest.mark.postgres
WAIT = 10_000  # ms pg_terminate_backend waits for the backend to be gone


class Relay:
    """A TCP relay to the server. The first client message holding ``marker`` is held
    (``seen`` is set) until ``release()``; ``backend_port`` is then the local port of that
    connection's socket to the server, as pg_stat_activity's client_port shows it."""

    def __init__(self, upstream: tuple[str, int], marker: bytes) -> None:
        self.upstream, self.marker = upstream, marker
        self.seen, self.released = threading.Event(), threading.Event()
        self.backend_port = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, asking: bool) -> None:
        try:
            while data := source.recv(65536):
                if asking and self.marker in data and not self.seen.is_set():
                    self.backend_port = target.getsockname()[1]
                    self.seen.set()
                    self.released.wait(TIMEOUT)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.released.set()
        self.listener.close()


@contextmanager
def relayed(url: str, marker: bytes) -> Iterator[tuple[str, Relay]]:
    """``url`` through a relay that holds the first message holding ``marker``."""
    parts = urlsplit(url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432), marker)
    try:
        yield parts._replace(netloc=f"{parts.username}@127.0.0.1:{relay.port}").geturl(), relay
    finally:
        relay.close()


def terminate(relay: Relay) -> None:
    """End the held connection's backend, as an administrator does, then let it go on."""
    assert relay.seen.wait(TIMEOUT), "the command never asked for the statement"
    with psycopg.connect(require_pg(), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity WHERE client_port = %s",
            (WAIT, relay.backend_port),
        ).fetchall()
    assert rows == [(True,)]
    relay.release()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    """A PostgreSQL ledger with a few hundred records posted."""
    generated = generate(tmp_path / "lines.jsonl", 50)
    with fresh_store("postgres", tmp_path) as url:
        assert run(url, "init", "--director", "dir", "--name", "主任").code == 0
        posted = run(url, "--actor", "dir", "post", str(generated.path))
        assert posted.code == 3, posted  # the generator's refused attempts
        yield url


# The statement each command's own snapshot of the log starts with (ledger.integrity_pg).
@pytest.mark.parametrize("args", [("verify",), ("--actor", "dir", "seal")])
def test_verify_and_seal_whose_connection_is_ended_say_the_database_is_unavailable(
    store: str, args: tuple[str, ...]
) -> None:
    with relayed(store, b"pg_export_snapshot") as (url, relay):
        process = start(url, *args)
        terminate(relay)
        _out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1, err
    assert one_line(err).startswith("error: database unavailable: "), err
    assert "unexpected" not in err
    assert run(store, "verify").code == 0  # nothing was sealed half-way


def test_a_rebuild_whose_lock_the_server_ended_swaps_nothing(store: str) -> None:
    """The server ends the session holding the rebuild lock while the rebuild builds, and
    another takes the lock (here the test's session, as a second rebuild would): the
    first swaps nothing and says so (exit 5). It used to swap its tables in all the same,
    beside the other, then fail on releasing the lock (exit 1, after the swap)."""
    assert run(store, "projections", "rebuild").code == 0
    before = catalog_table(store)
    # The rebuild holds its lock once it drops the scratch tables a killed one left.
    with relayed(store, b"DROP TABLE IF EXISTS") as (url, relay):
        process = start(url, "projections", "rebuild", "--jobs", "1")
        assert relay.seen.wait(TIMEOUT), "the rebuild never dropped its scratch tables"
        with psycopg.connect(require_pg(), autocommit=True) as admin:
            ((ended,),) = admin.execute(
                "SELECT count(pg_terminate_backend(pid, %s)) FROM pg_locks WHERE "
                "locktype = 'advisory' AND objid = %s AND database = "
                "(SELECT oid FROM pg_database WHERE datname = %s)",
                (WAIT, LOCK_KEY, urlsplit(store).path.lstrip("/")),
            ).fetchall()
        assert ended == 1
        with psycopg.connect(store, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
            relay.release()
            out, err = process.communicate(timeout=TIMEOUT)
            assert catalog_table(store) == before  # nothing swapped in
    assert (process.returncode, out) == (5, ""), err
    assert one_line(err) == (
        "error: the projections rebuild lost its lock (the server ended the session that "
        "held it), so another rebuild or check may be running; nothing was swapped: run "
        "the command again"
    )
    again = run(store, "projections", "rebuild")
    assert again.code == 0, again
    assert catalog_table(store) != before
    assert run(store, "projections", "check").code == 0


def catalog_table(url: str) -> int:
    """The live catalog table's oid: a swap puts another table in its place."""
    with psycopg.connect(url) as conn:
        ((oid,),) = conn.execute("SELECT 'catalog'::regclass::oid").fetchall()
    return int(oid)


@pytest.mark.parametrize("args", [("verify",), ("--actor", "dir", "seal")])
def test_verify_and_seal_whose_snapshot_ended_say_the_database_is_unavailable(
    store: str, args: tuple[str, ...]
) -> None:
    """The connection that exported the command's snapshot ends before a second one joins
    it: `invalid snapshot identifier` was `error: unexpected InvalidParameterValue`."""
    with relayed(store, b"SET TRANSACTION SNAPSHOT") as (url, relay):
        process = start(url, *args)
        assert relay.seen.wait(TIMEOUT), "no connection joined the snapshot"
        with psycopg.connect(require_pg(), autocommit=True) as admin:
            admin.execute(  # every other session of the store: the exporting one too
                "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity "
                "WHERE datname = %s AND client_port <> %s",
                (WAIT, urlsplit(store).path.lstrip("/"), relay.backend_port),
            )
        relay.release()
        _out, err = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1, err
    assert one_line(err).startswith(
        "error: database unavailable: the connection that holds this command's snapshot of "
        "the log has ended (invalid snapshot identifier: "
    ), err
    assert run(store, "verify").code == 0
