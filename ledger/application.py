"""The ledger application: the use-case boundary between the CLI and the aggregates."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    OperationalError,
    ProgrammingError,
    Transcoder,
)

from aggregates.actor import Actor, ActorRegistered, actor_uuid
from aggregates.chain import ENVELOPE_START
from aggregates.code_claim import CodeClaimed, code_uuid
from aggregates.errors import Conflict, InvalidInput, LedgerError, NotFound, RuleViolation
from aggregates.record import Record
from ledger.batch import Batch
from ledger.config import Store, store_from_url
from ledger.mapper import LedgerMapper
from ledger.repository import LedgerRepository

if TYPE_CHECKING:  # the request models load with the first command run, not for reading
    from ledger import requests as rq

RETRIES = 3


class Ledger(Application):  # type: ignore[type-arg]
    name = "Ledger"

    def __init__(self, store: Store) -> None:
        self.store = store
        super().__init__(env=store.env)
        self._db_role: str | bool | None = False
        self._owns_tables: bool | None = None

    def construct_mapper(self) -> Mapper:  # type: ignore[type-arg]
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=LedgerMapper
        )

    def construct_transcoder(self) -> Transcoder:
        return _NoTranscoder()

    def construct_repository(self) -> LedgerRepository:
        """The library's repository with the library's defaults (no aggregate cache), its
        events replayed by ``ledger.repository.replay``."""
        return LedgerRepository(event_store=self.events, snapshot_store=self.snapshots)

    @property
    def repository(self) -> LedgerRepository:
        return self._repository  # type: ignore[return-value]  # made by the method above

    @property
    def db_role(self) -> str | None:
        """The database role of this session (PostgreSQL), for actors bound to a role."""
        if self._db_role is False:
            current = getattr(self.recorder, "current_role", None)
            self._db_role = current() if current else None
        return self._db_role if isinstance(self._db_role, str) else None

    @property
    def owns_tables(self) -> bool:
        """Whether this session may act as actors bound to no role (R19): on PostgreSQL a
        session of the event table's owner (or a superuser), not an officer's; SQLite
        has no roles."""
        if self._owns_tables is None:
            owns = getattr(self.recorder, "session_owns_tables", None)
            self._owns_tables = owns() if owns else True
        return self._owns_tables

    # -- set-up -----------------------------------------------------------

    def is_initialised(self) -> bool:
        try:
            self.recorder.max_notification_id()
        except (OperationalError, ProgrammingError):
            return False
        return True

    def create_tables(self) -> None:
        self.recorder.create_table()  # type: ignore[attr-defined]

    def initialise(self, director: str | None, name: str | None) -> str | None:
        """Register the first director while the ledger has no actor (a refused attempt
        by one not registered may be in the log already): their id as registered (ids and
        names are stripped, as for every actor); None if they were registered before."""
        if director is None:
            return None
        if not name:
            raise InvalidInput("--director needs --name")
        for _ in range(RETRIES):
            try:
                actor = self.first_director(director, name)
            except RuleViolation as refused:
                self._keep_refused_init(refused, director, name)
                raise
            if actor is None:
                return None
            try:
                self.save_first_director(actor)
            except IntegrityError:  # a first director was saved meanwhile: check again
                continue
            return actor.actor_id
        raise Conflict("another `ledger init --director` ran at the same time; run it again")

    def _keep_refused_init(self, refused: RuleViolation, director: str, name: str) -> None:
        """R19: a director that init may not register (the ledger has actors: a director
        adds them) is an attempt kept like any other refused under R19, by the director it
        named (a first director registers itself), with what was asked in its reason."""
        first = _first_director(director, name)
        asked = f"attempted: init --director {first.actor_id} --name {first.name!r}"
        batch = Batch(self)
        batch.refuse(
            RuleViolation(refused.rule, f"{refused.message}; {asked}"),
            action="init",
            actor=first.actor_id,
            record=None,
            details={},
        )
        batch.save_refusals()

    def first_director(self, director: str, name: str) -> Actor | None:
        """The first director, not saved yet; None if registered already (init is safe
        to run twice); refused (R19) once any actor is registered. Only this pays for the
        look-up of the first registration (the first event, in a ledger made by init)."""
        first = _first_director(director, name)
        try:
            known = self.repository.get(actor_uuid(first.actor_id))
        except AggregateNotFoundError:
            known = None
        if isinstance(known, Actor):
            if known.name != first.name:  # init changes no actor: say so, not drop it
                raise InvalidInput(
                    f"actor {first.actor_id} is registered already, named {known.name!r}; "
                    "init changes no actor"
                )
            return None
        if self.recorder.select_notifications(1, 1, topics=[ActorRegistered.TOPIC]):
            raise RuleViolation("R19", "the ledger already has actors; a director adds actors")
        return Actor.register(
            actor_id=first.actor_id,
            by=first.actor_id,
            occurred_at=datetime.now(tz=UTC),
            name=first.name,
            roles=list(first.role),
            clearance=first.clearance,
        )

    def save_first_director(self, actor: Actor) -> None:
        """Save it if no other actor is registered, as read under the write lock: of two
        first directors checked at once, the later save fails (ReadChanged)."""
        self.save(actor, sole=(ActorRegistered.TOPIC, actor.id))

    # -- writing ----------------------------------------------------------

    def execute(self, request: rq.Request, actor: str | None) -> dict[str, Any]:
        """Run one command in its own transaction; retry a lost race, re-checking rules."""
        from ledger.handlers import handle

        for _ in range(RETRIES):
            batch = Batch(self)
            try:
                result = handle(request, batch, actor)
            except RuleViolation as refused:
                try:
                    batch.save_refusals()
                except IntegrityError:  # an actor it was checked against changed: again
                    continue
                raise refused
            try:
                batch.save()
            except IntegrityError:
                continue
            return {k: str(v) if isinstance(v, UUID) else v for k, v in result.items()}
        raise Conflict(
            "another writer changed what this command read (the same record, or an actor it "
            "was checked against) at the same time; run the command again"
        )

    @contextmanager
    def translated_errors(self) -> Iterator[None]:
        """Infrastructure errors become one-line domain errors."""
        try:
            yield
        except LedgerError:
            raise
        except IntegrityError:
            raise Conflict("a concurrent writer got there first; run the command again") from None
        except OperationalError as error:
            raise LedgerError(f"database unavailable: {str(error).splitlines()[0]}") from None

    # -- reading ----------------------------------------------------------

    def record(self, ref: str, *, version: int | None = None) -> Record:
        record_id = Batch(self).resolve(ref)
        try:
            found: Any = self.repository.get(record_id, version=version)
        except AggregateNotFoundError:
            raise NotFound(f"record {ref!r} not found") from None
        if not isinstance(found, Record):
            raise NotFound(f"record {ref!r} not found")
        return found

    def record_history(self, ref: str) -> tuple[list[Any], dict[int, str]]:
        """A record's events, and the database role that wrote each (version -> role;
        PostgreSQL only, empty on SQLite), read together."""
        record_id = Batch(self).resolve(ref)
        stored, roles = self.recorder.history(record_id)  # type: ignore[attr-defined]
        events: list[Any] = [self.mapper.to_domain_event(s) for s in stored]
        if not events or events[0].TOPIC != "ledger/Record/Received":
            raise NotFound(f"record {ref!r} not found")
        return events, roles

    def check_cipher_key(self) -> None:
        """LEDGER_CIPHER_KEY and the store agree: the store's first event is encrypted if
        and only if a key is given, and the key decrypts it. Without this, a command run
        with the wrong key, or without one, wrote events that the store's own key cannot
        read (reads failed only on stored events, writes went through)."""
        first = self.recorder.select_notifications(start=1, limit=1)
        if not first:
            return
        state = first[0].state
        encrypted = not state.startswith(ENVELOPE_START)
        mapper: Any = self.mapper
        if mapper.cipher is None and encrypted:
            raise InvalidInput(
                "the store is encrypted: set LEDGER_CIPHER_KEY to its key (or its first "
                "event was changed: `ledger verify` says)"
            )
        if mapper.cipher is not None and not encrypted:
            raise InvalidInput("the store is not encrypted: unset LEDGER_CIPHER_KEY")
        if mapper.cipher is not None:
            try:
                mapper.decode_state(state)
            except ValueError:
                raise InvalidInput(
                    "LEDGER_CIPHER_KEY is not this store's key: it cannot decrypt the first "
                    "event (with the right key, `ledger verify` says what changed)"
                ) from None

    def code_holders(self, codes: list[str]) -> dict[str, UUID]:
        """The record that holds each of ``codes`` in the store (codes none holds are left
        out), read from the claims' stored bodies at once, without building the
        claims: bulk posting's routing reads the holders of every code a window names
        that no line in flight does (a day's lines on stored records: each of them),
        only to send the line where the record's other lines go. A claim never changes;
        the worker that posts the line loads it as a claim and checks it."""
        ids = {code_uuid(code): code for code in codes}
        recorder: Any = self.recorder
        mapper: Any = self.mapper
        found: dict[str, UUID] = {}
        for claim_id, topic, state in recorder.event_rows_of(list(ids)):
            if topic != CodeClaimed.TOPIC:
                continue
            body = orjson.loads(mapper.decode_state(state)[0])
            if body.get("class_version") == CodeClaimed.class_version:
                found[ids[claim_id]] = UUID(body["record_id"])
            else:  # stored under an older version: upcast on the way
                found[ids[claim_id]] = mapper.event_from(topic, state).record_id
        return found

    def actors(self) -> list[Actor]:
        topics = ["ledger/Actor/Registered"]
        found: list[Actor] = []
        start = 1
        while True:
            page = self.recorder.select_notifications(start, 500, topics=topics)
            ids: list[Any] = [n.originator_id for n in page]  # UUIDs, as the recorders give
            loaded = self.repository.get_many(ids)  # a few queries, not one an actor
            found.extend(loaded[i] for i in ids)
            if len(page) < 500:
                return found
            start = page[-1].id + 1


class _NoTranscoder(Transcoder):
    """The mapper writes canonical JSON itself; the library's transcoder is unused."""

    def encode(self, obj: Any) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:  # pragma: no cover
        raise NotImplementedError

    def register(self, transcoding: Any) -> None:  # pragma: no cover
        raise NotImplementedError


def _first_director(director: str, name: str) -> rq.AddActor:
    """The first director, checked as `ledger actor add` checks an actor: an id that is no
    actor id would register a director nobody could act as (every command refuses it)."""
    from pydantic import ValidationError

    from ledger import requests as rq

    try:
        return rq.AddActor(actor_id=director, name=name, role=["director"], clearance="top-secret")
    except ValidationError as error:
        where, message = rq.first_problem(error)
        option = {"actor_id": "--director", "name": "--name"}.get(where, where)
        raise InvalidInput(f"{option}: {message}") from None


def open_ledger(
    url: str | None = None, *, must_exist: bool = True, check_key: bool = True
) -> Ledger:
    """Open the ledger at a URL; unless creating it, refuse a store that was never made,
    and (unless told not to: `ledger verify` reports what it cannot read) one whose
    encryption LEDGER_CIPHER_KEY does not match."""
    store = store_from_url(url)
    if must_exist and store.backend == "sqlite" and not store.sqlite_path.exists():
        raise NotFound(f"no ledger at {store.shown}; run `ledger init` first")
    try:
        ledger = Ledger(store)
    except OperationalError as error:
        raise LedgerError(f"database unavailable: {_reason(store, error)}") from None
    initialised = ledger.is_initialised()
    if must_exist and not initialised:
        raise NotFound(f"no ledger at {store.shown}; run `ledger init` first")
    if check_key and initialised:
        ledger.check_cipher_key()
    return ledger


def _reason(store: Store, error: Exception) -> str:
    """The server's own reason (refused, no such database, bad password...): the
    connection pool only says that it timed out."""
    if store.backend == "postgres":
        import psycopg

        env = store.env
        try:
            psycopg.connect(
                host=env["POSTGRES_HOST"],
                port=env["POSTGRES_PORT"],
                dbname=env["POSTGRES_DBNAME"],
                user=env["POSTGRES_USER"],
                password=env["POSTGRES_PASSWORD"],
                connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
            ).close()
        except psycopg.Error as probe:
            return " ".join(str(probe).split("\n")[0].split())
    return str(error).splitlines()[0]
