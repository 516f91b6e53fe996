from __future__ import annotations

import os

# Every event an aggregate builds without validation is also validated and compared
# (aggregates.base.LedgerEvent.trusted), in this process and in the CLI processes.
os.environ["LEDGER_CHECK_EVENTS"] = "1"

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import fresh_database, require_pg


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    require_pg()
    with fresh_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    ids=["sqlite", "postgres"],
)
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    name = "pg_url" if request.param == "postgres" else "sqlite_url"
    url: str = request.getfixturevalue(name)
    return url
