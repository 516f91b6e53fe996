from __future__ import annotations

from urllib.parse import urlsplit

import psycopg
import pytest

from tests.pg import fresh_database, require_pg


def _database_exists(admin_url: str, name: str) -> bool:
    with psycopg.connect(admin_url) as conn:
        query = "SELECT count(*) FROM pg_database WHERE datname = %s"
        row = conn.execute(query, (name,)).fetchone()
    assert row is not None
    return bool(row[0])


@pytest.mark.postgres
def test_pg_url_fixture_gives_a_fresh_database(pg_url: str) -> None:
    name = urlsplit(pg_url).path.lstrip("/")
    assert name.startswith("ledger_t_")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
    assert tables == (0,)


@pytest.mark.postgres
def test_fresh_database_is_dropped_on_exit() -> None:
    admin_url = require_pg()
    with fresh_database() as url:
        name = urlsplit(url).path.lstrip("/")
        assert _database_exists(admin_url, name)
        # A connection still open at exit must not stop the drop (WITH (FORCE)).
        leftover = psycopg.connect(url)
        assert leftover.execute("SELECT 1").fetchone() == (1,)
    try:
        assert not _database_exists(admin_url, name)
        with pytest.raises(psycopg.OperationalError):
            leftover.execute("SELECT 1")
    finally:
        leftover.close()


def test_db_url_is_sqlite_or_postgres(db_url: str) -> None:
    assert db_url.startswith(("sqlite:///", "postgresql://"))
