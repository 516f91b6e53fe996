"""Reading the event table itself, in one consistent snapshot, for `seal` and `verify`.

Both read the stored rows directly (sqlite3 / psycopg), never through the library, so they
see exactly what the database holds. An originator is named by its 32 hex digits (``key``)
on both backends; a position is the row's notification id (SQLite: its rowid).
"""

from __future__ import annotations

import binascii
import hashlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

from aggregates.chain import open_envelope
from ledger.application import Ledger
from ledger.config import aes_cipher

# (position, key, version, topic, state, db_role or None)
LogRow = tuple[int, str, int, str, bytes, str | None]
# (position, key, version, topic, recorded hash in hex or None when unreadable)
HashRow = tuple[int, str, int, str, str | None]
Decode = Callable[[bytes], tuple[bytes, str]]
ZERO = bytes(32)
PAGE = 5000


def link_bytes(previous: bytes, event_hash: bytes) -> bytes:
    """aggregates.chain.link on raw 32-byte digests."""
    return hashlib.sha256(previous + event_hash).digest()


def stand_in_hash(state: object) -> bytes:
    """What an unreadable row adds to a digest: its raw bytes' SHA-256 (never matches)."""
    raw = state if isinstance(state, bytes) else repr(state).encode()
    return hashlib.sha256(b"unreadable:" + raw).digest()


def literal(value: object) -> str:
    """A stored value as SQL writes it (text quoted, a blob in hex, NULL): how `verify` names a
    column value the ledger never writes (SQLite keeps whatever an UPDATE stores)."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray | memoryview):
        return f"x'{bytes(value).hex()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def unhex(text: str) -> bytes:
    value = binascii.unhexlify(text)
    if len(value) != 32:
        raise ValueError("a recorded hash has 64 hex digits")
    return value


class EventTable(ABC):
    """The event table in one read-only snapshot; a context manager."""

    backend: str

    def __init__(self, decode: Decode, encrypted: bool) -> None:
        self.decode = decode
        self.encrypted = encrypted

    def __enter__(self) -> EventTable:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abstractmethod
    def close(self) -> None: ...

    def owns(self, role: str) -> bool:
        """Whether a session of this database role may act as actors bound to no role: on
        PostgreSQL, whether it is a superuser or a member of the role that owns the event
        table (as `ledger.recorders_pg.session_owns_tables` judges a session). SQLite
        rows name no role."""
        return True

    def in_child(self) -> EventTable:
        """The table as a forked process reads it, in the same snapshot: this very object on
        SQLite (the child reads through this connection, see ledger.scan_split); the
        child closes what it gets only if it is another."""
        return self

    @abstractmethod
    def head(self) -> int:
        """The last position in the snapshot (0 for an empty log)."""

    @abstractmethod
    def rows(self, after: int | None, upto: int) -> Iterator[LogRow]:
        """Every row with after < position <= upto, in log order, streamed."""

    def scan_rows(self, after: int | None, upto: int) -> Iterator[LogRow]:
        """Like ``rows``, for the full scan, with the state as stored: a state that is not
        bytes is read again by ``state_at``; a read that fails, by ``read_again``."""
        return self.rows(after, upto)

    def read_again(self, after: int | None, upto: int, error: Exception) -> LogRow:
        """The first row after ``after`` as ``rows`` gives it, when ``scan_rows`` stopped
        with ``error`` because of it; ``error`` again otherwise."""
        raise error

    def state_at(self, position: int) -> bytes | None:
        """The state of one row as ``rows`` gives it."""
        raise NotImplementedError

    @abstractmethod
    def _hash_rows(self, after: int | None, upto: int) -> Iterator[tuple[Any, ...]]: ...

    @abstractmethod
    def chain(self, key: str) -> list[LogRow]:
        """One originator's rows, by version (then position)."""

    @abstractmethod
    def find(self, pairs: Sequence[tuple[str, int]]) -> list[LogRow]:
        """The rows of these (key, version) pairs that exist."""

    @abstractmethod
    def with_topic(self, topic: str, upto: int) -> list[LogRow]:
        """Every row of one topic up to a position (a full scan, done by the database)."""

    def hashes(self, after: int | None, upto: int) -> Iterator[HashRow]:
        """Rows in log order with only their recorded hash (read in SQL when unencrypted)."""
        if self.encrypted:
            for position, key, version, topic, state, _ in self.rows(after, upto):
                yield position, key, version, topic, self.recorded_hash(state)
            return
        for position, key, version, topic, tail, shaped in self._hash_rows(after, upto):
            yield (
                position,
                key,
                version,
                topic,
                bytes(tail).decode("ascii", "replace") if shaped else None,
            )

    def recorded_hash(self, state: object) -> str | None:
        """The hash an envelope records; None when the state is no readable envelope
        (SQLite may hold a state as text or a number)."""
        if not isinstance(state, bytes):
            return None
        try:
            return self.decode(state)[1]
        except Exception:
            return None


# The envelope's fixed parts, for the shape test done in SQL: '{"body":' ... ',"hash":"' H '"}'
HEAD_HEX = b'{"body":'.hex()
MID_HEX = b',"hash":"'.hex()
TAIL_HEX = b'"}'.hex()


# A state stored as anything but a BLOB (which the library cannot read) never passes as one.
STATE = "CASE WHEN typeof(state) = 'blob' THEN state ELSE CAST(state || x'00' AS BLOB) END"


