"""PostgreSQL helpers for tests.

``LEDGER_TEST_PG_URL`` (a ``postgresql://user@host:port/db`` URL, exported by
``scripts/test``) names a server where the user may create databases. Each test that
needs PostgreSQL gets its own database from :func:`fresh_database`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

PG_URL = os.environ.get("LEDGER_TEST_PG_URL")


def require_pg() -> str:
    """Return ``PG_URL``; skip the test without it (fail it when ``CI=true``)."""
    if not PG_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is required when CI=true (set LEDGER_TEST_PG_URL)")
        pytest.skip("PostgreSQL not available (set LEDGER_TEST_PG_URL)")
    return PG_URL


def with_database(url: str, dbname: str) -> str:
    """``url`` with its database replaced by ``dbname`` (user, host, port, query kept)."""
    return urlunsplit(urlsplit(url)._replace(path="/" + dbname))


def create_database(name: str, template: str | None = None) -> str:
    """Create the database ``name``, empty or a copy of the database ``template`` (which
    nobody may be connected to); return its URL."""
    admin_url = require_pg()
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(create)
    return with_database(admin_url, name)


def drop_database(name: str) -> None:
    with psycopg.connect(require_pg(), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def fresh_database(template: str | None = None) -> Iterator[str]:
    """Create a database ``ledger_t_<hex>`` (see ``create_database``), yield its URL,
    then drop it."""
    name = f"ledger_t_{secrets.token_hex(8)}"
    url = create_database(name, template)
    try:
        yield url
    finally:
        drop_database(name)
