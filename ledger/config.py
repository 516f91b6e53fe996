"""The one place where a database URL becomes the event store's environment."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

from aggregates.errors import InvalidInput

DEFAULT_URL = "sqlite:///ledger.db"


@dataclass(frozen=True)
class Store:
    url: str
    backend: str  # "sqlite" or "postgres"
    env: dict[str, str]

    @property
    def sqlite_path(self) -> Path:
        return Path(self.env["SQLITE_DBNAME"])

    @property
    def shown(self) -> str:
        """The URL as messages print it: a password in it is masked."""
        return masked(self.url)


def masked(url: str) -> str:
    """``url`` with the password of its user part, if any, shown as ``***``."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")  # an '@' in the database or query is no user's
    userinfo, at, host = netloc.rpartition("@")
    if not at and ":" in netloc and "@" in tail:  # "u:pa/ss@h/db": a '/' in the password
        userinfo, at, host = rest.rpartition("@")
        slash = tail = ""
    if not (sep and at and ":" in userinfo):
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}{slash}{tail}"


def store_from_url(url: str | None, *, cipher_key: str | None = None) -> Store:
    """sqlite:///relative.db, sqlite:////absolute.db or postgresql://user:pw@host:port/db.

    No URL (None) is LEDGER_DB's, else the default; an empty LEDGER_DB is no URL, as the
    command line reads it, but an empty URL given (`--db ''`) is invalid input."""
    if url is None:
        url = os.environ.get("LEDGER_DB") or DEFAULT_URL
    if not url:
        raise InvalidInput(
            "database URL is empty: give sqlite:///FILE or postgresql://USER@HOST/DB "
            f"(or no --db for the default, {DEFAULT_URL})"
        )
    parts = urlsplit(url)
    env: dict[str, str] = {"CREATE_TABLE": "false"}
    if parts.scheme == "sqlite":
        path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
        if not path:
            raise InvalidInput(f"database URL {url!r} needs a file: sqlite:///ledger.db")
        # eventsourcing's SQLite datastore takes any name holding these for an in-memory
        # database (a file /x/:memory: included): nothing would last.
        if ":memory:" in path or "mode=memory" in path:
            raise InvalidInput(
                f"database URL {url!r} names an in-memory database, where nothing lasts: "
                "give a file whose name holds neither ':memory:' nor 'mode=memory'"
            )
        # the library took 'x.db?mode=ro' for a file's name, and made one so named
        _no_parameters(url, "name the file alone (a '?' or '#' in its name is written %3F or %23)")
        env.update(
            PERSISTENCE_MODULE="eventsourcing.sqlite",
            SQLITE_DBNAME=path,
            SQLITE_LOCK_TIMEOUT="30",
            APPLICATION_RECORDER_TOPIC="ledger.recorders:SQLiteLedgerRecorder",
        )
        backend = "sqlite"
    elif parts.scheme in ("postgresql", "postgres"):
        dbname = parts.path.lstrip("/")
        if not dbname:
            raise InvalidInput(f"database URL {masked(url)!r} names no database{_unencoded(url)}")
        # never passed on: ?sslmode=require was ignored
        _no_parameters(
            url, "set them as libpq's environment variables instead (e.g. PGSSLMODE=require)"
        )
        password = unquote(parts.password) if parts.password else os.environ.get("PGPASSWORD", "")
        env.update(
            PERSISTENCE_MODULE="eventsourcing.postgres",
            POSTGRES_DBNAME=unquote(dbname),
            POSTGRES_HOST=parts.hostname or "127.0.0.1",
            POSTGRES_PORT=str(_port(parts, url) or 5432),
            POSTGRES_USER=unquote(parts.username or os.environ.get("PGUSER", "postgres")),
            POSTGRES_PASSWORD=password,
            POSTGRES_POOL_SIZE="2",
            POSTGRES_CONNECT_TIMEOUT="5",
            POSTGRES_LOCK_TIMEOUT="30",
            APPLICATION_RECORDER_TOPIC="ledger.recorders:PostgresLedgerRecorder",
        )
        backend = "postgres"
    else:
        raise InvalidInput(
            f"database URL {masked(url)!r} is neither sqlite:///FILE nor postgresql://USER@HOST/DB"
        )
    key = cipher_key if cipher_key is not None else os.environ.get("LEDGER_CIPHER_KEY")
    if key:
        _check_key(key)
        aes_cipher()  # the library would fail to resolve the topic, unexpectedly
        env.update(CIPHER_TOPIC="eventsourcing.cryptography:AESCipher", CIPHER_KEY=key)
    return Store(url=url, backend=backend, env=env)


def _no_parameters(url: str, instead: str) -> None:
    """Refuse a URL with parameters (after '?' or '#'), which no store is given: what to do
    ``instead`` ends the message."""
    if "?" in url or "#" in url:
        raise InvalidInput(
            f"database URL {masked(url)!r} has parameters (after '?' or '#'), which the ledger "
            f"does not pass on: {instead}"
        )


def _unencoded(url: str, marks: str = "#?") -> str:
    """Why a URL in which one of ``marks`` comes before an '@' is malformed: what follows
    was read as the URL's path, parameters or fragment (a password's unencoded '#', say)."""
    rest = url.partition("://")[2]
    found = [i for i in (rest.find(mark) for mark in marks) if i >= 0]
    if not found or min(found) > rest.rfind("@"):
        return ""
    named = " or ".join(f"'{mark}'" for mark in marks)
    return (
        f": a {named} ends a URL's address, so a password's '#', '?', '@', '/' or '%' "
        "must be percent-encoded (%23 for '#', %3F for '?', %40, %2F and %25)"
    )


def _port(parts: SplitResult, url: str) -> int | None:
    try:
        return parts.port
    except ValueError:  # not a number, or not 0-65535
        raise InvalidInput(
            f"database URL {masked(url)!r} has no valid port (1-65535){_unencoded(url, '/')}"
        ) from None


def aes_cipher() -> Any:
    """The library's AES cipher class; invalid input where the `crypto` extra is missing."""
    try:
        from eventsourcing.cryptography import AESCipher
    except ImportError:
        raise InvalidInput(
            "encryption needs the `cryptography` package: "
            "pip install 'records-custody-ledger[crypto]'"
        ) from None
    return AESCipher


def _check_key(key: str) -> None:
    """An AES key as the library's cipher takes it: 16, 24 or 32 bytes in base64 (checked
    here, where a bad one is an input error, not an unexpected failure when first used)."""
    try:
        size = len(base64.b64decode(key, validate=True))
    except ValueError:
        size = 0
    if size not in (16, 24, 32):
        raise InvalidInput(
            "LEDGER_CIPHER_KEY is not an AES key: 16, 24 or 32 bytes in base64 "
            "(`ledger keygen` prints one)"
        )
