"""Naming what is wrong: one originator's chain read in version order, and a sealed
segment's sketch difference turned into lines about records and versions."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

import orjson

from aggregates import actor, code_claim, directorate, record_events, refusal
from aggregates import seal as seal_events
from aggregates.base import LedgerEvent
from aggregates.chain import GENESIS
from ledger.integrity import Decode, EventTable, LogRow, literal, stand_in_hash, unhex
from ledger.mapper import is_known
from ledger.seal import SealEntry
from ledger.sketch import Entry, Sketch, topic_crc
from ledger.wording import counted

REGISTERED = actor.ActorRegistered.TOPIC
REFUSED = refusal.AttemptRefused.TOPIC
KINDS = {
    "Record": "record",
    "Actor": "actor",
    "CodeClaim": "code claim",
    "Directorate": "directorate",
    "Refusal": "refused attempt",
    "Seal": "seal chain",
}
# Every topic is registered (imported for that).
_MODULES = (actor, code_claim, directorate, record_events, refusal, seal_events)


def _known_topics() -> dict[int, str]:
    found: dict[int, str] = {}
    pending: list[type] = [LedgerEvent]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        topic = cls.__dict__.get("TOPIC")
        if isinstance(topic, str):
            found[topic_crc(topic)] = topic
    return found


TOPICS_BY_CRC = _known_topics()


@dataclass(frozen=True)
class Problem:
    subject: str  # "record <uuid> (code ...)", or "log"
    version: int | None
    text: str
    key: str | None = None

    def line(self) -> str:
        where = f" version {self.version}" if self.version is not None else ""
        return f"{self.subject}{where}: {self.text}"

    def as_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "originator": show_id(self.key) if self.key else None,
            "version": self.version,
            "problem": self.text,
            "line": self.line(),
        }


def show_id(key: str) -> str:
    if not isinstance(key, str):  # SQLite: an originator column set to a blob or NULL
        return literal(key)
    try:
        return str(UUID(hex=key))
    except ValueError:
        return key


def kind_of(topic: object) -> str:
    parts = str(topic).split("/")
    return (
        KINDS.get(parts[1], "aggregate") if len(parts) > 2 and parts[0] == "ledger" else "aggregate"
    )


@dataclass
class Chain:
    """What one originator's rows say, and what is wrong with them."""

    key: str
    kind: str = "aggregate"
    label: str | None = None
    found: list[tuple[int | None, str]] = field(default_factory=list)  # (version, text)
    rows: int = 0  # how many stored rows it has
    told: bool = False  # its kind was read from a body, not from a topic column

    @property
    def subject(self) -> str:
        ident = show_id(self.key)
        if self.label is None:
            return f"{self.kind} {ident}"
        if self.kind == "record":
            return f"{self.kind} {ident} (code {self.label})"
        return f"{self.kind} {ident} ({self.label})"

    def problems(self) -> list[Problem]:
        return [Problem(self.subject, v, text, self.key) for v, text in self.found]

    def note(self, version: int | None, text: str) -> None:
        self.found.append((version, text))

    def learn(self, topic: str, fields: dict[str, object]) -> None:
        """What a readable body of the chain tells: its kind (from the topic the body
        records, which its hash covers, over any topic column), and its label."""
        says = fields.get("topic")
        if not self.told and is_known(says):
            self.kind, self.told = kind_of(says), True
        elif self.kind == "aggregate":
            self.kind = kind_of(topic)
        label = None
        if topic == "ledger/Record/Arranged" or topic == code_claim.CodeClaimed.TOPIC:
            label = fields.get("code")
        elif topic == REGISTERED:
            label = fields.get("actor_id")
        if isinstance(label, str):
            self.label = label


def diagnose(
    key: str,
    rows: Sequence[LogRow],
    decode: Decode,
    bound: dict[str, str],
    owns: Callable[[str], bool],
) -> Chain:
    """Check one originator's rows in version order; say precisely what is wrong (``bound``:
    actor id -> its database role; ``owns``: whether a role owns the tables, EventTable.owns)."""
    chain = Chain(key)
    previous: tuple[int, str, int] | None = None  # version, hash, position
    unsure = False  # the previous row was stored under another version than its body's
    chain.rows = len(rows)
    for position, _, version, topic, state, role in rows:
        chain.kind = kind_of(topic) if chain.kind == "aggregate" else chain.kind
        # SQLite keeps whatever an UPDATE stores in the version column (text, a real, a blob,
        # NULL); the ledger never writes it. Such a row is noted without it (a position is a
        # rowid or a bigint: always a whole number).
        whole = isinstance(version, int)
        label = version if whole else None
        recorded, fields, mismatch = _read_row(chain, label, topic, key, state, decode)
        if fields is not None:
            chain.learn(str(fields.get("topic", topic)), fields)  # a body's kind over a column's
            _check_role(chain, label, topic, fields, role, bound, owns)
        if not whole:
            says = fields.get("originator_version") if fields is not None else None
            chain.note(
                says if isinstance(says, int) else None,
                f"stored at position {position} with version {literal(version)}, which is not "
                "a whole number (the row was rewritten)",
            )
            continue
        _check_sequence(chain, version, position, previous)
        if previous is not None and version == previous[0] + 1 and fields is not None:
            if not (unsure or mismatch) and fields.get("prev_hash") != previous[1]:
                chain.note(
                    version,
                    f"does not link to version {previous[0]} (previous-hash mismatch: version "
                    f"{previous[0]} was changed or replaced, or this event was forged)",
                )
        elif (
            previous is None
            and version == 1
            and fields is not None
            and not mismatch
            and fields.get("prev_hash") != GENESIS
        ):
            chain.note(version, "does not start a chain (previous hash is not 64 zeros)")
        unsure = mismatch or recorded is None  # nothing to link the next version to
        previous = (version, recorded or "", position)
    return chain


