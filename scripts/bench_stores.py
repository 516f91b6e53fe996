"""Stores for the benchmark: ledgers built through the real CLI, and the raw baselines.

Every ledger store is made the honest way: `ledger init`, then `ledger post` of JSON Lines
from scripts/generate. The baselines use the database drivers directly on rows of the
same number and size (the rows are read back from the ledger store itself).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from aggregates.chain import open_envelope
from ledger.recorders import BULK_CACHE_KIB

ROOT = Path(__file__).resolve().parent.parent
LEDGER = str(Path(sys.executable).with_name("ledger"))
GENERATE = str(ROOT / "scripts" / "generate")
EVENTS_PER_RECORD = 8  # 7 lifecycle commands; the arrangement also claims the code
PAGE = 10_000


class NotAvailable(Exception):
    """A feature (or a server) the measurement needs is not there."""


PACKAGES = ("aggregates", "ledger", "projections", "commands")


def compile_code(root: Path) -> None:
    """Compile the ledger's packages under ``root`` to bytecode, as an installed package
    is, so that no measured process compiles their source: where PYTHONDONTWRITEBYTECODE is
    set, an editable install compiles them again in every process."""
    folders = [str(root / name) for name in PACKAGES]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *folders], capture_output=True)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["PYTHONHASHSEED"] = "0"
    return env


def server_url(given: str | None) -> str:
    """The PostgreSQL server where databases may be created: ``given``, else
    LEDGER_BENCH_PG_URL, LEDGER_TEST_PG_URL, or the local server's default."""
    return (
        given
        or os.environ.get("LEDGER_BENCH_PG_URL")
        or os.environ.get("LEDGER_TEST_PG_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )


def ledger(
    db: str, *args: str, timeout: float = 3600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [LEDGER, "--db", db, *args], capture_output=True, env=env or child_env(), timeout=timeout
    )


def generate(path: Path, records: int, run: str, seed: int = 7) -> Path:
    if not path.exists():
        with open(str(path) + ".part", "wb") as out:
            subprocess.run(
                [sys.executable, GENERATE, "--records", str(records), "--run", run,
                 "--seed", str(seed)],
                stdout=out, check=True, env=child_env(),
            )  # fmt: skip
        os.replace(str(path) + ".part", path)
    return path


def day_lines(path: Path, claims: list[tuple[str, str]], run: str) -> Path:
    """A day's work on records already in the store: one line for each claimed code,
    naming its record by that code: consultations, copies and relocations in turn, by the
    generated files' actors (scripts/generate), dated a minute ago."""
    at = (datetime.now(tz=UTC) - timedelta(minutes=1)).replace(microsecond=0).isoformat()
    uses = [
        {"command": "consult", "reader": "g.reader", "purpose": "查考", "approved_by": "g.leader"},
        {"command": "copy", "reader": "g.reader", "pages": 1, "purpose": "复制存档",
         "approved_by": "g.leader"},
        {"command": "relocate", "location": "C1-01-1-1"},
    ]  # fmt: skip
    with path.open("w", encoding="utf-8") as out:
        for n, (code, _) in enumerate(claims):
            line = {**uses[n % 3], "record": code, "id": f"{run}-{n}", "occurred_at": at}
            out.write(json.dumps({**line, "actor": "g.arch"}, ensure_ascii=False) + "\n")
    return path


@dataclass
class Backend:
    """One database kind: where its stores live and how its rows are read raw."""

    name: str  # "sqlite" or "postgres"
    workdir: Path
    admin_url: str | None = None  # PostgreSQL server where databases may be created
    tag: str = ""  # appended to store names, so that concurrent runs do not collide

    def url(self, store: str) -> str:
        store += self.tag
        if self.name == "sqlite":
            return f"sqlite:///{self.workdir / (store + '.db')}"
        assert self.admin_url is not None
        return urlunsplit(urlsplit(self.admin_url)._replace(path="/" + store))

    def exists(self, store: str) -> bool:
        store += self.tag
        if self.name == "sqlite":
            return (self.workdir / (store + ".db")).exists()
        import psycopg

        with psycopg.connect(self.admin_url or "", autocommit=True) as admin:
            found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (store,))
            return found.fetchone() is not None

    def drop(self, store: str) -> None:
        store += self.tag
        if self.name == "sqlite":
            for suffix in (".db", ".db-wal", ".db-shm"):
                (self.workdir / (store + suffix)).unlink(missing_ok=True)
            return
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url or "", autocommit=True) as admin:
            name = sql.Identifier(store)
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))

    def create(self, store: str, env: dict[str, str] | None = None) -> str:
        """A fresh, initialised ledger with its first director (``ledger init`` run with
        ``env``, if given); returns its URL."""
        self.drop(store)
        if self.name == "postgres":
            import psycopg
            from psycopg import sql

            with psycopg.connect(self.admin_url or "", autocommit=True) as admin:
                name = sql.Identifier(store + self.tag)
                admin.execute(sql.SQL("CREATE DATABASE {}").format(name))
        url = self.url(store)
        done = ledger(url, "init", "--director", "dir", "--name", "主任", env=env)
        if done.returncode:
            raise RuntimeError(f"ledger init failed: {done.stderr.decode().strip()}")
        return url

    def copy(self, source: str, store: str) -> str:
        """A copy of the store ``source`` made as ``store`` (replacing it); its URL."""
        self.drop(store)
        if self.name == "sqlite":
            src = sqlite3.connect(self.url(source)[len("sqlite:///") :])
            dst = sqlite3.connect(self.url(store)[len("sqlite:///") :])
            src.backup(dst)
            dst.close()
            src.close()
            return self.url(store)
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.admin_url or "", autocommit=True) as admin:
            # The database's files copied whole, not page by page through the WAL.
            how = " STRATEGY FILE_COPY" if admin.info.server_version >= 150000 else ""
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}" + how).format(
                    sql.Identifier(store + self.tag), sql.Identifier(source + self.tag)
                )
            )
        return self.url(store)

    # -- raw access ---------------------------------------------------------

    def stored_rows(self, url: str) -> list[tuple[Any, ...]]:
        """(originator_id, version, topic, state) of every event, in log order."""
        return list(self.pages(url, "originator_id, originator_version, topic, state"))

    def pages(self, url: str, columns: str) -> Iterator[tuple[Any, ...]]:
        """Rows of the event table in notification order, fetched 10,000 at a time."""
        if self.name == "sqlite":
            conn = sqlite3.connect(url[len("sqlite:///") :])
            query = (
                f"SELECT rowid, {columns} FROM stored_events WHERE rowid > ? "
                f"ORDER BY rowid LIMIT {PAGE}"
            )
            last = 0
            while rows := conn.execute(query, (last,)).fetchall():
                last = rows[-1][0]
                for row in rows:
                    yield row[1:]
            conn.close()
            return
        import psycopg

        with psycopg.connect(url) as conn:
            query = (
                f"SELECT notification_id, {columns} FROM ledger_events "
                f"WHERE notification_id > %s ORDER BY notification_id LIMIT {PAGE}"
            )
            last = 0
            while rows := conn.execute(query, (last,)).fetchall():
                last = rows[-1][0]
                for row in rows:
                    yield row[1:]

    def posted_keys(self, url: str) -> list[tuple[str, str]]:
        """(line id, outcome) of every posted-line key of the store."""
        if self.name == "sqlite":
            conn = sqlite3.connect(url[len("sqlite:///") :])
            keys = conn.execute("SELECT id, outcome FROM ledger_posted").fetchall()
            conn.close()
            return [(str(k), str(o)) for k, o in keys]
        import psycopg

        with psycopg.connect(url) as conn:
            return [(k, o) for k, o in conn.execute("SELECT id, outcome FROM ledger_posted")]

    def event_count(self, url: str) -> int:
        table = "stored_events" if self.name == "sqlite" else "ledger_events"
        if self.name == "sqlite":
            conn = sqlite3.connect(url[len("sqlite:///") :])
            (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            conn.close()
            return int(count)
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            return int(row[0]) if row else 0

    def record_ids(self, url: str, limit: int) -> list[str]:
        topic = "ledger/Record/Received"
        if self.name == "sqlite":
            conn = sqlite3.connect(url[len("sqlite:///") :])
            rows = conn.execute(
                "SELECT originator_id FROM stored_events WHERE topic = ? LIMIT ?", (topic, limit)
            ).fetchall()
            conn.close()
            return [str(uuid.UUID(r[0])) for r in rows]
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT originator_id FROM ledger_events WHERE topic = %s LIMIT %s",
                (topic, limit),
            ).fetchall()
            return [str(r[0]) for r in rows]

    def claims(self, url: str) -> list[tuple[str, str]]:
        """(archival code, record id) of every code claimed in the store."""
        topic = "ledger/CodeClaim/Claimed"
        if self.name == "sqlite":
            conn = sqlite3.connect(url[len("sqlite:///") :])
            query = "SELECT state FROM stored_events WHERE topic = ?"
            states = [bytes(s) for (s,) in conn.execute(query, (topic,))]
            conn.close()
        else:
            import psycopg

            with psycopg.connect(url) as pg:
                query = "SELECT state FROM ledger_events WHERE topic = %s"
                states = [bytes(s) for (s,) in pg.execute(query, (topic,))]
        bodies = [orjson.loads(open_envelope(state)[0]) for state in states]
        return [(body["code"], body["record_id"]) for body in bodies]


