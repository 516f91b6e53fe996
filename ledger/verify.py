"""`ledger verify`: recompute every hash, link and seal, streaming the log once.

The scan (ledger.scan) reads the event table in log order, on a long log in two processes
(ledger.scan_split). Originators with anything wrong are then read in version
order and diagnosed precisely (ledger.diagnosis); a sealed segment whose digest differs is
named event by event from the seal's sketch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson

from aggregates.chain import ENVELOPE_START, GENESIS
from aggregates.code_claim import code_uuid
from aggregates.errors import InvalidInput, NotFound
from ledger.application import Ledger
from ledger.diagnosis import REGISTERED, Chain, Problem, diagnose, name_segments, seal_problems
from ledger.integrity import PAGE, EventTable, open_table
from ledger.scan import LogScan
from ledger.scan_split import split_scan
from ledger.seal import Checkpoint, SealEntry, read_seals

MAX_DIAGNOSED = 2_000


@dataclass(frozen=True)
class Given:
    """A digest written down from a seal: --digest HEX --position N."""

    position: int
    digest: str


@dataclass
class Report:
    head: int = 0
    events: int = 0
    seconds: float = 0.0
    encrypted: bool = False
    seals: list[SealEntry] = field(default_factory=list)
    digest: str | None = GENESIS  # of the whole log up to head; None if not every event read
    given: Given | None = None
    given_matches: bool | None = None
    problems: list[Problem] = field(default_factory=list)
    undiagnosed: int = 0
    unreadable: int = 0
    record: str | None = None

    @property
    def intact(self) -> bool:
        return not self.problems and not self.undiagnosed

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def last_seal(self) -> SealEntry | None:
        return self.seals[-1] if self.seals else None

    def as_dict(self, limit: int) -> dict[str, Any]:
        last = self.last_seal
        return {
            "intact": self.intact,
            "record": self.record,
            "events": self.events,
            "head": self.head,
            "digest": self.digest,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate),
            "encryption": "on" if self.encrypted else "off",
            "seals": len(self.seals),
            "last_seal": last.as_dict() if last else None,
            "chain_only_after": last.position if last else 0,
            "given": {
                "position": self.given.position,
                "digest": self.given.digest,
                "matches": self.given_matches,
            }
            if self.given
            else None,
            "unreadable": self.unreadable,
            "problems": [p.as_dict() for p in self.problems[:limit]],
            "more_problems": max(0, len(self.problems) - limit) + self.undiagnosed,
        }


def parse_given(digest: str | None, position: int | None) -> Given | None:
    if digest is None and position is None:
        return None
    if digest is None or position is None:
        raise InvalidInput("--digest and --position go together (both as `ledger seal` printed)")
    digest = digest.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidInput("--digest is 64 hexadecimal digits, as `ledger seal` printed it")
    if position < 0:
        raise InvalidInput("--position is a log position (0 or more)")
    return Given(position, digest)


def check_key(ledger: Ledger) -> None:
    """LEDGER_CIPHER_KEY (or its absence) suits the store if it reads at least one event;
    if it reads none (no key on an encrypted store, a key on a plain one, the wrong key),
    it is refused as every command refuses it (exit 2), rather than every event reported
    changed. Unlike the other commands' check of the first event, a changed event (the
    first included) never stops `verify`: the rest still read, and it is reported."""
    with open_table(ledger) as table:
        head = table.head()
        first = None
        for after in range(0, head, PAGE):
            # A page read to its end (a stream left open would hold the connection).
            for row in list(table.rows(after, after + PAGE)):
                if table.recorded_hash(row[4]) is not None:
                    return
                first = row[4] if first is None else first
    if first is None:
        return  # an empty log
    mapper: Any = ledger.mapper
    if mapper.cipher is None:
        raise InvalidInput(
            "the store is encrypted: set LEDGER_CIPHER_KEY to its key (no event can be read "
            "without it)"
        )
    if isinstance(first, bytes) and first.startswith(ENVELOPE_START):
        raise InvalidInput("the store is not encrypted: unset LEDGER_CIPHER_KEY")
    raise InvalidInput("LEDGER_CIPHER_KEY is not this store's key: it decrypts none of its events")


def resolve_record(ledger: Ledger, ref: str) -> UUID:
    """A record's id from its id or archival code (read from the table, not the library)."""
    try:
        return UUID(ref)
    except ValueError:
        pass
    with open_table(ledger) as table:
        for _, _, _, _, state, _ in table.chain(code_uuid(ref).hex)[:1]:
            try:
                return UUID(str(orjson.loads(table.decode(state)[0])["record_id"]))
            except Exception:
                break
    raise NotFound(f"record {ref!r} not found (no record has that id or archival code)")