def _read_row(
    chain: Chain, version: int | None, topic: str, key: str, state: bytes, decode: Decode
) -> tuple[str | None, dict[str, object] | None, bool]:
    """(recorded hash, body fields, stored-elsewhere flag), noting what is wrong (version
    None: the row's version is no whole number, noted apart)."""
    try:
        body, recorded = decode(state)
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        chain.note(version, f"unreadable ({reason}): the stored bytes were changed")
        return None, None, False
    if hashlib.sha256(body).hexdigest() != recorded:
        chain.note(version, "payload changed (hash mismatch)")
    try:
        fields = orjson.loads(body)
        if not isinstance(fields, dict):
            raise ValueError("not an object")
    except ValueError:
        chain.note(version, "unreadable (its body is not a JSON object)")
        return recorded, None, False
    mismatch = _check_columns(chain, version, topic, key, fields)
    return recorded, fields, mismatch


def _check_columns(
    chain: Chain, version: int | None, topic: str, key: str, fields: dict[str, object]
) -> bool:
    """The body names its own originator, version and topic: do the row's columns agree?
    (Version None: not compared.)"""
    says_id = str(fields.get("originator_id", "")).replace("-", "")
    says_version, says_topic = fields.get("originator_version"), fields.get("topic")
    if says_id != key:
        chain.note(version, f"stored under this id, but its body belongs to {show_id(says_id)}")
    other_version = version is not None and says_version != version
    if not other_version and says_topic == topic:
        return says_id != key
    stored = f"version {version}" if other_version else ""
    says = f"version {says_version}" if other_version else ""
    if says_topic != topic:
        shown = topic if is_known(topic) else literal(topic)
        stored = f"{stored} of {shown}".strip().removeprefix("of ")
        says = f"{says} of {says_topic}".strip().removeprefix("of ")
    chain.note(version, f"stored as {stored}, but its body is {says} (swapped or moved)")
    return True


def _check_sequence(
    chain: Chain, version: int, position: int, previous: tuple[int, str, int] | None
) -> None:
    last = previous[0] if previous is not None else 0
    if version == last and previous is not None:
        chain.note(version, f"stored twice (positions {previous[2]} and {position})")
    elif version > last + 1:
        missing = (
            f"version {last + 1}" if version == last + 2 else f"versions {last + 1}-{version - 1}"
        )
        chain.note(
            last + 1,
            f"missing (deleted event; versions jump {last} -> {version})"
            if last
            else f"missing (deleted event; the stored history starts at version {version}: "
            f"{missing} gone)",
        )
    if previous is not None and position < previous[2]:
        chain.note(
            version,
            f"recorded at position {position}, before version {previous[0]} at position "
            f"{previous[2]} (reordered or inserted)",
        )


def _check_role(
    chain: Chain,
    version: int | None,
    topic: str,
    fields: dict[str, object],
    role: str | None,
    bound: dict[str, str],
    owns: Callable[[str], bool],
) -> None:
    """PostgreSQL: an actor bound to a role acts from that role only; one bound to none from
    the tables' owner only (R19: an officer's session acts only as its own actors, and the
    ledger never writes such an event from another role). A refused attempt is recorded
    from whichever session made it."""
    acting = fields.get("actor")
    if role is None or topic == REFUSED or not isinstance(acting, str):
        return
    expected = bound.get(acting)
    if expected is not None and expected != role:
        chain.note(
            version,
            f"posted as actor {acting}, who is bound to database role {expected}, "
            f"but written by database role {role} (forged actor, or written outside the ledger)",
        )
    elif expected is None and not owns(role):
        chain.note(
            version,
            f"posted as actor {acting}, who is bound to no database role, but written by "
            f"database role {role}, which does not own the ledger's tables (forged actor, or "
            "written outside the ledger)",
        )