# -- baselines: what the database and the driver do without the ledger -------


def baseline_insert(
    backend: Backend,
    rows: list[tuple[Any, ...]],
    url: str,
    keys: list[tuple[str, str]] | None = None,
    transactions: int = 1,
) -> float:
    """Seconds to write ``rows`` into a table like the event table: executemany on SQLite
    (a file of its own, with the journal, sync and cache settings of the ledger's bulk
    writes), binary COPY on PostgreSQL (a table of its own in the database at ``url``).
    The baseline is one transaction; with ``keys`` (posted-line ids and outcomes, into a
    table like the ledger's) and several ``transactions``, each a share of both, it is the
    write floor of a bulk post."""
    store = "bench_baseline"
    keys = keys or []
    shares = [
        (rows[len(rows) * i // transactions : len(rows) * (i + 1) // transactions],
         keys[len(keys) * i // transactions : len(keys) * (i + 1) // transactions])
        for i in range(transactions)
    ]  # fmt: skip
    if backend.name == "sqlite":
        backend.drop(store)
        conn = sqlite3.connect(backend.url(store)[len("sqlite:///") :], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA cache_size={BULK_CACHE_KIB}")  # the ledger's bulk writes' own
        conn.execute(
            "CREATE TABLE stored_events (originator_id TEXT, originator_version INTEGER, "
            "topic TEXT, state BLOB, PRIMARY KEY (originator_id, originator_version))"
        )
        conn.execute("CREATE TABLE posted (id TEXT PRIMARY KEY, outcome TEXT, posted_at TEXT)")
        at = "2026-01-01T00:00:00.000Z"
        started = time.perf_counter()
        for events, posted in shares:
            conn.execute("BEGIN")
            if posted:
                conn.executemany("INSERT INTO posted VALUES (?, ?, ?)", [(*k, at) for k in posted])
            conn.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", events)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - started
        conn.close()
        backend.drop(store)
        return elapsed
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {store}, {store}_posted")
        conn.execute(
            f"CREATE TABLE {store} (originator_id uuid, originator_version bigint, "
            "topic text, state bytea, notification_id bigserial UNIQUE, "
            "PRIMARY KEY (originator_id, originator_version))"
        )
        conn.execute(
            f"CREATE TABLE {store}_posted (id text PRIMARY KEY, outcome text NOT NULL, "
            "posted_at timestamptz NOT NULL DEFAULT now())"
        )
        started = time.perf_counter()
        for events, posted in shares:
            with conn.transaction(), conn.cursor() as curs:
                if posted:
                    copy_sql = f"COPY {store}_posted (id, outcome) FROM STDIN (FORMAT BINARY)"
                    with curs.copy(copy_sql) as copy:
                        copy.set_types(["text", "text"])
                        for key in posted:
                            copy.write_row(key)
                copy_sql = f"COPY {store} (originator_id, originator_version, topic, state) "
                with curs.copy(copy_sql + "FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(["uuid", "int8", "text", "bytea"])
                    for row in events:
                        copy.write_row(row)
        elapsed = time.perf_counter() - started
        conn.execute(f"DROP TABLE {store}, {store}_posted")
    return elapsed


def baseline_read_decode(backend: Backend, url: str) -> tuple[float, int]:
    """Seconds to read every stored state in log order and JSON-decode it."""
    started = time.perf_counter()
    count = 0
    for (state,) in backend.pages(url, "state"):
        orjson.loads(state)
        count += 1
    return time.perf_counter() - started, count


def baseline_read_aggregates(backend: Backend, url: str, ids: list[uuid.UUID]) -> float:
    """Seconds to read the stored states of the aggregates ``ids``, each aggregate's in
    version order (as the ledger loads a chunk's records: 500 aggregates a query on
    SQLite, all in one on PostgreSQL), and JSON-decode each."""
    started = time.perf_counter()
    if backend.name == "sqlite":
        conn = sqlite3.connect(url[len("sqlite:///") :])
        for start in range(0, len(ids), 500):
            chunk = [i.hex for i in ids[start : start + 500]]
            query = (
                f"SELECT state FROM stored_events WHERE originator_id IN "
                f"({','.join('?' * len(chunk))}) ORDER BY originator_id, originator_version"
            )
            for (state,) in conn.execute(query, chunk):
                orjson.loads(state)
        conn.close()
    else:
        import psycopg

        with psycopg.connect(url) as pg:
            query = (
                "SELECT state FROM ledger_events WHERE originator_id = ANY(%s) "
                "ORDER BY originator_id, originator_version"
            )
            for (state,) in pg.execute(query, (ids,)):
                orjson.loads(state)
    return time.perf_counter() - started


def baseline_read_hash(backend: Backend, url: str) -> tuple[float, int]:
    """Seconds to read every stored state in log order and SHA-256 it."""
    started = time.perf_counter()
    count = 0
    for (state,) in backend.pages(url, "state"):
        hashlib.sha256(state).hexdigest()
        count += 1
    return time.perf_counter() - started, count


def post_file(
    url: str,
    path: Path,
    chunk_size: int | None = None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[float, dict[str, Any]]:
    """Run `ledger post FILE --json` (with ``env``, if given); (seconds, summary)."""
    args = ["post", str(path), "--json", *(extra or [])]
    if chunk_size:
        args += ["--chunk-size", str(chunk_size)]
    started = time.perf_counter()
    done = ledger(url, *args, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 3):
        raise RuntimeError(f"ledger post failed ({done.returncode}): {done.stderr[-500:]!r}")
    return elapsed, json.loads(done.stdout)


def big_store_name(events: int) -> str:
    return f"ledger_bench_{events}"


def big_store(backend: Backend, events: int, reuse: bool, source: Path | None = None) -> str:
    """A store of about ``events`` events (or of the lines of ``source``), built by
    `ledger post` (kept for reuse)."""
    store = big_store_name(events)
    what = f"{source.name}:{source.stat().st_size}" if source else "generated"
    marker = backend.workdir / f"{store}{backend.tag}.{backend.name}.done"
    # Markers older than --store-file name no source: their stores were generated.
    made_from = None
    if marker.exists():
        made_from = json.loads(marker.read_text()).get("source", "generated")
    if reuse and made_from == what and backend.exists(store):
        return backend.url(store)
    records = max(1, events // EVENTS_PER_RECORD)
    path = source or generate(backend.workdir / f"big_{records}.jsonl", records, run="b")
    url = backend.create(store)
    print(f"  building {backend.name} store from {path} ...", file=sys.stderr)
    elapsed, summary = post_file(url, path, chunk_size=20_000)
    print(f"  built: {summary['events']:,} events in {elapsed:.0f} s", file=sys.stderr)
    marker.write_text(json.dumps({**summary, "source": what}))
    return url
