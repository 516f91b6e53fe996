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


@contextmanager
def fresh_database(template: str | None = None) -> Iterator[str]:
    """Create an empty database ``ledger_t_<hex>`` (or a copy of the database
    ``template``, which nobody may be connected to), yield its URL, then drop it."""
    admin_url = require_pg()
    name = f"ledger_t_{secrets.token_hex(8)}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(create)
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
