"""One test per archive rule (R1-R14, R18, R19 of DOMAIN.md): the refusal and the success.

Rules that live in the Record aggregate are tested on the aggregate alone, with
``ActorView``s from a small factory. Rules that need the application (code uniqueness,
recorded refusals, times against stored history, corrections) run on a real SQLite file
and check that a refusal wrote nothing on the record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, cast
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from aggregates import base
from aggregates.actor import ActorView, actor_uuid
from aggregates.base import check_not_in_future
from aggregates.errors import InvalidInput, RuleViolation
from aggregates.record import Record
from aggregates.record_events import Corrected, Destroyed, Relocated
from aggregates.refusal import AttemptRefused
from aggregates.return_check import ReturnCheck
from aggregates.rules import check_may_post
from aggregates.values import Carrier, Condition, Decision, Retention, Role, Secrecy, Unit
from ledger import requests as rq
from ledger.application import Ledger, open_ledger
from ledger.custody import known_by

T0 = datetime(2012, 1, 1, 9, 0, tzinfo=UTC)
REFUSED_TOPIC = AttemptRefused.TOPIC


# -- actors ---------------------------------------------------------------------------


def person(
    actor_id: str,
    *roles: Role,
    clearance: Secrecy = Secrecy.INTERNAL,
    external: bool = False,
    active: bool = True,
) -> ActorView:
    return ActorView(
        id=actor_id,
        name=actor_id.title(),
        roles=frozenset(roles),
        clearance=clearance,
        external=external,
        unit="Provincial Bureau" if external else None,
        active=active,
        db_role=None,
    )


ARCHIVIST = person("arch", Role.ARCHIVIST)
DIRECTOR = person("dir", Role.DIRECTOR, clearance=Secrecy.TOP_SECRET)
LIAISON = person("liai", Role.LIAISON, clearance=Secrecy.PUBLIC)
LEADER = person("lead", Role.LEADER, clearance=Secrecy.TOP_SECRET)
LOW_LEADER = person("lead-low", Role.LEADER, clearance=Secrecy.INTERNAL)
APPRAISER_1 = person("ap1", Role.APPRAISER, clearance=Secrecy.SECRET)
APPRAISER_2 = person("ap2", Role.APPRAISER, clearance=Secrecy.SECRET)
READER = person("bor", Role.BORROWER)
SECRET_READER = person("bor-sec", Role.BORROWER, clearance=Secrecy.SECRET)
EXTERNAL = person("ext", Role.BORROWER, clearance=Secrecy.INTERNAL, external=True)
AUDITOR = person("aud", Role.AUDITOR, clearance=Secrecy.TOP_SECRET)
WITNESS_1 = person("wit1", Role.BORROWER)
WITNESS_2 = person("wit2", Role.ARCHIVIST)


# -- records in a given state (aggregate level) ----------------------------------------


def later(record: Record, hours: int = 1) -> datetime:
    return record.last_occurred_at + timedelta(hours=hours)


def received(
    *,
    year: int = 2000,
    pages: int = 10,
    secrecy: Secrecy = Secrecy.PUBLIC,
    id: UUID | None = None,
) -> Record:
    return Record.receive(
        id=id or uuid4(),
        actor=ARCHIVIST,
        liaison=LIAISON,
        occurred_at=T0,
        title="Minutes of the board 董事会纪要",
        department="Office",
        year=year,
        carrier=Carrier.PAPER,
        pages=pages,
        secrecy=secrecy,
    )


def arranged(retention: Retention = Retention.YEARS_10, **kwargs: Any) -> Record:
    record = received(**kwargs)
    record.arrange(
        actor=ARCHIVIST,
        occurred_at=later(record),
        category="administration",
        retention=retention,
        code=f"Z001-WS·2000-D10-BGS-{uuid4().hex[:6]}",
    )
    return record


def shelved(**kwargs: Any) -> Record:
    record = arranged(**kwargs)
    record.shelve(actor=ARCHIVIST, occurred_at=later(record), location="A1-03-2-4")
    return record


def lend(record: Record, reader: ActorView = READER, **kwargs: Any) -> None:
    at = later(record)
    options: dict[str, Any] = {"approver": LEADER, "due": (at + timedelta(days=30)).date()}
    options.update(kwargs)
    record.lend(actor=ARCHIVIST, occurred_at=at, reader=reader, purpose="audit", **options)


def on_loan(**kwargs: Any) -> Record:
    record = shelved(**kwargs)
    lend(record)
    return record


def give_back(record: Record, **kwargs: Any) -> None:
    options: dict[str, Any] = {"pages": record.pages, "condition": Condition.INTACT}
    options.update(kwargs)
    record.return_(actor=ARCHIVIST, occurred_at=later(record), **options)


def appraise(record: Record, decision: Decision = Decision.DESTROY, **kwargs: Any) -> None:
    options: dict[str, Any] = {"appraisers": [APPRAISER_1, APPRAISER_2], "basis": "expired"}
    options.update(kwargs)
    record.appraise(actor=APPRAISER_1, occurred_at=later(record), decision=decision, **options)


def destroy(record: Record, **kwargs: Any) -> None:
    options: dict[str, Any] = {
        "approver": LEADER,
        "witnesses": [WITNESS_1, WITNESS_2],
        "register_no": "XH-2013-001",
    }
    options.update(kwargs)
    record.destroy(actor=ARCHIVIST, occurred_at=later(record), **options)


def refuses(rule: str, words: str, record: Record, act: Callable[[], object]) -> RuleViolation:
    """The command is refused under ``rule`` with ``words`` in its message; nothing changed."""
    version, pending = record.version, len(record.pending_events)
    state = dict(record.__dict__)
    with pytest.raises(RuleViolation) as caught:
        act()
    assert caught.value.rule == rule, caught.value.message
    assert words in caught.value.message
    assert caught.value.line() == f"refused ({rule}): {caught.value.message}"
    assert (record.version, len(record.pending_events)) == (version, pending)
    assert record.__dict__ == state
    return caught.value


# -- the application on a real SQLite file --------------------------------------------

ACTORS: list[dict[str, Any]] = [
    {"actor_id": "arch", "name": "Archivist", "role": ["archivist"], "clearance": "internal"},
    {"actor_id": "liai", "name": "Liaison", "role": ["liaison"], "clearance": "public"},
    {"actor_id": "lead", "name": "Leader", "role": ["leader"], "clearance": "top-secret"},
    {"actor_id": "lead-low", "name": "Low leader", "role": ["leader"], "clearance": "internal"},
    {"actor_id": "ap1", "name": "Appraiser 1", "role": ["appraiser"], "clearance": "secret"},
    {"actor_id": "ap2", "name": "Appraiser 2", "role": ["appraiser"], "clearance": "secret"},
    {"actor_id": "bor", "name": "Borrower", "role": ["borrower"], "clearance": "internal"},
    {"actor_id": "aud", "name": "Auditor", "role": ["auditor"], "clearance": "top-secret"},
    {
        "actor_id": "ext",
        "name": "Visitor",
        "role": ["borrower"],
        "clearance": "internal",
        "external": True,
        "unit": "Provincial Bureau",
    },
]


@pytest.fixture
def ledger(sqlite_url: str) -> Iterator[Ledger]:
    app = open_ledger(sqlite_url, must_exist=False)
    app.create_tables()
    app.initialise("dir", "Director")
    for fields in ACTORS:
        app.execute(rq.AddActor(**fields), "dir")
    yield app
    app.close()


def receipt_request(**fields: Any) -> rq.Receive:
    values: dict[str, Any] = {
        "title": "Annual report 年度报告",
        "department": "Office",
        "year": 2000,
        "carrier": "paper",
        "pages": 12,
        "secrecy": "public",
        "transferred_by": "liai",
    }
    values.update(fields)
    return rq.Receive(**values)


def receive_in(ledger: Ledger, **fields: Any) -> str:
    result = ledger.execute(receipt_request(**fields), "arch")
    return str(result["record"])


def shelved_in(ledger: Ledger, code: str = "Z001-WS·2000-D10-BGS-0001", **fields: Any) -> str:
    record = receive_in(ledger, **fields)
    ledger.execute(
        rq.Arrange(record=record, category="administration", retention="10y", code=code), "arch"
    )
    ledger.execute(rq.Shelve(record=record, location="A1-03-2-4"), "arch")
    return record


def written_since(ledger: Ledger, position: int) -> list[Any]:
    notifications = ledger.recorder.select_notifications(position + 1, 1000)
    return [ledger.mapper.to_domain_event(n) for n in notifications]


def app_refuses(
    ledger: Ledger,
    request: rq.Request,
    actor: str,
    rule: str,
    words: str,
    *,
    recorded: bool,
) -> RuleViolation:
    """Refused under ``rule``: no event on the record; one AttemptRefused iff ``recorded``."""
    record_ref = getattr(request, "record", None)
    version = ledger.record(record_ref).version if record_ref else None
    position = ledger.recorder.max_notification_id() or 0
    with pytest.raises(RuleViolation) as caught:
        ledger.execute(request, actor)
    error = caught.value
    assert error.rule == rule, error.message
    assert words in error.message
    if record_ref:
        assert ledger.record(record_ref).version == version
    new = written_since(ledger, position)
    if not recorded:
        assert new == []
        return error
    assert [e.TOPIC for e in new] == [REFUSED_TOPIC]
    refusal = new[0]
    assert (refusal.rule, refusal.reason, refusal.actor) == (rule, error.message, actor)
    assert refusal.action == getattr(request, "command", None)
    if record_ref:
        assert str(refusal.record_id) == str(ledger.record(record_ref).id)
    return error


# -- R1 Receipt -----------------------------------------------------------------------


def test_r1_receipt_names_a_department_liaison_and_an_archivist() -> None:
    def receive(liaison: ActorView, actor: ActorView = ARCHIVIST) -> Record:
        return Record.receive(
            id=uuid4(),
            actor=actor,
            liaison=liaison,
            occurred_at=T0,
            title="Contract 合同",
            department="Finance",
            year=2011,
            carrier=Carrier.ELECTRONIC,
            pages=3,
            secrecy=Secrecy.INTERNAL,
        )

    with pytest.raises(RuleViolation) as caught:
        receive(READER)
    assert caught.value.rule == "R1"
    assert caught.value.message == "bor is not an active department liaison"
    inactive = person("liai-old", Role.LIAISON, active=False)
    with pytest.raises(RuleViolation, match="not an active department liaison"):
        receive(inactive)
    with pytest.raises(RuleViolation, match="may not receive") as by_auditor:
        receive(LIAISON, actor=AUDITOR)
    assert by_auditor.value.rule == "R19"
    with pytest.raises(InvalidInput, match="pages must be between 1 and 1000000"):
        Record.receive(
            id=uuid4(),
            actor=ARCHIVIST,
            liaison=LIAISON,
            occurred_at=T0,
            title="t",
            department="d",
            year=2011,
            carrier=Carrier.PAPER,
            pages=0,
            secrecy=Secrecy.PUBLIC,
        )

    record = receive(LIAISON)
    assert (record.transferred_by, record.received_by) == ("liai", "arch")
    assert (record.title, record.department, record.year) == ("Contract 合同", "Finance", 2011)
    assert (record.carrier, record.pages, record.secrecy) == (
        Carrier.ELECTRONIC,
        3,
        Secrecy.INTERNAL,
    )
    assert (record.status, record.version, record.custodian) == ("received", 1, "archive")


def test_r1_receipt_refused_in_the_ledger_writes_nothing(ledger: Ledger) -> None:
    request = receipt_request(transferred_by="bor")
    app_refuses(ledger, request, "arch", "R1", "not an active department liaison", recorded=False)
    record = receive_in(ledger)
    assert ledger.record(record).transferred_by == "liai"


def test_r1_catalogue_numbers_stay_in_range_even_through_corrections(ledger: Ledger) -> None:
    """Huge page counts or years are input errors (exit 2), never a crash while encoding."""
    too_many = 10**30
    with pytest.raises(ValidationError):
        rq.Receive(
            title="t",
            department="d",
            year=2000,
            carrier="paper",
            pages=too_many,
            secrecy="public",
            transferred_by="liai",
        )
    with pytest.raises(ValidationError):
        rq.Return(record="x", pages=too_many, condition="intact")
    record = receive_in(ledger)
    position = ledger.recorder.max_notification_id()
    for changes in ({"pages": too_many}, {"year": too_many}):
        with pytest.raises(ValidationError, match="less than or equal to"):
            rq.Correct(record=record, version=1, reason="typo", set=changes)
    # A year the request allows, but after the correction itself: the record refuses it.
    request = rq.Correct(record=record, version=1, reason="typo", set={"year": 3000})
    with pytest.raises(InvalidInput, match=r"year 3000 lies after the receipt \(20"):
        ledger.execute(request, "arch")
    assert ledger.recorder.max_notification_id() == position
    ledger.execute(rq.Correct(record=record, version=1, reason="typo", set={"pages": 13}), "arch")
    assert ledger.record(record).pages == 13


# -- R2 Late transfer -----------------------------------------------------------------


def test_r2_late_receipt_is_accepted_and_flagged() -> None:
    """R2 refuses nothing: a receipt after 31 March of Y+1 is accepted and flagged late."""

    def receive_on(day: datetime) -> Record:
        return Record.receive(
            id=uuid4(),
            actor=ARCHIVIST,
            liaison=LIAISON,
            occurred_at=day,
            title="t",
            department="d",
            year=2010,
            carrier=Carrier.PAPER,
            pages=1,
            secrecy=Secrecy.PUBLIC,
        )

    assert receive_on(datetime(2011, 3, 31, 23, 0, tzinfo=UTC)).late is False
    assert receive_on(datetime(2010, 6, 1, tzinfo=UTC)).late is False
    late = receive_on(datetime(2011, 4, 1, 8, 0, tzinfo=UTC))
    assert (late.late, late.status, late.version) == (True, "received", 1)
    with pytest.raises(InvalidInput, match="lies after the receipt"):
        receive_on(datetime(2009, 12, 31, tzinfo=UTC))


# -- R3 Arrangement -------------------------------------------------------------------


def test_r3_a_volume_holds_at_most_200_pages_and_arrangement_happens_once() -> None:
    record = received(pages=201)
    refuses(
        "R3",
        "a volume holds at most 200 pages; this record has 201",
        record,
        lambda: record.arrange(
            actor=ARCHIVIST,
            occurred_at=later(record),
            category="finance-audit",
            retention=Retention.YEARS_30,
            code="Z001-CK·2000-D30-CWK-0007",
            unit=Unit.VOLUME,
        ),
    )
    full = received(pages=200)
    full.arrange(
        actor=ARCHIVIST,
        occurred_at=later(full),
        category="finance-audit",
        retention=Retention.YEARS_30,
        code="Z001-CK·2000-D30-CWK-0007",
        unit=Unit.VOLUME,
    )
    assert (full.status, full.unit, full.retention) == ("arranged", Unit.VOLUME, Retention.YEARS_30)
    assert (full.category, full.code) == ("finance-audit", "Z001-CK·2000-D30-CWK-0007")
    refuses(
        "R3",
        "a volume holds at most 200 pages; this record has 201",
        full,
        lambda: full.correct(
            actor=ARCHIVIST,
            occurred_at=later(full),
            version=1,
            reason="recount",
            changes={"pages": 201},
        ),
    )
    refuses(
        "R3",
        "is already arranged",
        full,
        lambda: full.arrange(
            actor=ARCHIVIST,
            occurred_at=later(full),
            category="business",
            retention=Retention.YEARS_10,
            code="OTHER-1",
        ),
    )


def test_r3_archival_code_is_unique_across_the_ledger(ledger: Ledger) -> None:
    code = "Z001-WS·2000-D10-BGS-0001"
    first = shelved_in(ledger, code=code)
    second = receive_in(ledger)
    request = rq.Arrange(record=second, category="business", retention="10y", code=code)
    error = app_refuses(ledger, request, "arch", "R3", f"archival code {code}", recorded=False)
    assert error.message == f"archival code {code} is already assigned to record {first}"
    assert ledger.record(second).status == "received"

    other = request.model_copy(update={"code": "Z001-WS·2000-D10-BGS-0002"})
    ledger.execute(other, "arch")
    assert ledger.record("Z001-WS·2000-D10-BGS-0002").id == ledger.record(second).id
    assert str(ledger.record(code).id) == first


# -- R4 Shelving ----------------------------------------------------------------------


def test_r4_only_an_arranged_record_is_shelved_and_a_move_is_its_own_event() -> None:
    record = received()
    refuses(
        "R4",
        "is received, not arranged; arrange it first",
        record,
        lambda: record.shelve(actor=ARCHIVIST, occurred_at=later(record), location="A1-01-1-1"),
    )
    refuses(
        "R4",
        "not shelved; it cannot be relocated",
        record,
        lambda: record.relocate(actor=ARCHIVIST, occurred_at=later(record), location="B-1-1-1"),
    )
    record = arranged()
    record.shelve(actor=ARCHIVIST, occurred_at=later(record), location="A1-01-1-1")
    assert (record.status, record.location) == ("shelved", "A1-01-1-1")
    refuses(
        "R4",
        "is shelved, not arranged; use relocate to move it",
        record,
        lambda: record.shelve(actor=ARCHIVIST, occurred_at=later(record), location="B-1-1-1"),
    )
    record.relocate(actor=ARCHIVIST, occurred_at=later(record), location="B2-07-3-1")
    moved = record.pending_events[-1]
    assert isinstance(moved, Relocated)
    assert (moved.previous_location, moved.location) == ("A1-01-1-1", "B2-07-3-1")
    assert (record.status, record.location) == ("shelved", "B2-07-3-1")
    lent = on_loan()  # not "use relocate": R8 refuses that too
    refuses(
        "R4",
        "is on-loan, not arranged; it returns to its shelf when it is returned",
        lent,
        lambda: lent.shelve(actor=ARCHIVIST, occurred_at=later(lent), location="B-1-1-1"),
    )


# -- R5 Use ---------------------------------------------------------------------------


def test_r5_copying_and_lending_need_a_leaders_approval() -> None:
    record = shelved()
    refuses(
        "R5",
        "copy of record Z001-WS·2000-D10-BGS-",
        record,
        lambda: record.copy(
            actor=ARCHIVIST,
            occurred_at=later(record),
            reader=READER,
            pages=2,
            purpose="p",
            approver=None,
        ),
    )
    refuses(
        "R5",
        "arch is not an active leader and cannot approve",
        record,
        lambda: lend(record, approver=ARCHIVIST),
    )
    refuses(
        "R5",
        "reader gone is deactivated",
        record,
        lambda: record.consult(
            actor=ARCHIVIST,
            occurred_at=later(record),
            reader=person("gone", Role.BORROWER, active=False),
            purpose="p",
        ),
    )
    # Consulting a public record in the reading room needs no approval.
    record.consult(actor=ARCHIVIST, occurred_at=later(record), reader=READER, purpose="study")
    record.copy(
        actor=ARCHIVIST,
        occurred_at=later(record),
        reader=READER,
        pages=2,
        purpose="p",
        approver=LEADER,
    )
    assert [e.NAME for e in record.pending_events[-2:]] == ["consulted", "copied"]
    assert record.pending_events[-1].approved_by == "lead"
    lend(record)
    assert (record.status, record.custodian) == ("on-loan", "bor")


def test_r5_lend_without_a_leader_is_refused_and_recorded(ledger: Ledger) -> None:
    record = shelved_in(ledger)
    request = rq.Lend(record=record, to="bor", due=date(2099, 1, 1), purpose="p", approved_by="ap1")
    app_refuses(ledger, request, "arch", "R5", "ap1 is not an active leader", recorded=True)
    ledger.execute(request.model_copy(update={"approved_by": "lead"}), "arch")
    assert ledger.record(record).custodian == "bor"


# -- R6 Secret records ----------------------------------------------------------------


def test_r6_confidential_use_needs_a_cleared_leader_and_a_cleared_reader() -> None:
    record = shelved(secrecy=Secrecy.CONFIDENTIAL)

    def consult(reader: ActorView, approver: ActorView | None) -> None:
        record.consult(
            actor=ARCHIVIST,
            occurred_at=later(record),
            reader=reader,
            purpose="p",
            approver=approver,
        )

    refuses(
        "R6",
        "consult of confidential record Z001-",
        record,
        lambda: consult(SECRET_READER, None),
    )
    refuses(
        "R6",
        "approver lead-low (clearance internal) is not cleared for confidential",
        record,
        lambda: consult(SECRET_READER, LOW_LEADER),
    )
    refuses(
        "R6",
        "bor (clearance internal) is not cleared for confidential",
        record,
        lambda: consult(READER, LEADER),
    )
    consult(SECRET_READER, LEADER)
    assert record.pending_events[-1].approved_by == "lead"
    assert record.pending_events[-1].reader == "bor-sec"


def test_r6_refusal_is_recorded_with_the_records_secrecy(ledger: Ledger) -> None:
    record = shelved_in(ledger, secrecy="secret")
    request = rq.Consult(record=record, reader="bor", purpose="p", approved_by="lead")
    app_refuses(ledger, request, "arch", "R6", "not cleared for secret", recorded=True)
    refusal = written_since(ledger, 0)[-1]
    assert (refusal.secrecy, refusal.reader, refusal.approved_by) == ("secret", "bor", "lead")


# -- R7 External users ----------------------------------------------------------------


def test_r7_external_use_needs_a_letter_and_a_leaders_approval() -> None:
    record = shelved()

    def consult(letter: str | None, approver: ActorView | None) -> None:
        record.consult(
            actor=ARCHIVIST,
            occurred_at=later(record),
            reader=EXTERNAL,
            purpose="research",
            approver=approver,
            letter=letter,
        )

    refuses(
        "R7", "external reader ext (Provincial Bureau) needs", record, lambda: consult(None, LEADER)
    )
    refuses(
        "R7",
        "by external ext needs a leader's approval",
        record,
        lambda: consult("JS-2012-17", None),
    )
    refuses("R7", "arch is not an active leader", record, lambda: consult("JS-2012-17", ARCHIVIST))
    consult("JS-2012-17", LEADER)
    assert record.pending_events[-1].letter == "JS-2012-17"


def test_r7_external_refusal_is_recorded(ledger: Ledger) -> None:
    record = shelved_in(ledger)
    request = rq.Consult(record=record, reader="ext", purpose="research")
    app_refuses(ledger, request, "arch", "R7", "needs an introduction letter", recorded=True)
    ledger.execute(request.model_copy(update={"letter": "JS-1", "approved_by": "lead"}), "arch")
    assert ledger.record(record).version == 4


# -- R8 No sub-lending ----------------------------------------------------------------


def test_r8_a_record_on_loan_is_not_lent_used_appraised_or_destroyed() -> None:
    record = on_loan()
    refuses(
        "R8",
        "is on loan to bor; it must be returned before it can be lent",
        record,
        lambda: lend(record, reader=SECRET_READER),
    )
    refuses(
        "R8",
        "before it can be consulted",
        record,
        lambda: record.consult(
            actor=ARCHIVIST, occurred_at=later(record), reader=SECRET_READER, purpose="p"
        ),
    )
    refuses("R8", "before it can be appraised for destruction", record, lambda: appraise(record))
    refuses(
        "R8",
        "before it can be relocated",
        record,
        lambda: record.relocate(actor=ARCHIVIST, occurred_at=later(record), location="B-1-1-1"),
    )
    give_back(record)
    assert (record.status, record.custodian, record.loan) == ("shelved", "archive", None)
    lend(record, reader=SECRET_READER)
    assert record.custodian == "bor-sec"


def test_r8_destroy_on_loan_is_refused() -> None:
    record = shelved()
    appraise(record)
    lend(record)
    refuses("R8", "before it can be destroyed", record, lambda: destroy(record))
    give_back(record)
    destroy(record)
    assert record.status == "destroyed"


def test_r8_sub_lending_is_refused_and_recorded(ledger: Ledger) -> None:
    record = shelved_in(ledger)
    lend_to = rq.Lend(
        record=record, to="bor", due=date(2099, 1, 1), purpose="p", approved_by="lead"
    )
    ledger.execute(lend_to, "arch")
    again = lend_to.model_copy(update={"to": "dir"})
    app_refuses(ledger, again, "arch", "R8", "is on loan to bor", recorded=True)
    ledger.execute(rq.Return(record=record, pages=12, condition="intact"), "arch")
    ledger.execute(again, "arch")
    assert ledger.record(record).custodian == "dir"


# -- R9 Return check ------------------------------------------------------------------


def test_r9_return_records_condition_and_pages_and_opens_a_discrepancy() -> None:
    record = shelved()
    refuses("R9", "is not on loan; nothing to return", record, lambda: give_back(record))
    refuses(
        "R9",
        "has no open discrepancy",
        record,
        lambda: record.repair(actor=ARCHIVIST, occurred_at=later(record), note="n"),
    )
    lend(record)
    give_back(record, pages=9, condition=Condition.DAMAGED)
    returned = record.pending_events[-1]
    assert (returned.pages, returned.condition, returned.borrower) == (9, "damaged", "bor")
    assert record.discrepancy == "returned damaged; 9 pages returned, catalogue says 10"
    # The discrepancy stays open across a clean loan and return.
    lend(record)
    give_back(record)
    assert record.discrepancy is not None
    record.repair(actor=ARCHIVIST, occurred_at=later(record), note="rebound")
    assert record.discrepancy is None
    lend(record)
    give_back(record, pages=8)
    record.report_loss(actor=ARCHIVIST, occurred_at=later(record), pages=8, note="2 pages lost")
    assert (record.discrepancy, record.pages) == (None, 8)


def replayed(record: Record) -> Record:
    """The record made again from its events, as the repository makes it."""
    again: Any = None
    for event in record.pending_events:
        again = event.mutate(again)
    return cast(Record, again)


def correct_pages(record: Record, pages: int) -> None:
    version = record.set_by["pages"][0]
    record.correct(
        actor=ARCHIVIST, occurred_at=later(record), version=version, reason="miscounted",
        changes={"pages": pages},
    )  # fmt: skip


def test_r9_an_open_discrepancy_is_judged_against_the_corrected_page_count() -> None:
    """Returned with 8 of a catalogued 10 pages, then the receipt's count corrected (R13):
    the discrepancy kept saying "catalogue says 10", and a loss report was judged against
    the new count while the discrepancy it closed spoke of the old one."""
    record = on_loan()
    give_back(record, pages=8)
    assert record.discrepancy == "8 pages returned, catalogue says 10"
    correct_pages(record, 12)
    assert record.discrepancy == "8 pages returned, catalogue says 12"
    assert replayed(record).discrepancy == record.discrepancy
    record.report_loss(actor=ARCHIVIST, occurred_at=later(record), pages=8, note="4 lost")
    assert (record.discrepancy, record.pages) == (None, 8)
    assert (replayed(record).discrepancy, replayed(record).pages) == (None, 8)


def test_r9_a_correction_that_makes_the_pages_match_closes_the_discrepancy() -> None:
    """The receipt miscounted: the 8 pages returned were all there ever were. Nothing is
    left to repair or report lost, and a later correction does not open it again."""
    record = on_loan()
    give_back(record, pages=8)
    correct_pages(record, 8)
    assert record.discrepancy is None
    assert replayed(record).discrepancy is None
    refuses(
        "R9",
        "has no open discrepancy",
        record,
        lambda: record.report_loss(actor=ARCHIVIST, occurred_at=later(record), pages=7, note="n"),
    )
    refuses(
        "R9",
        "has no open discrepancy",
        record,
        lambda: record.repair(actor=ARCHIVIST, occurred_at=later(record), note="n"),
    )
    correct_pages(record, 9)
    assert record.discrepancy is None
    assert replayed(record).discrepancy is None


def test_r9_damage_stays_open_whatever_the_page_count() -> None:
    record = on_loan()
    give_back(record, condition=Condition.DAMAGED)  # all 10 pages
    assert record.discrepancy == "returned damaged"
    correct_pages(record, 11)
    assert record.discrepancy == "returned damaged; 10 pages returned, catalogue says 11"
    correct_pages(record, 10)
    assert record.discrepancy == "returned damaged"
    assert replayed(record).discrepancy == "returned damaged"
    record.repair(actor=ARCHIVIST, occurred_at=later(record), note="rebound")
    assert replayed(record).discrepancy is None


@pytest.mark.parametrize("damaged", [False, True])
@pytest.mark.parametrize(("returned", "catalogued"), [(8, 10), (10, 10), (12, 10), (1, 999999)])
def test_r9_a_discrepancy_reads_back_as_the_check_that_wrote_it(
    damaged: bool, returned: int, catalogued: int
) -> None:
    """The catalog keeps the text only, and re-judges it from what it says."""
    check = ReturnCheck(damaged=damaged, pages=returned)
    text = check.discrepancy(catalogued)
    if text is None:
        assert (damaged, returned) == (False, catalogued)
    else:
        assert ReturnCheck.read(text, catalogued) == check


# -- R10 Due dates --------------------------------------------------------------------


def test_r10_every_loan_has_a_due_date_not_before_the_loan() -> None:
    record = shelved()
    at = later(record)
    refuses(
        "R10",
        f"due date {(at - timedelta(days=1)).date()} lies before the loan",
        record,
        lambda: lend(record, due=(at - timedelta(days=1)).date()),
    )
    record.lend(
        actor=ARCHIVIST,
        occurred_at=at,
        reader=READER,
        due=at.date(),
        purpose="p",
        approver=LEADER,
    )
    assert record.loan is not None
    assert record.loan["due"] == at.date()


# -- R11 Appraisal --------------------------------------------------------------------


def test_r11_appraisal_by_a_committee_of_two_appraisers() -> None:
    record = shelved()
    refuses(
        "R11", "at least two appraisers", record, lambda: appraise(record, appraisers=[APPRAISER_1])
    )
    refuses(
        "R11",
        "at least two appraisers",
        record,
        lambda: appraise(record, appraisers=[APPRAISER_1, APPRAISER_1]),
    )
    refuses(
        "R11",
        "lead is not an active appraiser",
        record,
        lambda: appraise(record, appraisers=[APPRAISER_1, LEADER]),
    )
    refuses("R11", "needs a next review date", record, lambda: appraise(record, Decision.RETAIN))
    on = later(record).date()  # the appraisal's day: a next review lies after it
    for review_on in (on, on - timedelta(days=1)):
        refuses(
            "R11",
            f"the next review date ({review_on}) must lie after the appraisal ({on})",
            record,
            partial(appraise, record, Decision.RETAIN, review_on=review_on),
        )
    refuses(
        "R11",
        "cannot raise secrecy from public to secret",
        record,
        lambda: appraise(record, Decision.DECLASSIFY, secrecy_to=Secrecy.SECRET),
    )
    # A declassification lowers the secrecy: one that leaves it as it is decides nothing
    # (and would replace a standing decision with none).
    refuses(
        "R11",
        "declassifying to public lowers nothing: the record is public already",
        record,
        lambda: appraise(record, Decision.DECLASSIFY),
    )
    appraise(record, Decision.RETAIN, review_on=date(2020, 1, 1))
    assert record.appraisal is not None
    assert record.appraisal["decision"] == Decision.RETAIN
    assert record.appraisal["appraisers"] == ["ap1", "ap2"]
    unarranged = received()
    refuses("R11", "must be arranged before appraisal", unarranged, lambda: appraise(unarranged))


def test_r11_destroy_only_after_the_retention_period_never_permanent() -> None:
    # 10 years for a record of 2005 run until 1 January 2016.
    young = shelved(year=2005)
    refuses(
        "R11",
        "runs until 2016-01-01; it cannot be appraised for destruction before 2016-01-01",
        young,
        lambda: appraise(young),
    )
    permanent = shelved(retention=Retention.PERMANENT)
    refuses("R11", "is permanent and is never destroyed", permanent, lambda: appraise(permanent))
    old = shelved(year=2001)  # runs until 2012-01-01, the day T0 falls on
    appraise(old)
    assert old.appraisal is not None
    assert (old.appraisal["decision"], old.appraisal["version"]) == (Decision.DESTROY, 4)
    secret = shelved(secrecy=Secrecy.SECRET)
    appraise(secret, Decision.DECLASSIFY, secrecy_to=Secrecy.INTERNAL)
    assert secret.secrecy == Secrecy.INTERNAL
    appraise(secret, Decision.OPEN)
    assert (secret.secrecy, secret.opened) == (Secrecy.PUBLIC, True)


# -- R12 Destruction ------------------------------------------------------------------


def test_r12_destruction_needs_a_standing_decision_approval_register_and_two_witnesses() -> None:
    record = shelved()
    refuses("R12", "has no standing appraisal decision to destroy", record, lambda: destroy(record))
    appraise(record)
    appraise(record, Decision.RETAIN, review_on=date(2030, 1, 1))
    refuses("R12", "has no standing appraisal decision to destroy", record, lambda: destroy(record))
    appraise(record)
    refuses(
        "R12", "arch is not an active leader", record, lambda: destroy(record, approver=ARCHIVIST)
    )
    refuses(
        "R12",
        "destruction of record Z001-WS·2000-D10-BGS-",
        record,
        lambda: destroy(record, approver=None),
    )
    refuses("R12", "destruction-register number", record, lambda: destroy(record, register_no=" "))
    refuses(
        "R12",
        "at least two distinct witnesses",
        record,
        lambda: destroy(record, witnesses=[WITNESS_1, WITNESS_1]),
    )
    refuses("R12", "two distinct witnesses", record, lambda: destroy(record, witnesses=[WITNESS_1]))
    # 监销: the archivist who destroys it does not supervise their own act.
    refuses(
        "R12",
        "arch carries out the destruction and cannot also witness it",
        record,
        lambda: destroy(record, witnesses=[ARCHIVIST, WITNESS_1, WITNESS_2]),
    )
    gone = person("wit-gone", Role.ARCHIVIST, active=False)
    refuses(
        "R12",
        "witness wit-gone is not an active actor",
        record,
        lambda: destroy(record, witnesses=[WITNESS_1, gone]),
    )
    destroy(record)
    destroyed = record.pending_events[-1]
    assert isinstance(destroyed, Destroyed)
    assert (destroyed.approved_by, destroyed.witnesses) == ("lead", ["wit1", "wit2"])
    assert (destroyed.register_no, destroyed.appraisal_version) == ("XH-2013-001", 6)
    assert (record.status, record.location, record.custodian) == ("destroyed", None, None)


def test_r12_a_destruction_approved_by_a_leader_not_cleared_for_the_record_names_r12() -> None:
    """A destruction is no use of the record (R6: consulting, copying, lending): a leader
    not cleared for it cannot approve it, under R12 (it was refused under R6)."""
    record = shelved(secrecy=Secrecy.CONFIDENTIAL)
    appraise(record)
    refuses(
        "R12",
        "approver lead-low (clearance internal) is not cleared for confidential record",
        record,
        lambda: destroy(record, approver=LOW_LEADER),
    )


def test_r12_a_destroyed_record_takes_no_further_event() -> None:
    record = shelved()
    appraise(record)
    destroy(record)
    at = later(record)
    attempts: list[Callable[[], object]] = [
        lambda: lend(record),
        lambda: record.consult(actor=ARCHIVIST, occurred_at=at, reader=READER, purpose="p"),
        lambda: record.relocate(actor=ARCHIVIST, occurred_at=at, location="B-1-1-1"),
        lambda: record.shelve(actor=ARCHIVIST, occurred_at=at, location="B-1-1-1"),
        lambda: give_back(record),
        lambda: record.repair(actor=ARCHIVIST, occurred_at=at, note="n"),
        lambda: appraise(record, Decision.RETAIN, review_on=date(2030, 1, 1)),
        lambda: destroy(record),
        lambda: record.correct(actor=ARCHIVIST, occurred_at=at, version=1, reason="typo"),
    ]
    for attempt in attempts:
        refuses("R12", "was destroyed; it takes no further event", record, attempt)


def test_r12_destroyed_record_refuses_in_the_ledger(ledger: Ledger) -> None:
    record = shelved_in(ledger, secrecy="confidential")
    destroy_it = rq.Destroy(
        record=record, approved_by="lead", witness=["bor", "aud"], register="XH-1"
    )
    app_refuses(ledger, destroy_it, "arch", "R12", "no standing appraisal", recorded=True)
    ledger.execute(
        rq.Appraise(record=record, decision="destroy", appraiser=["ap1", "ap2"], basis="b"), "ap1"
    )
    ledger.execute(destroy_it, "arch")
    assert ledger.record(record).status == "destroyed"
    # A destruction refused under R12 is kept, as every improper destruction attempt is;
    # so is every attempted use of the destroyed record (an access, R18), with the
    # record's code and secrecy, its reader and approver.
    app_refuses(ledger, destroy_it, "arch", "R12", "was destroyed", recorded=True)
    uses: list[rq.Request] = [
        rq.Consult(record=record, reader="bor", purpose="p", approved_by="lead"),
        rq.Copy(record=record, reader="bor", pages=1, purpose="p", approved_by="lead"),
        rq.Lend(record=record, to="bor", due=date(2099, 1, 1), purpose="p", approved_by="lead"),
    ]
    for use in uses:
        position = ledger.recorder.max_notification_id() or 0
        app_refuses(ledger, use, "arch", "R12", "was destroyed", recorded=True)
        (refusal,) = written_since(ledger, position)
        assert (refusal.code, refusal.secrecy) == ("Z001-WS·2000-D10-BGS-0001", "confidential")
        assert (refusal.reader, refusal.approved_by) == ("bor", "lead")
    # Other commands on a destroyed record reach nothing it held: reported only.
    others: list[rq.Request] = [
        rq.Relocate(record=record, location="B1-01-1-1"),
        rq.Return(record=record, pages=10, condition="intact"),
        rq.Correct(record=record, version=1, reason="typo", set={"title": "x"}),
    ]
    for other in others:
        app_refuses(ledger, other, "arch", "R12", "was destroyed", recorded=False)
    history = ledger.record_history(record)[0]
    assert [e.NAME for e in history][-2:] == ["appraised", "destroyed"]


def test_r11_a_destruction_refused_under_r11_is_kept(ledger: Ledger) -> None:
    """The retention clock moved after the destroy decision (a corrected year): the
    destruction is refused under R11, and kept as the improper destruction attempt it is."""
    record = receive_in(ledger, secrecy="secret", occurred_at=T0)  # of 2000, 10 years
    steps: list[rq.Request] = [
        rq.Arrange(record=record, category="business", retention="10y", code="Z-11"),
        rq.Shelve(record=record, location="A1-03-2-4"),
        rq.Correct(record=record, version=1, reason="r", set={"year": 2012}),  # until 2023
    ]
    appraisal = rq.Appraise(record=record, decision="destroy", appraiser=["ap1", "ap2"], basis="b")
    for hours, (step, actor) in enumerate(
        [(steps[0], "arch"), (steps[1], "arch"), (appraisal, "ap1"), (steps[2], "arch")], 1
    ):
        at = T0 + timedelta(hours=hours)
        ledger.execute(step.model_copy(update={"occurred_at": at}), actor)
    destroy_it = rq.Destroy(
        record=record,
        approved_by="lead",
        witness=["bor", "aud"],
        register="XH-1",
        occurred_at=T0 + timedelta(days=1),
    )
    position = ledger.recorder.max_notification_id() or 0
    app_refuses(ledger, destroy_it, "arch", "R11", "runs until 2023-01-01", recorded=True)
    (refusal,) = written_since(ledger, position)
    assert (refusal.action, refusal.approved_by, refusal.secrecy) == ("destroy", "lead", "secret")
    assert refusal.code == "Z-11"
    assert ledger.record(record).status == "shelved"


# -- R13 Immutability -----------------------------------------------------------------


def test_r13_a_correction_references_an_existing_event(ledger: Ledger) -> None:
    record = receive_in(ledger, title="Anual report")
    request = rq.Correct(record=record, version=2, reason="typo", set={"title": "Annual report"})
    app_refuses(ledger, request, "arch", "R13", "has no version 2 (1-1)", recorded=False)
    ledger.execute(request.model_copy(update={"version": 1}), "arch")
    corrected = ledger.record_history(record)[0][-1]
    assert isinstance(corrected, Corrected)
    assert (corrected.corrects_version, corrected.changes) == (1, {"title": "Annual report"})
    assert ledger.record(record).title == "Annual report"
    # The corrected event itself is unchanged.
    assert ledger.record_history(record)[0][0].title == "Anual report"
    with pytest.raises(ValidationError, match="only title, department, year, pages"):
        rq.Correct(record=record, version=1, reason="typo", set={"status": "x"})
    # Each field is checked as a receipt checks it: no empty title, none untrimmed.
    for empty in ("", "   "):
        with pytest.raises(ValidationError, match="at least 1 character"):
            rq.Correct(record=record, version=1, reason="typo", set={"title": empty})
    with pytest.raises(ValidationError, match="title needs a value"):
        rq.Correct(record=record, version=1, reason="typo", set={"title": None})
    trimmed = rq.Correct(record=record, version=1, reason="typo", set={"title": " Annual "})
    assert trimmed.set.changes() == {"title": "Annual"}


def test_r13_a_correction_references_the_event_that_set_the_field() -> None:
    """A field holds the value of the last event that set it: a correction of the field
    names that event. The receipt's page count is no longer the catalogue's once a loss
    report has set the pages left, and no shelving ever held a title."""
    record = shelved()  # received (10 pages, version 1), arranged, shelved (version 3)

    def correct(version: int, **changes: Any) -> None:
        record.correct(
            actor=ARCHIVIST, occurred_at=later(record), version=version, reason="r",
            changes=changes,
        )  # fmt: skip

    refuses("R13", "comes from version 1 (received); a correction of it must reference "
            "that version, not 3", record, lambda: correct(3, title="x"))  # fmt: skip
    lend(record)
    give_back(record, pages=8)
    record.report_loss(actor=ARCHIVIST, occurred_at=later(record), pages=8, note="2 lost")
    loss = record.version
    refuses("R13", f"the pages of record {record.label} comes from version {loss} "
            "(loss-reported)", record, lambda: correct(1, pages=12))  # fmt: skip
    correct(loss, pages=7)
    fixed = record.version
    assert record.pages == 7
    refuses(
        "R13", f"comes from version {fixed} (corrected)", record, lambda: correct(loss, pages=6)
    )
    correct(1, title="x")  # the title is still the receipt's
    # R13 before "already": naming the wrong event is refused, whatever the value.
    refuses("R13", "comes from version", record, lambda: correct(1, title="x"))
    with pytest.raises(InvalidInput, match="is already 'x'"):
        correct(record.version, title="x")
    correct(record.version, title="y")  # a correction of a correction
    assert (record.title, record.pages) == ("y", 7)


def test_r13_stored_events_are_never_changed_or_removed(ledger: Ledger) -> None:
    receive_in(ledger)
    count = ledger.recorder.max_notification_id()
    path = ledger.store.sqlite_path
    with sqlite3.connect(path) as db:
        for statement in (
            "UPDATE stored_events SET state = x'00'",
            "DELETE FROM stored_events",
        ):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)
    assert ledger.recorder.max_notification_id() == count
    assert len(written_since(ledger, 0)) == count


# -- R14 Who and when -----------------------------------------------------------------


def test_r14_a_time_after_the_last_clock_reading_is_checked_against_the_clock() -> None:
    check_not_in_future(datetime.now(tz=UTC) - timedelta(days=1))
    check_not_in_future(datetime.now(tz=UTC))  # later than any reading taken before: read again
    soon = datetime.now(tz=UTC) + timedelta(seconds=5)
    with pytest.raises(RuleViolation, match="in the future"):
        check_not_in_future(soon)
    with pytest.raises(RuleViolation, match="in the future"):
        check_not_in_future(soon)  # refused again: the reading did not move past it


def test_r14_occurred_at_never_in_the_future_nor_before_the_previous_event() -> None:
    record = shelved()
    future = datetime.now(tz=UTC) + timedelta(days=1)
    refuses(
        "R14",
        "is in the future",
        record,
        lambda: record.relocate(actor=ARCHIVIST, occurred_at=future, location="B-1-1-1"),
    )
    before = record.last_occurred_at - timedelta(seconds=1)
    refuses(
        "R14",
        "is before the previous event",
        record,
        lambda: record.relocate(actor=ARCHIVIST, occurred_at=before, location="B-1-1-1"),
    )
    # The same moment as the previous event, and a past one, are fine (migrated ledgers).
    same = record.last_occurred_at
    record.relocate(actor=ARCHIVIST, occurred_at=same, location="B-1-1-1")
    moved = record.pending_events[-1]
    assert (moved.actor, moved.occurred_at) == ("arch", same)
    assert moved.timestamp > moved.occurred_at
    with pytest.raises(RuleViolation, match="in the future") as caught:
        Record.receive(
            id=uuid4(),
            actor=ARCHIVIST,
            liaison=LIAISON,
            occurred_at=future,
            title="t",
            department="d",
            year=2000,
            carrier=Carrier.PAPER,
            pages=1,
            secrecy=Secrecy.PUBLIC,
        )
    assert caught.value.rule == "R14"


def test_r14_never_before_the_records_previous_stored_event(ledger: Ledger) -> None:
    at = datetime(2015, 6, 1, 9, 0, tzinfo=UTC)
    record = receive_in(ledger, occurred_at=at)
    request = rq.Arrange(
        record=record,
        category="administration",
        retention="10y",
        code="Z001-1",
        occurred_at=at - timedelta(minutes=1),
    )
    app_refuses(ledger, request, "arch", "R14", "is before the previous event", recorded=False)
    assert ledger.record(record).code is None
    ledger.execute(request.model_copy(update={"occurred_at": at + timedelta(days=2)}), "arch")
    arranged_event = ledger.record_history(record)[0][-1]
    assert arranged_event.occurred_at == at + timedelta(days=2)
    assert arranged_event.actor == "arch"
    assert arranged_event.timestamp > arranged_event.occurred_at


def test_r14_recorded_times_never_go_back_when_the_clock_does(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wall clock stepped back between two events of a record must not make --known-at
    hide the earlier one: the later event is recorded a microsecond after it instead."""
    record = receive_in(ledger, occurred_at=T0)
    received_event = ledger.record_history(record)[0][0]
    stepped_back = received_event.timestamp - timedelta(hours=1)

    class SteppedBack(datetime):  # the wall clock, an hour behind the record's receipt
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return stepped_back

    monkeypatch.setattr(base, "datetime", SteppedBack)
    ledger.execute(
        rq.Arrange(
            record=record,
            category="administration",
            retention="10y",
            code="Z001-9",
            occurred_at=stepped_back,
        ),
        "arch",
    )
    monkeypatch.undo()
    events = ledger.record_history(record)[0]
    assert [e.originator_version for e in events] == [1, 2]
    assert events[1].timestamp == received_event.timestamp + timedelta(microseconds=1)
    assert known_by(events, None, received_event.timestamp) == events[:1]
    assert known_by(events, None, events[1].timestamp) == events
    # With the clock right again, times go on from the clock.
    clock = datetime.now(tz=UTC)
    ledger.execute(rq.Shelve(record=record, location="A1-03-2-4"), "arch")
    shelved_event = ledger.record_history(record)[0][-1]
    assert shelved_event.timestamp >= clock > events[1].timestamp