def name_differences(
    seal_number: int, added: list[Entry], removed: list[Entry]
) -> list[tuple[str, int, str, int]]:
    """Sketch differences as (key, version, text, topic crc): current vs sealed events."""
    pairs: dict[tuple[str, int], tuple[list[Entry], list[Entry]]] = {}
    for entry in added:
        pairs.setdefault((entry.key, entry.version), ([], []))[0].append(entry)
    for entry in removed:
        pairs.setdefault((entry.key, entry.version), ([], []))[1].append(entry)
    lines: list[tuple[str, int, str, int]] = []
    for (key, version), (now, then) in pairs.items():
        crc = (now or then)[0].topic_crc
        while now and then:
            new, old = now.pop(0), then.pop(0)
            if new.hash == old.hash:
                text = (
                    f"moved from position {old.position} to {new.position} since seal "
                    f"{seal_number} (reordered)"
                )
            else:
                moved = f", now at position {new.position}" if new.position != old.position else ""
                text = (
                    f"changed since seal {seal_number}: its hash was {old.hash[:16]}…, is now "
                    f"{new.hash[:16]}…{moved} (rewritten)"
                )
            lines.append((key, version, text, crc))
        for old in then:
            text = f"missing since seal {seal_number} (deleted; it was at position {old.position})"
            lines.append((key, version, text, crc))
        for new in now:
            text = (
                f"not covered by seal {seal_number}: inserted at position {new.position} "
                "(forged, or moved from elsewhere)"
            )
            lines.append((key, version, text, crc))
    return lines


# -- sealed segments -------------------------------------------------------------

MAX_NAMED_SEGMENTS = 20


def name_segments(
    table: EventTable, failed: list[tuple[SealEntry, int]], chains: dict[str, Chain], head: int
) -> list[Problem]:
    """For each sealed segment whose digest differs: a log line, then each differing event
    named from the seal's sketch (what was there when sealed vs what is there now)."""
    problems: list[Problem] = []
    for seal, now_count in failed[:MAX_NAMED_SEGMENTS]:
        where = (
            f"positions {seal.previous_position + 1}-{seal.position}"
            if seal.previous_position
            else f"a position up to {seal.position}"
        )
        count = (
            f"; it holds {counted(now_count, 'event')}, the seal counted {seal.events_in_segment}"
            if now_count != seal.events_in_segment
            else ""
        )
        text = (
            f"digest at position {seal.position} differs from seal {seal.number} (an event "
            f"at {where} was changed, inserted, deleted or reordered{count})"
        )
        problems.append(Problem("log", None, text))
        problems.extend(_named(table, seal, chains, head))
    return problems


def _named(
    table: EventTable, seal: SealEntry, chains: dict[str, Chain], head: int
) -> list[Problem]:
    try:
        sealed = Sketch.decode(seal.sketch)
    except ValueError:
        return [Problem("log", None, f"seal {seal.number}'s sketch is unreadable")]
    current = Sketch()
    after = seal.previous_position or None  # the first seal covers everything before it
    for position, key, version, topic, recorded in table.hashes(after, min(seal.position, head)):
        try:
            event_hash = unhex(recorded or "")
        except ValueError:
            event_hash = stand_in_hash(f"{key}:{position}".encode())
        try:
            current.add(position, key, version, topic, event_hash)
        except ValueError:  # a column the ledger never writes: the scan found the row wrong,
            continue  # its originator's diagnosis names it
    added, removed, complete = current.minus(sealed).peel()
    problems = []
    for key, version, text, crc in name_differences(seal.number, added, removed):
        if key not in chains:
            chains[key] = describe(table, key, crc)
        problems.append(Problem(chains[key].subject, version, text, key))
    if not complete:
        problems.append(
            Problem(
                "log",
                None,
                f"more events differ up to position {seal.position} than seal "
                f"{seal.number} can name",
            )
        )
    return problems


def describe(table: EventTable, key: str, crc: int) -> Chain:
    """Kind and label of an originator, from what is left of it."""
    chain = Chain(key, kind_of(TOPICS_BY_CRC.get(crc, "")))
    for _, _, _, topic, state, _ in table.chain(key):
        try:
            chain.learn(topic, orjson.loads(table.decode(state)[0]))
        except Exception:
            continue
    return chain


def seal_problems(
    seals: list[SealEntry],
    given_position: int | None,
    given_digest: str,
    given_matches: bool | None,
    head: int,
) -> list[Problem]:
    """A truncated tail, and a digest given by hand that differs."""
    problems: list[Problem] = []
    if seals:
        last = max(seals, key=lambda s: s.position)
        if last.position > head:
            problems.append(
                Problem(
                    "log",
                    None,
                    f"head position {head} is before sealed position {last.position} of seal "
                    f"{last.number} (truncated tail)",
                )
            )
    if given_position is None:
        return problems
    if given_position > head:
        text = (
            f"head position {head} is before the given position {given_position} (truncated tail)"
        )
        problems.append(Problem("log", None, text))
    elif given_matches is False:
        text = (
            f"digest at position {given_position} differs from the given digest (an event up to "
            "that position was changed, inserted, deleted or reordered)"
        )
        for seal in seals:
            if seal.position == given_position and seal.digest != given_digest:
                text += (
                    f"; seal {seal.number} stored for that position records {seal.digest[:16]}…: "
                    "the stored seals were rewritten too"
                )
        problems.append(Problem("log", None, text))
    return problems
