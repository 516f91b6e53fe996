from __future__ import annotations

import os

# Every event an aggregate builds without validation is also validated and compared
# (aggregates.base.LedgerEvent.trusted), in this process and in the CLI processes.
os.environ["LEDGER_CHECK_EVENTS"] = "1"

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli import BACKENDS
from tests.pg import fresh_database, require_pg
from tests.tamper import Scenario, copies


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


@pytest.fixture(scope="module", params=BACKENDS)
def golden(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Scenario, Callable[[], str]]]:
    """The tamper scenario (tests/tamper.py) written once per backend and module, and a
    function giving a fresh copy's URL; modules that need it written otherwise define
    their own."""
    with copies(request.param, tmp_path_factory.mktemp("golden")) as found:
        yield found
