"""The write floor of a rebuild: the views' own rows written with the driver alone.

A rebuild cannot take less time than writing what it builds. After the ledger's rebuild,
the live views hold exactly those rows; this writes them again into fresh tables of the
same DDL in the same database, with no projection logic: executemany on SQLite, in as
many transactions as a rebuild commits, then the secondary indexes in one transaction
(its commit checkpoints the write-ahead log, as the rebuild's swap does); COPY on
PostgreSQL, over one connection, then the indexes. SQLite allows one writer per
database, so on SQLite no split of the work goes below this figure.
"""

from __future__ import annotations

import math
import sqlite3
import sys
import time
from typing import Any

from bench_stores import ROOT, Backend

FLOOR_SUFFIX = "_bench_floor"


def _tables() -> list[Any]:
    sys.path.insert(0, str(ROOT))
    from projections.runner import PROJECTIONS

    return [table for projection in PROJECTIONS.values() for table in projection.spec.tables]


def _commits(events: int) -> int:
    """How many transactions a SQLite rebuild of ``events`` commits its rows in."""
    from projections.runner import SCRATCH_PAGES_PER_COMMIT, configured_page_size

    return max(1, math.ceil(events / (configured_page_size() * SCRATCH_PAGES_PER_COMMIT)))


def view_writes(backend: Backend, url: str, events: int) -> float:
    """Seconds to write the rows of every view of the store at ``url`` again, with their
    keys and secondary indexes (the rows are read first, untimed)."""
    if backend.name == "sqlite":
        return _sqlite_view_writes(url[len("sqlite:///") :], _tables(), _commits(events))
    return _pg_view_writes(url, _tables())


def _sqlite_view_writes(path: str, tables: list[Any], commits: int) -> float:
    from projections.views import index_ddl, table_ddl

    conn = sqlite3.connect(path, isolation_level=None)
    rows = {t.name: conn.execute(f"SELECT * FROM {t.name}").fetchall() for t in tables}
    _drop(conn, tables)
    for pragma in ("synchronous=NORMAL", "secure_delete=OFF", "cache_size=-32768"):
        conn.execute(f"PRAGMA {pragma}")  # as the views write
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint=262144")  # as scratch builds: checkpoint at the end
    started = time.perf_counter()
    for t in tables:
        conn.execute(table_ddl(t, t.name + FLOOR_SUFFIX, "sqlite"))
    for part in range(commits):
        conn.execute("BEGIN")
        for t in tables:
            these = rows[t.name]
            low, high = len(these) * part // commits, len(these) * (part + 1) // commits
            sql = f"INSERT INTO {t.name}{FLOOR_SUFFIX} VALUES ({','.join('?' * len(t.columns))})"
            conn.executemany(sql, these[low:high])
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_autocheckpoint=1000")
    conn.execute("BEGIN")
    for t in tables:
        for ddl in index_ddl(t, t.name + FLOOR_SUFFIX, t.name + FLOOR_SUFFIX):
            conn.execute(ddl)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    _drop(conn, tables)
    conn.close()
    return elapsed


def _pg_view_writes(url: str, tables: list[Any]) -> float:
    import psycopg

    from projections.views import index_ddl, table_ddl

    with psycopg.connect(url, autocommit=True) as conn:
        rows = {t.name: conn.execute(f"SELECT * FROM {t.name}").fetchall() for t in tables}
        _drop(conn, tables)
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as curs:
            curs.execute("SET LOCAL synchronous_commit = off")  # as the views write
            for t in tables:
                name = t.name + FLOOR_SUFFIX
                curs.execute(table_ddl(t, name, "postgres"))
                with curs.copy(f"COPY {name} ({', '.join(t.names)}) FROM STDIN") as copy:
                    for row in rows[t.name]:
                        copy.write_row(row)
                for index in index_ddl(t, name, name):
                    curs.execute(index)
        elapsed = time.perf_counter() - started
        _drop(conn, tables)
    return elapsed


def _drop(conn: Any, tables: list[Any]) -> None:
    for t in tables:
        conn.execute(f"DROP TABLE IF EXISTS {t.name}{FLOOR_SUFFIX}")