class SQLiteEventTable(EventTable):
    backend = "sqlite"
    table = "stored_events"

    def __init__(self, path: str, decode: Decode, encrypted: bool) -> None:
        super().__init__(decode, encrypted)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA query_only = ON")
        self.conn.execute("BEGIN")  # one snapshot for every read below (WAL)

    def close(self) -> None:
        self.conn.close()

    def head(self) -> int:
        row = self.conn.execute(f"SELECT max(rowid) FROM {self.table}").fetchone()
        return int(row[0] or 0)

    def _where(self, after: int | None, upto: int) -> tuple[str, tuple[int, ...]]:
        if after is None:
            return "rowid <= ?", (upto,)
        return "rowid > ? AND rowid <= ?", (after, upto)

    def rows(self, after: int | None, upto: int, state: str = STATE) -> Iterator[LogRow]:
        where, params = self._where(after, upto)
        cursor = self.conn.execute(
            f"SELECT rowid, originator_id, originator_version, topic, {state}, NULL "
            f"FROM {self.table} WHERE {where} ORDER BY rowid",
            params,
        )
        cursor.arraysize = PAGE
        return iter(cursor)

    def scan_rows(self, after: int | None, upto: int) -> Iterator[LogRow]:
        """The state column as stored, without the CASE (cheaper): text comes as str, or
        stops the read when it is not UTF-8 (the driver cannot decode it)."""
        return self.rows(after, upto, "state")

    def read_again(self, after: int | None, upto: int, error: Exception) -> LogRow:
        where, params = self._where(after, upto)
        try:  # is the next row's state what stopped the read?
            self.conn.execute(
                f"SELECT state FROM {self.table} WHERE {where} ORDER BY rowid LIMIT 1", params
            ).fetchall()
        except sqlite3.OperationalError:
            row: LogRow = self.conn.execute(
                f"SELECT rowid, originator_id, originator_version, topic, {STATE}, NULL "
                f"FROM {self.table} WHERE {where} ORDER BY rowid LIMIT 1",
                params,
            ).fetchone()
            return row
        raise error

    def state_at(self, position: int) -> bytes | None:
        row = self.conn.execute(
            f"SELECT {STATE} FROM {self.table} WHERE rowid = ?", (position,)
        ).fetchone()
        return row[0] if row else None

    def _hash_rows(self, after: int | None, upto: int) -> Iterator[tuple[Any, ...]]:
        where, params = self._where(after, upto)
        return iter(
            self.conn.execute(
                "SELECT rowid, originator_id, originator_version, topic, substr(state, -66, 64), "
                f"substr(state, 1, 8) = X'{HEAD_HEX}' AND substr(state, -75, 9) = X'{MID_HEX}' "
                f"AND substr(state, -2) = X'{TAIL_HEX}' "
                f"FROM {self.table} WHERE {where} ORDER BY rowid",
                params,
            )
        )

    def chain(self, key: str) -> list[LogRow]:
        """By IS, not =: a row whose originator was set to NULL is found (same index)."""
        return self.conn.execute(
            f"SELECT rowid, originator_id, originator_version, topic, {STATE}, NULL "
            f"FROM {self.table} WHERE originator_id IS ? ORDER BY originator_version, rowid",
            (key,),
        ).fetchall()

    def with_topic(self, topic: str, upto: int) -> list[LogRow]:
        return self.conn.execute(
            f"SELECT rowid, originator_id, originator_version, topic, {STATE}, NULL "
            f"FROM {self.table} WHERE topic = ? AND rowid <= ? ORDER BY rowid",
            (topic, upto),
        ).fetchall()

    def find(self, pairs: Sequence[tuple[str, int]]) -> list[LogRow]:
        """One primary-key lookup each (a row-value IN list would scan the table)."""
        statement = (
            f"SELECT rowid, originator_id, originator_version, topic, {STATE}, NULL "
            f"FROM {self.table} WHERE originator_id = ? AND originator_version = ?"
        )
        found: list[LogRow] = []
        for pair in pairs:
            found.extend(self.conn.execute(statement, pair).fetchall())
        return found


def plain_decode(state: bytes) -> tuple[bytes, str]:
    if not isinstance(state, bytes):
        raise ValueError("no stored state" if state is None else "stored state is not bytes")
    return open_envelope(state)


def open_table(ledger: Ledger) -> EventTable:
    """The ledger's event table, read directly in a snapshot (decrypting if a key is set)."""
    mapper: Any = ledger.mapper
    encrypted = bool(mapper.cipher or mapper.compressor)
    decode: Decode = mapper.decode_state if encrypted else plain_decode
    if ledger.store.backend == "sqlite":
        return SQLiteEventTable(str(ledger.store.sqlite_path), decode, encrypted)
    env = ledger.store.env
    recorder: Any = ledger.recorder
    conninfo = {
        "dbname": env["POSTGRES_DBNAME"],
        "host": env["POSTGRES_HOST"],
        "port": int(env["POSTGRES_PORT"]),
        "user": env["POSTGRES_USER"],
        "password": env.get("POSTGRES_PASSWORD") or None,
        "connect_timeout": int(env.get("POSTGRES_CONNECT_TIMEOUT", "5")),
    }
    from ledger.integrity_pg import PostgresEventTable  # psycopg: only for PostgreSQL

    return PostgresEventTable(
        conninfo, recorder.datastore.schema, recorder.events_table_name, decode, encrypted
    )


def new_cipher_key() -> str:
    """A new AES-256 key for LEDGER_CIPHER_KEY (base64), from the library's AESCipher."""
    key: str = aes_cipher().create_key(32)
    return key
