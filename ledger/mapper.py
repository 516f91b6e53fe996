"""Maps pydantic events to stored events: the hash-chain envelope, and upcasting on read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import TopicError, resolve_topic

# Every aggregate's topics resolve here, the seal chain's too: a record id naming the
# chain failed to load with a TopicError instead of not being a record.
import aggregates.actor
import aggregates.code_claim
import aggregates.directorate
import aggregates.record_events
import aggregates.refusal
import aggregates.seal  # noqa: F401  (these register their topics)
from aggregates.base import LedgerEvent
from aggregates.chain import envelope, open_envelope
from aggregates.errors import IntegrityFailure

# What reading a stored event raises when its bytes or its topic were changed (not JSON,
# fields missing or of the wrong type, a topic no class has).
UNREADABLE = (ValueError, TypeError, KeyError, TopicError)


def _event_topics() -> frozenset[str]:
    """The topic of every event class of the aggregates: all that the ledger writes."""
    found: set[str] = set()
    classes: list[type[LedgerEvent]] = [LedgerEvent]
    while classes:
        cls = classes.pop()
        classes.extend(cls.__subclasses__())
        if "TOPIC" in cls.__dict__:
            found.add(cls.TOPIC)
    return frozenset(found)


# A stored row with any other topic (its topic column rewritten, or corrupted) is an event
# the ledger cannot read, whatever reads it: a rebuild, a check, a catch-up, a seal.
KNOWN_TOPICS = _event_topics()


def is_known(topic: object) -> bool:
    """Whether ``topic`` (a stored topic column: SQLite keeps any type) is one the ledger
    writes; no other topic is ever resolved to a class."""
    return isinstance(topic, str) and topic in KNOWN_TOPICS


def shown(topic: object) -> str:
    """A stored topic as an error names it: a known one as it is, any other value as SQL
    writes it (quoted text, a blob in hex, NULL)."""
    from ledger.integrity import literal  # (imports the application, which imports this)

    return str(topic) if is_known(topic) else literal(topic)


def unknown_topic(position: object, topic: object) -> IntegrityFailure:
    """``unreadable`` for the row at ``position``, whose topic the ledger never writes."""
    return unreadable(ValueError(f"unknown topic {shown(topic)}"), f"position {position}: ")


def unreadable(error: BaseException, where: str = "") -> IntegrityFailure:
    """The one-line error (exit 6) for a stored event that cannot be read."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return IntegrityFailure(
        f"a stored event could not be read ({where}{reason}): its bytes were changed, or it "
        "was written with another key; `ledger verify` names every such event"
    )


def upcast(cls: type[LedgerEvent], fields: dict[str, Any], stored_version: int) -> dict[str, Any]:
    """Bring a stored body up to the class's version with its upcast_vN_vN+1 methods."""
    for version in range(stored_version, cls.class_version):
        fields = getattr(cls, f"upcast_v{version}_v{version + 1}")(fields)
    return fields


class LedgerMapper(Mapper):  # type: ignore[type-arg]
    def stored_state(self, event: LedgerEvent) -> bytes:
        """The bytes stored for an event: its envelope, compressed and encrypted if so
        configured."""
        state = envelope(event.body(), event.event_hash)
        if self.compressor:
            state = self.compressor.compress(state)
        if self.cipher:
            state = self.cipher.encrypt(state)
        return state

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        event: LedgerEvent = domain_event
        return StoredEvent(
            originator_id=event.originator_id,
            originator_version=event.originator_version,
            topic=event.TOPIC,
            state=self.stored_state(event),
        )

    def to_rows(
        self, events: list[LedgerEvent], stored_id: Callable[[UUID], Any]
    ) -> list[tuple[Any, int, str, bytes]]:
        """The event table's rows (id as the recorder stores it, version, topic, state)
        of many events: bulk posting's write path, without a StoredEvent for each."""
        state = self.stored_state
        return [
            (stored_id(e.originator_id), e.originator_version, e.TOPIC, state(e)) for e in events
        ]

    def decode_state(self, state: bytes) -> tuple[bytes, str]:
        """Stored bytes -> (canonical body, recorded hash)."""
        if self.cipher:
            state = self.cipher.decrypt(state)
        if self.compressor:
            state = self.compressor.decompress(state)
        return open_envelope(state)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.event_from(stored_event.topic, stored_event.state)

    def event_from(self, topic: str, state: bytes) -> Any:
        """The event a stored row holds, validated, upcast to its class's version."""
        # Not decrypted, no envelope, not JSON, not the topic's fields: a key, or a change.
        # (The store's first event was read with this key when it was opened.)
        try:
            # A topic names a class to import: only the ledger's own are ever resolved, never
            # whatever the topic column holds (a module path would be imported and run).
            if not is_known(topic):
                raise ValueError(f"unknown topic {shown(topic)}")
            if self.cipher or self.compressor:
                body, recorded_hash = self.decode_state(state)
            else:
                body, recorded_hash = open_envelope(state)
            fields = orjson.loads(body)
            # The body records its topic, which its hash covers; the column is not covered.
            says = fields.pop("topic", None)
            if says != topic:
                raise ValueError(f"stored as {topic}, but its body is {shown(says)}")
            stored_version = fields.pop("class_version", 1)
            cls: type[LedgerEvent] = resolve_topic(topic)
            if stored_version < cls.class_version:
                fields = upcast(cls, fields, stored_version)
            return cls.from_store(fields, recorded_hash)
        except UNREADABLE as error:
            raise unreadable(error) from None