# -- R18 Refused attempts -------------------------------------------------------------


def test_r18_refused_use_is_recorded_without_changing_the_record(ledger: Ledger) -> None:
    record = shelved_in(ledger, secrecy="confidential")
    request = rq.Copy(
        record=record, reader="bor", pages=2, purpose="press", approved_by="lead", letter="L-1"
    )
    position = ledger.recorder.max_notification_id() or 0
    app_refuses(ledger, request, "arch", "R6", "bor (clearance internal)", recorded=True)
    (refusal,) = written_since(ledger, position)
    assert isinstance(refusal, AttemptRefused)
    assert refusal.action == "copy"
    assert refusal.code == "Z001-WS·2000-D10-BGS-0001"
    assert (refusal.reader, refusal.approved_by, refusal.letter) == ("bor", "lead", "L-1")
    assert (refusal.purpose, refusal.secrecy) == ("press", "confidential")
    assert refusal.originator_id != ledger.record(record).id
    # A refusal under another rule (R4: not shelved) is not a refused use: not recorded.
    fresh = receive_in(ledger)
    consult = rq.Consult(record=fresh, reader="bor", purpose="p")
    app_refuses(ledger, consult, "arch", "R4", "not shelved", recorded=False)


# -- R19 Authority --------------------------------------------------------------------