def verify_log(ledger: Ledger, *, record: UUID | None = None, given: Given | None = None) -> Report:
    """Check the whole log (or one record's chain and the log's digests)."""
    started = time.perf_counter()
    report = Report(given=given, record=str(record) if record else None)
    with open_table(ledger) as table:
        report.encrypted = table.encrypted
        report.head = table.head()
        _, chains = check_table(table, report, record=record)
    if record is not None:
        report.problems = [p for p in report.problems if p.key in (None, record.hex)]
        is_named = any(p.key == record.hex for p in report.problems)
        if not chains[record.hex].rows and not is_named:
            raise NotFound(f"record {record} not found (no event has that id)")
    report.seconds = time.perf_counter() - started
    return report


def check_table(
    table: EventTable, report: Report, *, record: UUID | None = None
) -> tuple[LogScan, dict[str, Chain]]:
    """Every check of the log up to ``report.head`` in ``table``'s snapshot (or of one
    record's chain and the log's digests), its problems added to ``report``. `ledger seal`
    runs it too, before it seals."""
    given = report.given
    report.seals, unusable = read_seals(table, report.head)
    report.problems.extend(Problem("log", None, text) for text in unusable)
    checkpoints = Checkpoint.plan(
        report.seals, given.position if given else None, given.digest if given else ""
    )
    scan = LogScan(table, checkpoints, full=record is None)
    if record is not None and table.backend == "postgres":
        scan.bound = bindings(table, report.head)
    scan.run(report.head, split_scan(table, report.head) if record is None else None)
    report.events, report.unreadable = scan.count, scan.unreadable
    # An event that could not be read has no hash to chain: the digest would be made up.
    report.digest = None if scan.unreadable else scan.final_digest.hex()
    # A position past the head was never reached: the log's digest is not the one there.
    beyond = given is not None and given.position > report.head
    report.given_matches = None if beyond else scan.given_matches
    suspects = [record.hex] if record else scan.ordered_suspects()
    chains: dict[str, Chain] = {}
    for key in suspects[:MAX_DIAGNOSED]:
        chains[key] = diagnose(key, table.chain(key), table.decode, scan.bound, table.owns)
        report.problems.extend(chains[key].problems())
    report.undiagnosed = max(0, len(suspects) - MAX_DIAGNOSED)
    named = name_segments(table, scan.failed, chains, report.head)
    report.problems.extend(p for p in named if _new(p, report.problems))
    report.problems.extend(
        seal_problems(
            report.seals,
            given.position if given else None,
            given.digest if given else "",
            scan.given_matches,
            report.head,
        )
    )
    return scan, chains


def bindings(table: EventTable, head: int) -> dict[str, str]:
    """Actor id -> the database role it is bound to, from the actors' registrations."""
    bound: dict[str, str] = {}
    for row in table.with_topic(REGISTERED, head):
        try:
            fields = orjson.loads(table.decode(row[4])[0])
        except Exception:
            continue  # an unreadable registration is diagnosed with its actor's chain
        if fields.get("db_role"):
            bound[str(fields.get("actor_id"))] = str(fields["db_role"])
    return bound


def _new(problem: Problem, known: list[Problem]) -> bool:
    """An event the sketch names that its chain's diagnosis already reported is not repeated."""
    return problem.key is None or not any(
        p.key == problem.key and p.version == problem.version for p in known
    )
