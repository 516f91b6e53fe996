"""Property: for any valid history, the projections kept up incrementally equal a rebuild.

Hypothesis draws a history of commands (refused ones included: they record refused
attempts) interleaved with catch-ups of random page sizes, with projection objects
reused (their caches kept, and kept tiny) or made afresh, and sometimes event by event
through the library's ``process_event``. At the end the live tables must equal tables
rebuilt from the events alone, the catalog must agree with the aggregates, and the audit
trail's uses and the loan register with each record's events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import Tracking
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from aggregates.errors import LedgerError
from ledger import requests as rq
from ledger.application import Ledger, open_ledger
from projections import audit, catalog, loans
from projections.base import LedgerProjection
from projections.rebuild import check
from projections.runner import PROJECTIONS, Runner, open_projections
from projections.views import APPLICATION
from tests.cli import APPRAISER_1, APPRAISER_2, ARCHIVIST, BORROWER, EXTERNAL, LEADER, WITNESS
from tests.pg import fresh_database, require_pg
from tests.test_projections_history import new_office

START = datetime(2015, 1, 1, tzinfo=UTC)
ZONES = [timezone(timedelta(hours=8)), UTC, timezone(timedelta(hours=-5))]
NAMES = list(PROJECTIONS)
LEVELS = ["public", "internal", "confidential", "secret", "top-secret"]
DECISIONS = ["destroy", "retain", "declassify", "open"]

index = st.integers(min_value=0, max_value=4)
approver = st.sampled_from([LEADER, LEADER, LEADER, WITNESS, None])
reader = st.sampled_from([BORROWER, BORROWER, EXTERNAL])
retention = st.sampled_from(["10y", "30y", "permanent"])
field = st.sampled_from(["title", "pages", "year", "department"])
USE = st.tuples(reader, approver, st.booleans(), st.integers(-3, 40))
# Any command on any record: most are refused or invalid, which is part of the point.
RAW = st.one_of(
    st.tuples(st.just("arrange"), index, retention),
    st.tuples(st.sampled_from(["shelve", "repair", "destroy"]), index),
    st.tuples(st.just("relocate"), index, st.integers(1, 9)),
    st.tuples(st.sampled_from(["consult", "copy", "lend"]), index).flatmap(
        lambda t: USE.map(lambda use: (*t, *use))
    ),
    st.tuples(st.just("return"), index, st.integers(0, 30), st.booleans()),
    st.tuples(st.just("loss"), index, st.integers(1, 30)),
    st.tuples(st.just("appraise"), index, st.sampled_from(DECISIONS)),
    st.tuples(st.just("correct"), index, field),
)
# The command that usually comes next in the record's life (see History.advance).
ADVANCE = st.tuples(
    st.just("advance"), index, st.integers(0, 99), retention, USE, st.integers(-2, 1),
    st.booleans(), st.sampled_from(DECISIONS), field,
)  # fmt: skip
SECRECY = st.sampled_from(["public", "public", "internal", "internal", *LEVELS[2:]])
RECEIVE = st.tuples(st.just("receive"), SECRECY, st.integers(1990, 2014), st.integers(1, 30))
MAX_RECORDS = 4
RUN = st.one_of(
    st.tuples(st.just("catch_up"), st.integers(1, 12), st.booleans(), st.sampled_from(NAMES)),
    st.tuples(st.just("one_by_one"), st.sampled_from(NAMES)),
)
# Weighted: mostly lives moving on; some slips; catch-ups now and then.
WEIGHTS = [RECEIVE, ADVANCE, ADVANCE, ADVANCE, ADVANCE, ADVANCE, ADVANCE, RAW, RUN, RUN]
STEP = st.integers(0, len(WEIGHTS) - 1).flatmap(lambda n: WEIGHTS[n])


class History:
    """Runs drawn steps against a ledger, keeping the live projections up as it goes."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.records: list[UUID] = []
        self.clock = 0
        self.live = open_projections(ledger, NAMES)

    def when(self) -> datetime:
        self.clock += 1
        return (START + timedelta(hours=7 * self.clock)).astimezone(ZONES[self.clock % 3])

    def run(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        if kind == "catch_up":
            self.catch_up(*step[1:])
        elif kind == "one_by_one":
            self.one_by_one(step[1])
        elif kind == "receive" and len(self.records) < MAX_RECORDS:
            self.execute(self.receive(*step[1:]), ARCHIVIST)
        elif self.records and kind != "receive":
            record = self.records[step[1] % len(self.records)]
            command = self.advance(record, *step[2:]) if kind == "advance" else step
            if command is not None:
                common = {"record": str(record), "occurred_at": self.when()}
                self.execute(*build(command[0], command[2:], common, self.records.index(record)))

    def execute(self, request: rq.Request, actor: str) -> None:
        # Refused (R5-R8 and R19 are recorded as attempts) or invalid: both are fine.
        with suppress(LedgerError):
            self.ledger.execute(request, actor)

    def receive(self, secrecy: str, year: int, pages: int) -> rq.Receive:
        record = UUID(int=len(self.records) + 1)
        self.records.append(record)
        return rq.Receive(record=record, title=f"题名{len(self.records)}", department="办公室",
                          year=year, carrier="paper", pages=pages, secrecy=secrecy,
                          transferred_by="liaison", occurred_at=self.when())  # fmt: skip

    def advance(
        self, record_id: UUID, dice: int, keep: str, use: tuple[Any, ...], delta: int,
        damaged: bool, decision: str, change: str,
    ) -> tuple[Any, ...] | None:  # fmt: skip
        """The next command of the record's life (with a few slips: refusals)."""
        record = self.ledger.record(str(record_id))
        uses = ["consult", "copy", "lend"]
        if record.status == "received":
            return ("correct", 0, change) if dice < 10 else ("arrange", 0, keep)
        if record.status == "arranged":
            return ("shelve", 0)
        if record.status == "on-loan":
            pages = max(0, record.pages + min(delta, 0))
            return (uses[dice % 3], 0, *use) if dice < 15 else ("return", 0, pages, damaged)
        if record.status == "destroyed":
            return None
        if record.discrepancy:
            return ("repair", 0) if dice % 2 else ("loss", 0, 1 + dice % 20)
        if record.appraisal and record.appraisal["decision"] == "destroy" and dice < 60:
            return ("destroy", 0)
        if dice < 60:
            return (uses[dice % 3], 0, *use)
        if dice < 70:
            return ("relocate", 0, 1 + dice % 9)
        return ("appraise", 0, decision) if dice < 90 else ("correct", 0, change)

    def catch_up(self, page_size: int, fresh: bool, name: str) -> None:
        if fresh:
            self.live = open_projections(self.ledger, NAMES)
        chosen = [p for p in self.live if p.name != name] if page_size % 3 == 0 else self.live
        Runner(self.ledger, chosen, page_size=page_size).run()

    def one_by_one(self, name: str) -> None:
        """The library's way: pydantic events and process_event(), one at a time."""
        projection = next(p for p in self.live if p.name == name)
        start = (projection.position or 0) + 1
        for notification in self.ledger.recorder.select_notifications(
            start, 50, topics=projection.topics
        ):
            event = self.ledger.mapper.to_domain_event(notification)
            projection.process_event(event, Tracking(APPLICATION, notification.id))


def build(
    kind: str, args: tuple[Any, ...], common: dict[str, Any], n: int
) -> tuple[rq.Request, str]:
    day = common["occurred_at"].date()
    if kind == "arrange":
        return rq.Arrange(
            category="business", retention=args[0], code=f"P-{n:03d}", **common
        ), ARCHIVIST
    if kind == "shelve":
        return rq.Shelve(location="A1-01-1-1", **common), ARCHIVIST
    if kind == "relocate":
        return rq.Relocate(location=f"B{args[0]}-01-1-1", **common), ARCHIVIST
    if kind in ("consult", "copy", "lend"):
        who, approved, with_letter, due_in = args
        use: dict[str, Any] = {
            "purpose": "查考",
            "letter": "函〔2015〕1号" if with_letter else None,
        }
        if kind == "consult":
            return rq.Consult(reader=who, approved_by=approved, **use, **common), ARCHIVIST
        approved = approved or WITNESS  # copy and lend name an approver (a leader, or not)
        if kind == "copy":
            return rq.Copy(reader=who, pages=1, approved_by=approved, **use, **common), ARCHIVIST
        due = day + timedelta(days=due_in)
        return rq.Lend(to=who, due=due, approved_by=approved, **use, **common), ARCHIVIST
    if kind == "return":
        condition = "damaged" if args[1] else "intact"
        return rq.Return(pages=args[0], condition=condition, **common), ARCHIVIST
    if kind == "repair":
        return rq.Repair(note="修复", **common), ARCHIVIST
    if kind == "loss":
        return rq.ReportLoss(pages=args[0], note="遗失", **common), ARCHIVIST
    if kind == "appraise":
        return rq.Appraise(decision=args[0], appraiser=[APPRAISER_1, APPRAISER_2], basis="依据",
                           review_on=date(2030, 1, 1) if args[0] == "retain" else None,
                           **common), APPRAISER_1  # fmt: skip
    if kind == "destroy":
        return rq.Destroy(approved_by=LEADER, witness=[WITNESS, APPRAISER_2], register=f"XH-{n}",
                          **common), ARCHIVIST  # fmt: skip
    value = {"title": "更正题名", "pages": 12, "year": 1999, "department": "档案室"}[args[0]]
    return rq.Correct(version=1, reason="更正", set={args[0]: value}, **common), ARCHIVIST


@contextmanager
def fresh_ledger(backend: str, folder: Path) -> Iterator[Ledger]:
    if backend == "sqlite":
        ledger = open_ledger(f"sqlite:///{folder}/{uuid4().hex}.db", must_exist=False)
        new_office(ledger)
        yield ledger
        ledger.close()
        return
    with fresh_database() as url:
        ledger = open_ledger(url, must_exist=False)
        new_office(ledger)
        try:
            yield ledger
        finally:
            ledger.close()


def assert_catalog_is_the_aggregates(ledger: Ledger, projections: list[LedgerProjection]) -> None:
    view = next(p for p in projections if p.name == "catalog").view
    rows = {r["id"]: r for r in view.select("SELECT * FROM catalog")}
    for record_id, row in rows.items():
        record = ledger.record(record_id)
        expected = {
            "status": record.status, "custodian": record.custodian, "location": record.location,
            "secrecy": record.secrecy.value, "pages": record.pages, "title": record.title,
            "year": record.year, "department": record.department, "code": record.code,
            "discrepancy": record.discrepancy, "late": int(record.late), "version": record.version,
            "retention": record.retention.value if record.retention else None,
        }  # fmt: skip
        assert {k: row[k] for k in expected} == expected


def assert_uses_and_loans_are_the_events(
    ledger: Ledger, projections: list[LedgerProjection]
) -> None:
    """The audit trail's uses and the loan register, against each record's own events: a
    use's row carries the code and secrecy the record had just before it (an appraisal
    may have declassified it since); each loan is a lending, closed by the next return."""
    views = {p.name: p.view for p in projections}
    uses: Counter[tuple[Any, ...]] = Counter()
    loans: dict[tuple[str, int], tuple[Any, ...]] = {}
    for row in views["catalog"].select("SELECT id FROM catalog"):
        record_id = row["id"]
        events, _ = ledger.record_history(record_id)
        open_loan = None
        for use in events:
            if use.NAME not in ("consulted", "copied", "lent", "returned"):
                continue
            before = ledger.record(record_id, version=use.originator_version - 1)
            who = use.borrower if use.NAME == "returned" else use.reader
            uses[(record_id, use.NAME, before.code, before.secrecy.value, who)] += 1
            if use.NAME == "lent":
                open_loan = (record_id, use.originator_version)
                loans[open_loan] = (who, use.due.isoformat(), None, None)
            elif open_loan is not None:
                loans[open_loan] = (*loans[open_loan][:2], use.condition, use.pages)
                open_loan = None
    rows = views["audit"].select(
        "SELECT record_id, action, code, secrecy, reader FROM audit WHERE outcome = 'done'"
    )
    assert Counter(tuple(r.values()) for r in rows) == uses
    rows = views["loans"].select(
        "SELECT record_id, lent_version, borrower, due, condition, pages_returned FROM loans"
    )
    assert {(r["record_id"], r["lent_version"]): tuple(r.values())[2:] for r in rows} == loans


def tally(ledger: Ledger) -> None:
    """What the history did, for hypothesis's statistics (pytest --hypothesis-show-statistics)."""
    view = open_projections(ledger, ["audit"])[0].view
    for row in view.select("SELECT action, outcome FROM audit"):
        event(f"{row['outcome']} {row['action']}")
    for row in view.select("SELECT DISTINCT status FROM catalog"):
        event(f"status {row['status']}")


@pytest.fixture(autouse=True)
def tiny_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches that overflow after a few rows, so that eviction is exercised too."""
    for module in (catalog, loans, audit):
        monkeypatch.setattr(module, "CACHE_LIMIT", 2)


def property_holds(ledger: Ledger, steps: list[tuple[Any, ...]]) -> None:
    history = History(ledger)
    for step in steps:
        history.run(step)
    Runner(ledger, history.live).run()
    tally(ledger)
    differences, _ = check(ledger)
    assert [d.line() for d in differences] == []
    assert_catalog_is_the_aggregates(ledger, history.live)
    assert_uses_and_loans_are_the_events(ledger, history.live)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=20, max_size=60))
def test_incremental_equals_rebuild_sqlite(tmp_path: Path, steps: list[tuple[Any, ...]]) -> None:
    with fresh_ledger("sqlite", tmp_path) as ledger:
        property_holds(ledger, steps)


@pytest.mark.postgres
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=20, max_size=60))
def test_incremental_equals_rebuild_postgres(steps: list[tuple[Any, ...]]) -> None:
    require_pg()
    with fresh_ledger("postgres", Path(".")) as ledger:
        property_holds(ledger, steps)