def test_r19_only_active_actors_act_within_their_roles() -> None:
    refusals = {
        (AUDITOR, "lend"): "actor aud may not lend: it needs the role archivist or director",
        (APPRAISER_1, "destroy"): "may not destroy",
        (ARCHIVIST, "appraise"): "actor arch may not appraise: it needs the role appraiser",
        (ARCHIVIST, "manage-actors"): "needs the role director",
        (person("gone", Role.ARCHIVIST, active=False), "receive"): "gone is deactivated",
    }
    for (actor, action), words in refusals.items():
        with pytest.raises(RuleViolation) as caught:
            check_may_post(actor, action)
        assert caught.value.rule == "R19"
        assert words in caught.value.message
    check_may_post(DIRECTOR, "lend")
    check_may_post(APPRAISER_1, "appraise")
    record = shelved()
    refuses(
        "R19",
        "may not lend",
        record,
        lambda: record.lend(
            actor=AUDITOR,
            occurred_at=later(record),
            reader=READER,
            due=date(2099, 1, 1),
            purpose="p",
            approver=LEADER,
        ),
    )
    refuses(
        "R19",
        "may not appraise",
        record,
        lambda: record.appraise(
            actor=ARCHIVIST,
            occurred_at=later(record),
            decision=Decision.DESTROY,
            appraisers=[APPRAISER_1, APPRAISER_2],
            basis="b",
        ),
    )


