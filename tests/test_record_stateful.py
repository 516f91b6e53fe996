"""Random command sequences against a real ledger on SQLite keep the custody invariants.

A hypothesis state machine posts receipts, arrangements, shelving, moves, uses, loans,
returns, repairs, appraisals, destructions and corrections, by a fixed cast of actors,
at random times. A small model of each record follows the accepted commands. After every
step the stored history is replayed by a second ``Ledger`` on the same file and must give
the model's state and the chain's head; loans, destruction and custody are checked on the
stored events themselves. Commands the model knows to be against a rule must be refused,
and every refusal leaves the record's version unchanged.

Valid commands are made common on purpose (``advance`` posts the next step of a record's
life, records are of year 2000 with 10 years' retention and the clock starts in 2012), so
sequences reach loans, returns, destroy appraisals and destructions.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aggregates.chain import GENESIS, digest
from aggregates.errors import InvalidInput, RuleViolation
from aggregates.record import Record
from aggregates.record_events import Appraised, Destroyed, Lent, Returned
from aggregates.refusal import AttemptRefused
from aggregates.rules import MAX_VOLUME_PAGES
from aggregates.values import Decision, Retention, Secrecy
from ledger import requests as rq
from ledger.application import open_ledger
from ledger.custody import known_by

START = datetime(2012, 1, 1, 9, 0, tzinfo=UTC)
# Refusals kept as refused attempts (R18, R19): under these rules, of any command; and
# under these, of these commands (with an appraisal's decision): an improper destruction
# (R11, R12) or appraisal for destruction (R11), a use of a destroyed record (R12). Any
# other refusal writes nothing.
KEPT_RULES = {"R5", "R6", "R7", "R8", "R19"}
KEPT_FOR = {
    ("destroy", None): {"R11", "R12"},
    ("appraise", "destroy"): {"R11"},
    ("consult", None): {"R12"},
    ("copy", None): {"R12"},
    ("lend", None): {"R12"},
}
RANKS = {s: s.rank for s in Secrecy}

# actor id -> (roles, clearance, external)
CAST: dict[str, tuple[list[str], str, bool]] = {
    "arch": (["archivist"], "internal", False),
    "arch2": (["archivist"], "confidential", False),
    "liai": (["liaison"], "public", False),
    "lead": (["leader"], "top-secret", False),
    "lead-low": (["leader"], "internal", False),
    "ap1": (["appraiser"], "secret", False),
    "ap2": (["appraiser"], "secret", False),
    "bor": (["borrower"], "internal", False),
    "bor-sec": (["borrower"], "secret", False),
    "ext": (["borrower"], "internal", True),
    "aud": (["auditor"], "top-secret", False),
    "gone": (["archivist"], "top-secret", False),  # deactivated at set-up
}
DIRECTOR = "dir"
POSTERS = {"arch", "arch2", DIRECTOR}  # may post everything but appraisals (R19)
APPRAISERS = {"ap1", "ap2"}
LEADERS = {"lead", "lead-low"}
EXTERNAL = {a for a, (_, _, external) in CAST.items() if external}
CLEARANCE = {a: Secrecy(c) for a, (_, c, _) in CAST.items()} | {DIRECTOR: Secrecy.TOP_SECRET}

# Valid choices come first and more often: they are what reaches deep states.
posters = st.sampled_from(["arch", "arch", "arch", "dir", "arch2", "aud", "ap1", "gone", "nobody"])
appraising = st.sampled_from(["ap1", "ap1", "ap2", "arch", "aud"])
readers = st.sampled_from(["bor", "bor", "bor-sec", "dir", "ext", "aud"])
approvers = st.sampled_from(["lead", "lead", "lead", "lead-low", "arch"])
letters = st.sampled_from([None, "JS-2012-001"])
locations = st.sampled_from(["A1-01-1-1", "A1-01-1-2", "B2-07-3-4"])
codes = st.sampled_from(["Z001-1", "Z001-2", "Z001-3"])
committees = st.sampled_from(
    [["ap1", "ap2"], ["ap1", "ap2"], ["ap2", "ap1"], ["ap1"], ["ap1", "ap1"], ["ap1", "lead"]]
)
witness_sets = st.sampled_from(
    [["bor", "aud"], ["bor", "aud"], ["lead", "ap1"], ["bor"], ["bor", "bor"], ["bor", "gone"],
     ["arch", "bor", "aud"]]  # the last: the archivist who destroys it as a witness (R12)
)  # fmt: skip
# How a command's time relates to the clock: mostly later; sometimes the same moment,
# earlier than the record's last event, or in the future (R14).
moments = st.sampled_from(["later"] * 6 + ["same", "earlier", "future"])
hours = st.integers(min_value=1, max_value=96)


@dataclass
class Model:
    """What the test expects of one record."""

    id: str
    title: str
    year: int
    pages: int
    secrecy: Secrecy
    last_at: datetime
    version: int = 1
    status: str = "received"
    code: str | None = None
    retention: Retention | None = None
    unit: str = "item"
    location: str | None = None
    borrower: str | None = None
    # (damaged, pages returned) of the return that left a discrepancy open (R9)
    returned: tuple[bool, int] | None = None
    appraisal: Decision | None = None
    appraisal_version: int | None = None
    opened: bool = False
    lent_before: bool = False
    registers: list[str] = field(default_factory=list)
    # The version that last set each correctable field (R13): the receipt, then corrections.
    set_by: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(["title", "department", "year", "pages"], 1)
    )
    # When the command that made the last version returned (all it wrote was recorded).
    known_at: datetime = field(default_factory=lambda: datetime.now(tz=UTC))
    # For each version: (its occurred-at, when it was known, the state it left).
    history: list[tuple[datetime, datetime, dict[str, Any]]] = field(default_factory=list)

    @property
    def discrepancy(self) -> bool:
        """Open, judged against the pages as they stand (a correction re-judges it)."""
        return self.returned is not None and (self.returned[0] or self.returned[1] != self.pages)

    def expiry(self) -> date | None:
        if self.retention is None or self.retention.years is None:
            return None
        return date(self.year + 1 + self.retention.years, 1, 1)

    def state(self) -> dict[str, Any]:
        custodian = None if self.status == "destroyed" else (self.borrower or "archive")
        return {
            "version": self.version,
            "status": self.status,
            "title": self.title,
            "year": self.year,
            "pages": self.pages,
            "secrecy": self.secrecy,
            "code": self.code,
            "retention": self.retention,
            "unit": self.unit,
            "location": self.location,
            "borrower": self.borrower,
            "custodian": custodian,
            "discrepancy": self.discrepancy,
            "appraisal": self.appraisal,
            "appraisal_version": self.appraisal_version,
            "opened": self.opened,
            "last_occurred_at": self.last_at,
        }


def state_of(record: Record) -> dict[str, Any]:
    appraisal = record.appraisal or {}
    return {
        "version": record.version,
        "status": record.status,
        "title": record.title,
        "year": record.year,
        "pages": record.pages,
        "secrecy": record.secrecy,
        "code": record.code,
        "retention": record.retention,
        "unit": record.unit,
        "location": record.location,
        "borrower": record.loan["borrower"] if record.loan else None,
        "custodian": record.custodian,
        "discrepancy": record.discrepancy is not None,
        "appraisal": appraisal.get("decision"),
        "appraisal_version": appraisal.get("version"),
        "opened": record.opened,
        "last_occurred_at": record.last_occurred_at,
    }


REDATED = 2009  # a year whose 10 years run until 2020, after any step's time


def _redatable(model: Model, now: datetime) -> bool:
    """Whether a destruction of ``model`` would be allowed but for its retention once its
    year is corrected to ``REDATED``."""
    return (
        model.appraisal is Decision.DESTROY
        and model.status == "shelved"
        and model.year != REDATED
        and model.retention is Retention.YEARS_10
        and now.year < 2019
    )


class RecordLedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="ledger-stateful-")
        self.url = f"sqlite:///{self.folder}/ledger.db"
        self.ledger = open_ledger(self.url, must_exist=False)
        self.ledger.create_tables()
        self.ledger.initialise(DIRECTOR, "Director")
        for actor_id, (roles, clearance, external) in CAST.items():
            self.ledger.execute(
                rq.AddActor(
                    actor_id=actor_id,
                    name=actor_id,
                    role=roles,
                    clearance=clearance,
                    external=external,
                    unit="Provincial Bureau" if external else None,
                ),
                DIRECTOR,
            )
        self.ledger.execute(rq.DeactivateActor(actor_id="gone", reason="left"), DIRECTOR)
        self.replayer = open_ledger(self.url)  # a second application on the same file
        self.clock = START
        self.records: list[Model] = []
        self.codes: set[str] = set()
        self.serial = 0

    def teardown(self) -> None:
        try:
            fresh = open_ledger(self.url)
            for model in self.records:
                assert state_of(fresh.record(model.id)) == model.state()
                self.check_as_of(fresh, model)
            fresh.close()
        finally:
            self.ledger.close()
            self.replayer.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    def check_as_of(self, app: Any, model: Model) -> None:
        """`ledger show` and `ledger custody` as of a moment (``--as-of``: what had
        happened by then; ``--known-at``: what had been recorded by then) give the state
        the model had then: the events they keep (ledger.custody.known_by) replayed."""
        events, _ = app.record_history(model.id)
        assert len(events) == len(model.history) == model.version
        happened = [occurred for occurred, _, _ in model.history]

        def state_at(kept: list[Any]) -> dict[str, Any] | None:
            return state_of(app.record(model.id, version=len(kept))) if kept else None

        def expected(versions: int) -> dict[str, Any] | None:
            return model.history[versions - 1][2] if versions else None

        for version, (occurred, known, state) in enumerate(model.history, start=1):
            # Known at the moment the command that made this version returned: just it.
            assert state_at(known_by(events, None, known)) == state
            # As of its occurred-at: everything that had happened by then (later events at
            # the same moment too); a microsecond earlier, only what happened before it.
            by_then = sum(1 for t in happened if t <= occurred)
            assert by_then >= version
            assert state_at(known_by(events, occurred, None)) == expected(by_then)
            just_before = sum(1 for t in happened if t < occurred)
            moment = occurred - timedelta(microseconds=1)
            assert state_at(known_by(events, moment, None)) == expected(just_before)
            # Both: what had happened by its occurred-at and was known when it returned.
            assert state_at(known_by(events, occurred, known)) == state

    # -- time and attempts ----------------------------------------------------------

    def at(self, moment: str, step: int, model: Model | None) -> tuple[datetime, str | None]:
        """The occurred-at for a command, and why R14 must refuse it (or None)."""
        if moment == "future":
            return datetime.now(tz=UTC) + timedelta(days=2), "future"
        if moment == "earlier":
            earlier = self.clock - timedelta(days=1)
            late = model is not None and earlier < model.last_at
            return earlier, "before the previous event" if late else None
        if moment == "later":
            self.clock += timedelta(hours=step)
        return self.clock, None

    def attempt(
        self, model: Model | None, request: rq.Request, actor: str, refuse_because: list[str]
    ) -> bool:
        """Post one command. False when refused; then nothing was written on the record."""
        must_refuse = [reason for reason in refuse_because if reason]
        position = self.ledger.recorder.max_notification_id() or 0
        try:
            self.ledger.execute(request, actor)
        except (RuleViolation, InvalidInput) as error:
            event(f"{request.command}: refused ({getattr(error, 'rule', 'input')})")
            self.check_refusal_written(model, error, position, request)
            return False
        assert not must_refuse, f"{request.command} by {actor} accepted although {must_refuse}"
        event(f"{request.command}: accepted")
        new = self.written_since(position)
        if model is not None:
            on_record = [e for e in new if str(e.originator_id) == model.id]
            assert [e.originator_version for e in on_record] == [model.version + 1]
            model.version += 1
            model.last_at = on_record[0].occurred_at
            model.known_at = datetime.now(tz=UTC)
        return True

    def written_since(self, position: int) -> list[Any]:
        page = self.ledger.recorder.select_notifications(position + 1, 100)
        return [self.ledger.mapper.to_domain_event(n) for n in page]

    def check_refusal_written(
        self, model: Model | None, error: Exception, position: int, request: rq.Request
    ) -> None:
        new = self.written_since(position)
        rule = getattr(error, "rule", None)
        decision = getattr(request, "decision", None)
        if rule in KEPT_RULES or rule in KEPT_FOR.get((request.command, decision), ()):
            assert [type(e) for e in new] == [AttemptRefused], new
            assert new[0].rule == rule
            assert str(new[0].record_id) == (model.id if model else "None")
            if model is not None:  # the record's code and secrecy, as they stand
                assert (new[0].code, new[0].secrecy) == (model.code, model.secrecy)
            if isinstance(request, rq.Appraise):  # the decision and the committee named
                assert (new[0].decision, new[0].appraisers) == (decision, request.appraiser)
        else:
            assert new == [], new
        if model is not None:
            assert self.replayer.record(model.id).version == model.version

    def pick(self, index: int) -> Model:
        return self.records[index % len(self.records)]

    def common(self, model: Model, actor: str, why_time: str | None) -> list[str]:
        """Refusal reasons that hold for every command on an existing record."""
        return [
            "destroyed" if model.status == "destroyed" else "",
            why_time or "",
            f"{actor} may not post" if actor not in POSTERS else "",
        ]

    # -- receipt ----------------------------------------------------------------------

    def receive(self, year: int, secrecy: Secrecy, pages: int, liaison: str, actor: str) -> None:
        request = rq.Receive(
            title=f"File {len(self.records)} 文件",
            department="Office",
            year=year,
            carrier="paper",
            pages=pages,
            secrecy=secrecy,
            transferred_by=liaison,
            occurred_at=self.clock,
        )
        reasons = [
            "not a liaison" if liaison != "liai" else "",
            f"{actor} may not post" if actor not in POSTERS else "",
        ]
        position = self.ledger.recorder.max_notification_id() or 0
        if not self.attempt(None, request, actor, reasons):
            return
        (received,) = self.written_since(position)
        self.records.append(
            Model(
                id=str(received.originator_id),
                title=request.title,
                year=year,
                pages=pages,
                secrecy=secrecy,
                last_at=self.clock,
            )
        )

    @initialize()
    def first_record(self) -> None:
        self.receive(2000, Secrecy.PUBLIC, 10, "liai", "arch")
        assert len(self.records) == 1

    @precondition(lambda self: len(self.records) < 3)
    @rule(
        year=st.sampled_from([2000, 2000, 2005]),
        secrecy=st.sampled_from(list(Secrecy)),
        pages=st.sampled_from([10, 10, 250]),
        liaison=st.sampled_from(["liai", "liai", "bor"]),
        actor=posters,
    )
    def receive_record(
        self, year: int, secrecy: Secrecy, pages: int, liaison: str, actor: str
    ) -> None:
        self.receive(year, secrecy, pages, liaison, actor)

    # -- random commands --------------------------------------------------------------

    @rule(
        index=st.integers(0, 2),
        actor=posters,
        retention=st.sampled_from(["10y", "10y", "30y", "permanent"]),
        code=codes,
        unit=st.sampled_from(["item", "item", "volume"]),
        moment=moments,
        step=hours,
    )
    def arrange(
        self, index: int, actor: str, retention: str, code: str, unit: str, moment: str, step: int
    ) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        request = rq.Arrange(
            record=model.id,
            category="administration",
            retention=retention,
            code=code,
            unit=unit,
            occurred_at=occurred_at,
        )
        reasons = [
            *self.common(model, actor, why_time),
            "already arranged" if model.status != "received" else "",
            "code taken" if code in self.codes else "",
            "volume too thick" if unit == "volume" and model.pages > MAX_VOLUME_PAGES else "",
        ]
        if self.attempt(model, request, actor, reasons):
            model.status, model.code, model.unit = "arranged", code, unit
            model.retention = Retention(retention)
            self.codes.add(code)

    @rule(index=st.integers(0, 2), actor=posters, location=locations, moment=moments, step=hours)
    def shelve(self, index: int, actor: str, location: str, moment: str, step: int) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        request = rq.Shelve(record=model.id, location=location, occurred_at=occurred_at)
        reasons = [
            *self.common(model, actor, why_time),
            "not arranged" if model.status != "arranged" else "",
        ]
        if self.attempt(model, request, actor, reasons):
            model.status, model.location = "shelved", location

    @rule(index=st.integers(0, 2), actor=posters, location=locations, moment=moments, step=hours)
    def relocate(self, index: int, actor: str, location: str, moment: str, step: int) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        request = rq.Relocate(record=model.id, location=location, occurred_at=occurred_at)
        reasons = [
            *self.common(model, actor, why_time),
            "not shelved" if model.status != "shelved" else "",
            "same place" if location == model.location else "",
        ]
        if self.attempt(model, request, actor, reasons):
            model.location = location

    def use_reasons(
        self, model: Model, reader: str, approver: str | None, letter: str | None, approval: bool
    ) -> list[str]:
        """R4-R8 reasons a consult, copy or loan must be refused."""
        needs_approval = approval or reader in EXTERNAL or model.secrecy.is_classified
        leader_ok = approver in LEADERS and CLEARANCE[approver].covers(model.secrecy)
        return [
            "on loan (R8)" if model.status == "on-loan" else "",
            "not shelved (R4)" if model.status not in ("shelved", "on-loan") else "",
            "external without letter (R7)" if reader in EXTERNAL and not letter else "",
            "no cleared leader's approval" if needs_approval and not leader_ok else "",
            "reader not cleared (R6)" if not CLEARANCE[reader].covers(model.secrecy) else "",
        ]

    @rule(
        index=st.integers(0, 2),
        actor=posters,
        reader=readers,
        approver=st.one_of(st.none(), approvers),
        letter=letters,
        moment=moments,
        step=hours,
    )
    def consult(
        self,
        index: int,
        actor: str,
        reader: str,
        approver: str | None,
        letter: str | None,
        moment: str,
        step: int,
    ) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        request = rq.Consult(
            record=model.id,
            reader=reader,
            purpose="study",
            approved_by=approver,
            letter=letter,
            occurred_at=occurred_at,
        )
        reasons = [
            *self.common(model, actor, why_time),
            *self.use_reasons(model, reader, approver, letter, approval=False),
        ]
        self.attempt(model, request, actor, reasons)

    @rule(
        index=st.integers(0, 2),
        actor=posters,
        reader=readers,
        approver=approvers,
        letter=letters,
        pages=st.sampled_from([1, 5, 999]),
        moment=moments,
        step=hours,
    )
    def copy(
        self,
        index: int,
        actor: str,
        reader: str,
        approver: str,
        letter: str | None,
        pages: int,
        moment: str,
        step: int,
    ) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        request = rq.Copy(
            record=model.id,
            reader=reader,
            pages=pages,
            purpose="copy",
            approved_by=approver,
            letter=letter,
            occurred_at=occurred_at,
        )
        reasons = [
            *self.common(model, actor, why_time),
            *self.use_reasons(model, reader, approver, letter, approval=True),
            "more pages than the record" if pages > model.pages else "",
        ]
        self.attempt(model, request, actor, reasons)

    @rule(
        index=st.integers(0, 2),
        actor=posters,
        reader=readers,
        approver=approvers,
        letter=letters,
        due_in=st.sampled_from([30, 30, 0, -1]),
        moment=moments,
        step=hours,
    )
    def lend(
        self,
        index: int,
        actor: str,
        reader: str,
        approver: str,
        letter: str | None,
        due_in: int,
        moment: str,
        step: int,
    ) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        self.lend_to(model, actor, reader, approver, letter, due_in, occurred_at, why_time)

    def lend_to(
        self,
        model: Model,
        actor: str,
        reader: str,
        approver: str,
        letter: str | None,
        due_in: int,
        occurred_at: datetime,
        why_time: str | None,
    ) -> bool:
        request = rq.Lend(
            record=model.id,
            to=reader,
            due=occurred_at.date() + timedelta(days=due_in),
            purpose="loan",
            approved_by=approver,
            letter=letter,
            occurred_at=occurred_at,
        )
        reasons = [
            *self.common(model, actor, why_time),
            *self.use_reasons(model, reader, approver, letter, approval=True),
            "due before the loan (R10)" if due_in < 0 else "",
        ]
        if not self.attempt(model, request, actor, reasons):
            return False
        model.status, model.borrower, model.lent_before = "on-loan", reader, True
        return True

    @rule(
        index=st.integers(0, 2),
        actor=posters,
        missing=st.sampled_from([0, 0, 0, 1]),
        condition=st.sampled_from(["intact", "intact", "damaged"]),
        moment=moments,
        step=hours,
    )
    def give_back(
        self, index: int, actor: str, missing: int, condition: str, moment: str, step: int
    ) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        self.return_(model, actor, missing, condition, occurred_at, why_time)

    def return_(
        self,
        model: Model,
        actor: str,
        missing: int,
        condition: str,
        occurred_at: datetime,
        why_time: str | None,
    ) -> bool:
        request = rq.Return(
            record=model.id,
            pages=model.pages - missing,
            condition=condition,
            occurred_at=occurred_at,
        )
        reasons = [
            *self.common(model, actor, why_time),
            "not on loan (R9)" if model.status != "on-loan" else "",
            "checked in by its borrower (R9)" if actor == model.borrower else "",
        ]
        if not self.attempt(model, request, actor, reasons):
            return False
        model.status, model.borrower = "shelved", None
        if missing or condition == "damaged":
            model.returned = (condition == "damaged", model.pages - missing)
        return True

    @rule(index=st.integers(0, 2), actor=posters, moment=moments, step=hours)
    def repair(self, index: int, actor: str, moment: str, step: int) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        request = rq.Repair(record=model.id, note="rebound", occurred_at=occurred_at)
        reasons = [
            *self.common(model, actor, why_time),
            "no discrepancy (R9)" if not model.discrepancy else "",
            "on loan (R8)" if model.status == "on-loan" else "",
        ]
        if self.attempt(model, request, actor, reasons):
            model.returned = None

    @rule(
        index=st.integers(0, 2),
        actor=appraising,
        decision=st.sampled_from(["destroy", "destroy", "destroy", "retain", "declassify", "open"]),
        committee=committees,
        review=st.booleans(),
        lower_to=st.sampled_from([None, Secrecy.PUBLIC, Secrecy.INTERNAL, Secrecy.SECRET]),
        moment=moments,
        step=hours,
    )
    def appraise(
        self,
        index: int,
        actor: str,
        decision: str,
        committee: list[str],
        review: bool,
        lower_to: Secrecy | None,
        moment: str,
        step: int,
    ) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        self.appraise_as(
            model, actor, Decision(decision), committee, review, lower_to, occurred_at, why_time
        )

    def appraise_as(
        self,
        model: Model,
        actor: str,
        decision: Decision,
        committee: list[str],
        review: bool,
        lower_to: Secrecy | None,
        occurred_at: datetime,
        why_time: str | None,
    ) -> bool:
        # A review date with a destruction, or a level without a declassification, is
        # invalid input (tests/test_cli_errors.py): the model gives neither.
        review = review and decision is not Decision.DESTROY
        lower_to = lower_to if decision is Decision.DECLASSIFY else None
        request = rq.Appraise(
            record=model.id,
            decision=decision,
            appraiser=committee,
            basis="committee",
            review_on=occurred_at.date() + timedelta(days=365) if review else None,
            secrecy=lower_to,
            occurred_at=occurred_at,
        )
        expiry = model.expiry()
        destroy = decision is Decision.DESTROY
        reasons = [
            "destroyed" if model.status == "destroyed" else "",
            why_time or "",
            f"{actor} is no appraiser" if actor not in APPRAISERS else "",
            "not arranged" if model.retention is None else "",
            "committee" if len(set(committee)) < 2 or not set(committee) <= APPRAISERS else "",
            "on loan (R8)" if destroy and model.status == "on-loan" else "",
            "retention running" if destroy and (not expiry or occurred_at.date() < expiry) else "",
            "retain needs a review date" if decision is Decision.RETAIN and not review else "",
            "not lowering secrecy"
            if decision is Decision.DECLASSIFY
            and (lower_to or Secrecy.PUBLIC).rank >= model.secrecy.rank
            else "",
        ]
        if not self.attempt(model, request, actor, reasons):
            return False
        model.appraisal, model.appraisal_version = decision, model.version
        if decision is Decision.DECLASSIFY:
            model.secrecy = lower_to or Secrecy.PUBLIC
        elif decision is Decision.OPEN:
            model.secrecy, model.opened = Secrecy.PUBLIC, True
        return True

    @rule(
        index=st.integers(0, 2),
        actor=posters,
        approver=approvers,
        witnesses=witness_sets,
        moment=moments,
        step=hours,
    )
    def destroy(
        self, index: int, actor: str, approver: str, witnesses: list[str], moment: str, step: int
    ) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        self.destroy_with(model, actor, approver, witnesses, occurred_at, why_time)

    def destroy_with(
        self,
        model: Model,
        actor: str,
        approver: str,
        witnesses: list[str],
        occurred_at: datetime,
        why_time: str | None,
    ) -> bool:
        self.serial += 1
        request = rq.Destroy(
            record=model.id,
            approved_by=approver,
            witness=witnesses,
            register=f"XH-{self.serial:04d}",
            occurred_at=occurred_at,
        )
        expiry = model.expiry()
        reasons = [
            *self.common(model, actor, why_time),
            "on loan (R8)" if model.status == "on-loan" else "",
            "no standing destroy decision" if model.appraisal is not Decision.DESTROY else "",
            "retention running" if not expiry or occurred_at.date() < expiry else "",
            "approver"
            if not (approver in LEADERS and CLEARANCE[approver].covers(model.secrecy))
            else "",
            "witnesses"
            if len(set(witnesses)) < 2 or "gone" in witnesses or actor in witnesses
            else "",
        ]
        if not self.attempt(model, request, actor, reasons):
            return False
        model.status, model.location = "destroyed", None
        return True

    @rule(
        index=st.integers(0, 2),
        actor=posters,
        # The version referenced: the event that set the field (R13), or the latest, the
        # one before it or one that does not exist yet.
        back=st.sampled_from([None, None, 0, 1, -1]),
        changes=st.sampled_from(
            [
                {"title": "Corrected 更正"},
                {"pages": 12},
                {"pages": 250},
                {"year": 2009},
                {"year": 2000},
                {},
            ]
        ),
        moment=moments,
        step=hours,
    )
    def correct(
        self,
        index: int,
        actor: str,
        back: int | None,
        changes: dict[str, Any],
        moment: str,
        step: int,
    ) -> None:
        model = self.pick(index)
        occurred_at, why_time = self.at(moment, step, model)
        setter = model.set_by[next(iter(changes))] if changes else 1
        version = max(setter if back is None else model.version - back, 1)
        request = rq.Correct(
            record=model.id, version=version, reason="typo", set=changes, occurred_at=occurred_at
        )
        now = {"title": model.title, "pages": model.pages, "year": model.year}
        other = any(model.set_by[f] != version for f in changes)
        reasons = [
            *self.common(model, actor, why_time),
            "no such version (R13)" if version > model.version else "",
            "volume too thick (R3)"
            if model.unit == "volume" and int(changes.get("pages", 0)) > MAX_VOLUME_PAGES
            else "",
            "another version set it (R13)" if other else "",
            "changes nothing" if any(now[f] == v for f, v in changes.items()) else "",
        ]
        if not self.attempt(model, request, actor, reasons):
            assert not changes or any(reasons), f"correction {changes} v{version} refused"
            return
        model.title = changes.get("title", model.title)
        model.pages = int(changes.get("pages", model.pages))
        model.year = int(changes.get("year", model.year))
        model.set_by |= dict.fromkeys(changes, model.version)
        if not model.discrepancy:  # R9: the corrected pages match the pages returned
            model.returned = None

    # -- attempts kept for the auditor that random commands seldom reach -----------------

    @precondition(lambda self: any(m.status == "destroyed" for m in self.records))
    @rule(index=st.integers(0, 2), command=st.sampled_from(["consult", "copy", "lend"]), step=hours)
    def use_destroyed(self, index: int, command: str, step: int) -> None:
        """A use of a destroyed record, valid but for that: refused (R12) and kept."""
        gone = [m for m in self.records if m.status == "destroyed"]
        model = gone[index % len(gone)]
        self.clock += timedelta(hours=step)
        use: dict[str, Any] = {"record": model.id, "purpose": "p", "approved_by": "lead"}
        use["occurred_at"] = self.clock
        request: rq.Request
        if command == "consult":
            request = rq.Consult(reader="bor-sec", **use)
        elif command == "copy":
            request = rq.Copy(reader="bor-sec", pages=1, **use)
        else:
            request = rq.Lend(to="bor-sec", due=self.clock.date() + timedelta(days=30), **use)
        assert not self.attempt(model, request, "arch", ["destroyed"])

    @precondition(lambda self: any(_redatable(m, self.clock) for m in self.records))
    @rule(index=st.integers(0, 2), step=hours)
    def destroy_after_redating(self, index: int, step: int) -> None:
        """A standing decision to destroy, then the year corrected (R13) so that the
        retention runs again: the destruction is refused (R11) and kept."""
        ready = [m for m in self.records if _redatable(m, self.clock)]
        model = ready[index % len(ready)]
        self.clock += timedelta(minutes=step)
        fix = rq.Correct(
            record=model.id,
            version=model.set_by["year"],
            reason="year",
            set={"year": REDATED},
            occurred_at=self.clock,
        )
        assert self.attempt(model, fix, "arch", [])
        model.year, model.set_by["year"] = REDATED, model.version
        self.clock += timedelta(minutes=step)
        assert not self.destroy_with(model, "arch", "lead", ["bor", "aud"], self.clock, None)

    # -- the next valid step of a record's life (biases towards deep states) ------------

    def advance(self, index: int, step: int) -> None:
        alive = [m for m in self.records if m.status != "destroyed"]
        if not alive:
            return
        model = alive[index % len(alive)]
        self.clock += timedelta(hours=step)
        at = self.clock
        done = self.next_step(model, at)
        assert done, f"valid next step refused for {model}"

    def next_step(self, model: Model, at: datetime) -> bool:
        if model.status == "received":
            self.serial += 1
            code = f"Z009-{self.serial:04d}"
            request = rq.Arrange(
                record=model.id,
                category="business",
                retention="10y",
                code=code,
                occurred_at=at,
            )
            if not self.attempt(model, request, "arch", []):
                return False
            model.status, model.code, model.retention = "arranged", code, Retention.YEARS_10
            self.codes.add(code)
            return True
        if model.status == "arranged":
            request = rq.Shelve(record=model.id, location="C3-01-1-1", occurred_at=at)
            if not self.attempt(model, request, "arch", []):
                return False
            model.status, model.location = "shelved", "C3-01-1-1"
            return True
        if model.status == "on-loan":
            return self.return_(model, "arch", 0, "intact", at, None)
        if model.discrepancy:
            request = rq.Repair(record=model.id, note="repaired", occurred_at=at)
            if not self.attempt(model, request, "dir", []):
                return False
            model.returned = None
            return True
        return self.next_use(model, at)

    def next_use(self, model: Model, at: datetime) -> bool:
        if not model.lent_before:
            return self.lend_to(model, "arch", "dir", "lead", None, 30, at, None)
        expiry = model.expiry()
        expired = expiry is not None and at.date() >= expiry
        if model.appraisal is Decision.DESTROY and expired:
            return self.destroy_with(model, "arch", "lead", ["bor", "aud"], at, None)
        decision = Decision.DESTROY if expired else Decision.RETAIN
        return self.appraise_as(model, "ap1", decision, ["ap1", "ap2"], True, None, at, None)

    @rule(index=st.integers(0, 2), step=hours)
    def advance_a(self, index: int, step: int) -> None:
        self.advance(index, step)

    @rule(index=st.integers(0, 2), step=hours)
    def advance_b(self, index: int, step: int) -> None:
        self.advance(index, step)

    @rule(index=st.integers(0, 2), step=hours)
    def advance_c(self, index: int, step: int) -> None:
        self.advance(index, step)

    @rule(index=st.integers(0, 2), step=hours)
    def advance_d(self, index: int, step: int) -> None:
        self.advance(index, step)

    # -- invariants on the stored history ---------------------------------------------

    @invariant()
    def history_kept(self) -> None:
        """The state each version left, once the step that made it has updated the model."""
        for model in self.records:
            if len(model.history) < model.version:
                model.history.append((model.last_at, model.known_at, model.state()))
            assert len(model.history) == model.version

    @invariant()
    def replay_gives_the_model_and_the_chain(self) -> None:
        for model in self.records:
            replayed = self.replayer.record(model.id)
            assert state_of(replayed) == model.state()
            events = self.stored_events(model.id)
            assert replayed.chain_head == events[-1][1]
            assert self.ledger.record(model.id).chain_head == replayed.chain_head
            self.check_history(model, replayed, [e for e, _ in events])

    def stored_events(self, record_id: str) -> list[tuple[Any, str]]:
        """(event, recorded hash) of a record, checking each hash and link of the chain."""
        found = []
        previous = GENESIS
        stored = self.replayer.recorder.select_events(UUID(record_id))
        for version, item in enumerate(stored, start=1):
            body, recorded = self.replayer.mapper.decode_state(item.state)
            assert digest(body) == recorded
            domain_event = self.replayer.mapper.to_domain_event(item)
            assert (domain_event.originator_version, domain_event.prev_hash) == (version, previous)
            found.append((domain_event, recorded))
            previous = recorded
        return found

    def check_history(self, model: Model, record: Record, events: list[Any]) -> None:
        open_loan: str | None = None
        for before, after in pairwise(events):
            assert before.occurred_at <= after.occurred_at
        for item in events:
            assert item.occurred_at <= item.timestamp
            if isinstance(item, Lent):
                assert open_loan is None, "two open loans"
                open_loan = item.reader
            elif isinstance(item, Returned):
                assert open_loan == item.borrower
                open_loan = None
        assert (open_loan is not None) == (record.status == "on-loan")
        if record.status != "destroyed":
            assert record.custodian == (open_loan or "archive")
        assert (record.location is None) == (record.status in ("received", "arranged", "destroyed"))
        if record.unit == "volume":
            assert record.pages <= MAX_VOLUME_PAGES
        destroyed = [i for i, e in enumerate(events) if isinstance(e, Destroyed)]
        assert destroyed in ([], [len(events) - 1]), "an event after destruction"
        if destroyed:
            self.check_destruction(events)

    def check_destruction(self, events: list[Any]) -> None:
        destruction: Destroyed = events[-1]
        appraisals = [e for e in events if isinstance(e, Appraised)]
        assert appraisals, "destroyed without appraisal"
        standing = appraisals[-1]
        assert standing.decision is Decision.DESTROY
        assert standing.originator_version == destruction.appraisal_version
        assert len(set(destruction.witnesses)) >= 2
        assert destruction.approved_by in LEADERS
        assert len(set(standing.appraisers)) >= 2
        assert set(standing.appraisers) <= APPRAISERS
        assert destruction.register_no.startswith("XH-")
        event("reached: destroyed")


RecordLedgerMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRecordLedger = RecordLedgerMachine.TestCase
