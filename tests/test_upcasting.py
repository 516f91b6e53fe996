"""Stored history stays readable when an event changes, and the mapper round-trips events.

An upcast: ``Repaired`` gains a ``method`` field in a version 2 defined here. Events stored
at version 1 are read back through the ledger's mapper as version 2 with the upcast value,
and keep the hash they were recorded with, so the hash chain still links. The test version
is put under the real topic only for the test, and the registry is restored afterwards.

A round trip: any ``Received`` event, through ``to_stored_event`` and ``to_domain_event``
(plain and encrypted), equals the original, re-encodes to the same canonical bytes, and
keeps its hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest
from eventsourcing.utils import _topic_cache, _topic_cache_lock, resolve_topic
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aggregates.chain import GENESIS, digest
from aggregates.errors import InvalidInput
from aggregates.record_events import Received, Repaired
from aggregates.rules import MAX_PAGES
from aggregates.values import Carrier, Secrecy, parse_moment
from ledger import requests as rq
from ledger.application import Ledger, open_ledger
from ledger.config import store_from_url
from projections.fields import TopicFields


class RepairedV2(Repaired):
    """Version 2 of ``Repaired``: it names how the record was repaired."""

    class_version: ClassVar[int] = 2
    method: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> dict[str, Any]:
        state["method"] = "not recorded"
        return state


@contextmanager
def topic_resolves_to(topic: str, cls: type) -> Iterator[None]:
    """Within the block, ``topic`` resolves to ``cls``; the registry is restored after."""
    with _topic_cache_lock:
        original = _topic_cache[topic]
        _topic_cache[topic] = cls
    try:
        yield
    finally:
        with _topic_cache_lock:
            _topic_cache[topic] = original


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    app = open_ledger(sqlite_url, must_exist=False)
    app.create_tables()
    app.initialise("dir", "Director")
    for actor_id, role in (("arch", "archivist"), ("liai", "liaison"), ("lead", "leader")):
        app.execute(
            rq.AddActor(actor_id=actor_id, name=actor_id, role=[role], clearance="secret"), "dir"
        )
    yield app
    app.close()


def repaired_record(ledger: Ledger) -> str:
    """A record whose history holds a Repaired event stored at version 1."""
    record = ledger.execute(
        rq.Receive(
            title="Ledger of deeds 契约簿",
            department="Office",
            year=2000,
            carrier="paper",
            pages=40,
            secrecy="public",
            transferred_by="liai",
        ),
        "arch",
    )["record"]
    steps: list[rq.Request] = [
        rq.Arrange(record=record, category="business", retention="30y", code="Z001-YW-0001"),
        rq.Shelve(record=record, location="A1-01-1-1"),
        rq.Lend(record=record, to="liai", due="2099-01-01", purpose="p", approved_by="lead"),
        rq.Return(record=record, pages=40, condition="damaged"),
        rq.Repair(record=record, note="spine rebound"),
    ]
    for step in steps:
        ledger.execute(step, "arch")
    return str(record)


def stored_repairs(ledger: Ledger) -> list[Any]:
    return list(ledger.recorder.select_notifications(1, 100, topics=[Repaired.TOPIC]))


def test_a_version_1_event_is_read_as_version_2_with_its_recorded_hash(ledger: Ledger) -> None:
    record_id = repaired_record(ledger)
    (stored,) = stored_repairs(ledger)
    original = ledger.mapper.to_domain_event(stored)
    body, recorded_hash = ledger.mapper.decode_state(stored.state)
    assert type(original) is Repaired
    assert b'"class_version":1' in body
    head_before = ledger.record(record_id).chain_head

    with topic_resolves_to(Repaired.TOPIC, RepairedV2):
        upcast = ledger.mapper.to_domain_event(stored)
        assert type(upcast) is RepairedV2
        assert upcast.method == "not recorded"
        assert (upcast.note, upcast.originator_version) == ("spine rebound", 6)
        assert (upcast.occurred_at, upcast.actor) == (original.occurred_at, "arch")
        # The hash is the one recorded over the version 1 body, so the chain still links.
        assert upcast.event_hash == recorded_hash == original.event_hash
        assert digest(upcast.body()) != recorded_hash  # re-encoding v2 would not match
        replayed = ledger.record(record_id)
        assert (replayed.chain_head, replayed.discrepancy) == (head_before, None)

        # New events are written at version 2 and read back without upcasting.
        ledger.execute(
            rq.Lend(record=record_id, to="liai", due="2099-01-01", purpose="p", approved_by="lead"),
            "arch",
        )
        ledger.execute(rq.Return(record=record_id, pages=39, condition="intact"), "arch")
        record = ledger.record(record_id)
        record.trigger_event(
            RepairedV2,
            actor="arch",
            occurred_at=datetime.now(tz=UTC),
            note="page restored",
            method="tissue repair",
        )
        ledger.save(record)
        first, second = stored_repairs(ledger)
        assert ledger.mapper.to_domain_event(first).method == "not recorded"
        newer = ledger.mapper.to_domain_event(second)
        assert (type(newer), newer.method) == (RepairedV2, "tissue repair")
        assert b'"class_version":2' in ledger.mapper.decode_state(second.state)[0]
        assert ledger.record(record_id).discrepancy is None

    assert resolve_topic(Repaired.TOPIC) is Repaired
    assert type(ledger.mapper.to_domain_event(stored)) is Repaired


# -- round trip ----------------------------------------------------------------------

whole_minute_offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1900, 1, 2),
    max_value=datetime(2100, 1, 1),
    timezones=st.one_of(st.just(UTC), whole_minute_offsets),
)
actor_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
texts = st.one_of(
    st.text(min_size=1, max_size=60),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=30),
)
hashes = st.one_of(st.just(GENESIS), st.binary(min_size=32, max_size=32).map(bytes.hex))


@st.composite
def received_events(draw: st.DrawFn) -> Received:
    return Received(
        originator_id=draw(st.uuids()),
        originator_version=1,
        originator_topic="ledger/Record",
        timestamp=draw(moments),
        occurred_at=draw(moments),
        actor=draw(actor_ids),
        prev_hash=draw(hashes),
        title=draw(texts),
        department=draw(texts),
        year=draw(st.integers(1000, 9999)),
        carrier=draw(st.sampled_from(Carrier)),
        pages=draw(st.integers(1, MAX_PAGES)),
        secrecy=draw(st.sampled_from(Secrecy)),
        transferred_by=draw(actor_ids),
        late=draw(st.booleans()),
    )


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Ledger]]:
    from eventsourcing.cryptography import AESCipher

    folder: Path = tmp_path_factory.mktemp("round-trip")
    plain = Ledger(store_from_url(f"sqlite:///{folder}/plain.db"))
    key = AESCipher.create_key(32)
    encrypted = Ledger(store_from_url(f"sqlite:///{folder}/secret.db", cipher_key=key))
    yield [plain, encrypted]
    plain.close()
    encrypted.close()


@settings(max_examples=100, deadline=None)
@given(original=received_events())
def test_received_round_trips_through_the_mapper(ledgers: list[Ledger], original: Received) -> None:
    for ledger in ledgers:
        stored = ledger.mapper.to_stored_event(original)
        assert (stored.topic, stored.originator_version) == (Received.TOPIC, 1)
        assert UUID(str(stored.originator_id)) == original.originator_id
        restored = ledger.mapper.to_domain_event(stored)
        assert type(restored) is Received
        assert restored == original
        assert restored.event_hash == original.event_hash
        # Encoding the restored event gives the same bytes: the hash can be re-checked.
        assert restored.body() == original.body()
        assert digest(restored.body()) == original.event_hash
        assert restored.occurred_at.utcoffset() == original.occurred_at.utcoffset()


def test_an_offset_in_seconds_is_refused_rather_than_silently_rounded() -> None:
    """The canonical encoding writes +HH:MM; a +05:30:15 time would come back 15 s off."""
    odd = datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30, seconds=15)))
    fields: dict[str, Any] = {
        "originator_id": UUID(int=1),
        "originator_version": 1,
        "originator_topic": "ledger/Record",
        "timestamp": datetime.now(tz=UTC),
        "actor": "arch",
        "prev_hash": GENESIS,
        "title": "t",
        "department": "d",
        "year": 2000,
        "carrier": "paper",
        "pages": 1,
        "secrecy": "public",
        "transferred_by": "liai",
        "late": False,
    }
    with pytest.raises(ValidationError, match="not whole minutes"):
        Received(**fields, occurred_at=odd)
    # In text (a stored body, a bulk line), pydantic's ISO 8601 parser refuses it itself.
    with pytest.raises(ValidationError, match="occurred_at"):
        Received(**fields, occurred_at="2020-01-01T00:00:00+05:30:15")
    with pytest.raises(InvalidInput, match=r"UTC offset \+05:30:15 is not whole minutes"):
        parse_moment("2020-01-01T00:00:00+05:30:15")
    with pytest.raises(InvalidInput, match="UTC offset -05:00:30 is not"):
        parse_moment("2022-05-04T10:00:00-05:00:30")
    assert Received(
        **fields, occurred_at=odd.replace(tzinfo=timezone(timedelta(hours=5, minutes=30)))
    )
    assert parse_moment("2020-01-01T00:00:00+05:45").utcoffset() == timedelta(hours=5, minutes=45)


def test_projections_read_a_version_1_event_upcast(ledger: Ledger) -> None:
    """The projections' decoder of only the fields they read upcasts old bodies too."""
    repaired_record(ledger)
    (stored,) = stored_repairs(ledger)
    body = ledger.mapper.decode_state(stored.state)[0]
    now = TopicFields(Repaired.TOPIC, {"note"})
    assert (now.from_envelope(stored.state).note, now.from_body(body).class_version) == (
        "spine rebound",
        1,
    )
    with topic_resolves_to(Repaired.TOPIC, RepairedV2):
        later = TopicFields(Repaired.TOPIC, {"note", "method"})
        read = later.from_envelope(stored.state)
        assert (read.note, read.method, read.class_version) == ("spine rebound", "not recorded", 2)
        assert later.from_body(body) == read
        assert read.originator_version == 6