def test_r19_refusals_are_recorded(ledger: Ledger) -> None:
    record = shelved_in(ledger)
    consult = rq.Consult(record=record, reader="bor", purpose="p")
    app_refuses(ledger, consult, "aud", "R19", "actor aud may not consult", recorded=True)
    app_refuses(ledger, consult, "nobody", "R19", "nobody' is not registered", recorded=True)
    add = rq.AddActor(actor_id="new", name="New", role=["archivist"], clearance="public")
    app_refuses(ledger, add, "arch", "R19", "may not manage-actors", recorded=True)
    receive = rq.Receive(
        title="t",
        department="d",
        year=2000,
        carrier="paper",
        pages=1,
        secrecy="public",
        transferred_by="liai",
    )
    app_refuses(ledger, receive, "aud", "R19", "may not receive", recorded=True)

    ledger.execute(consult, "arch")
    ledger.execute(add, "dir")
    assert ledger.record(record).version == 4


def test_r19_a_deactivated_actor_is_refused_and_recorded(ledger: Ledger) -> None:
    record = shelved_in(ledger)
    with ledger.translated_errors():
        actor = ledger.repository.get(actor_uuid("arch"))
        actor.deactivate("left the office", by="dir", occurred_at=datetime.now(tz=UTC))
        ledger.save(actor)
    consult = rq.Consult(record=record, reader="bor", purpose="p")
    app_refuses(
        ledger, consult, "arch", "R19", "arch is deactivated and may not act", recorded=True
    )
    ledger.execute(consult, "dir")
    assert ledger.record(record).version == 4


def test_r19_a_record_holding_an_actors_derived_id_is_no_actor(ledger: Ledger) -> None:
    """A record received under an actor's derived id (receipts took version-5 ids until
    they were refused) made every command naming that actor fail with an AttributeError:
    it is no actor, so the command is refused as by an unregistered one."""
    ledger.save(received(id=actor_uuid("late.comer")))
    app_refuses(ledger, receipt_request(), "late.comer", "R19", "is not registered", recorded=True)
