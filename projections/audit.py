"""The audit trail (利用登记): every use of a record and every refused attempt (R5-R8, R18,
R19; R11 and R12 of a destruction, R11 of an appraisal for destruction, R12 of a use of a
destroyed record).

Each row carries the record's secrecy and archival code as they were at that moment; the
projection keeps them per record in ``audit_records`` (an appraisal may lower secrecy).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregates import record_events as ev
from aggregates.refusal import AttemptRefused
from projections.base import LedgerProjection, utc_text
from projections.log import Event
from projections.tables import Changes, Table, TableChanges, ViewSpec

AUDIT = Table(
    "audit",
    columns=(
        ("position", "big"),
        ("occurred_at", "text"),
        ("occurred_utc", "text"),
        ("record_id", "text"),
        ("code", "text"),
        ("secrecy", "text"),
        ("action", "text"),
        ("outcome", "text"),
        ("rule", "text"),
        ("actor", "text"),
        ("reader", "text"),
        ("approved_by", "text"),
        ("letter", "text"),
        ("purpose", "text"),
        ("detail", "text"),
        ("version", "int"),  # a use's version on its record; none for a refused attempt
    ),
    key=("position",),
    # No index on actor or reader: two more cost a 1,000,000-event rebuild on PostgreSQL
    # about a tenth of its time, for a look-up (queries.names) that only an unregistered
    # actor's empty answer makes.
    indexes=(("occurred_utc",), ("record_id",), ("code",)),
    added=("version",),
)
AUDIT_RECORDS = Table(
    "audit_records",
    columns=(("record_id", "text"), ("code", "text"), ("secrecy", "text")),
    key=("record_id",),
)
CACHE_LIMIT = 50_000
NO_STATE = (None, None)
USE = "actor reader approved_by letter purpose"  # what a use and an attempt carry
# Topics whose handling needs the record's stored code and secrecy.
NEEDS_STATE = frozenset(
    {
        ev.Arranged.TOPIC,
        ev.Appraised.TOPIC,
        ev.Consulted.TOPIC,
        ev.Copied.TOPIC,
        ev.Lent.TOPIC,
        ev.Returned.TOPIC,
    }
)


class AuditProjection(LedgerProjection):
    spec = ViewSpec("audit", (AUDIT, AUDIT_RECORDS))
    handlers = {
        ev.Received.TOPIC: "received",
        ev.Arranged.TOPIC: "arranged",
        ev.Appraised.TOPIC: "appraised",
        ev.Consulted.TOPIC: "consulted",
        ev.Copied.TOPIC: "copied",
        ev.Lent.TOPIC: "lent",
        ev.Returned.TOPIC: "returned",
        AttemptRefused.TOPIC: "refused",
    }
    reads = {
        "received": "secrecy",
        "arranged": "code",
        "appraised": "secrecy_after",
        "consulted": USE,
        "copied": f"{USE} pages",
        "lent": f"{USE} due",
        "returned": "actor borrower condition pages discrepancy",
        "refused": f"{USE} record_id code secrecy action rule reason decision appraisers",
    }

    def forget(self) -> None:
        self.records: dict[str, list[Any]] = {}  # record id -> [code, secrecy] as stored
        self.rows: list[tuple[Any, ...]] = []
        self.new: set[str] = set()
        self.dirty: set[str] = set()

    def prepare(self, events: Sequence[Event]) -> None:
        received = ev.Received.TOPIC
        here = {f.originator_id for _, topic, f in events if topic == received}  # not stored yet
        needs = {f.originator_id for _, topic, f in events if topic in NEEDS_STATE} - here
        records = self.records
        wanted = {i for i in needs if i not in records}
        for record_id, code, secrecy in self.load(AUDIT_RECORDS, "record_id", wanted):
            records[record_id] = [code, secrecy]

    def collect(self) -> Changes:
        state = self.records
        records = TableChanges(
            inserts=[(i, *state[i]) for i in sorted(self.new)],
            updates=[(i, *state[i]) for i in sorted(self.dirty - self.new)],
        )
        changes = {AUDIT.name: TableChanges(inserts=self.rows), AUDIT_RECORDS.name: records}
        self.rows, self.new, self.dirty = [], set(), set()
        if len(self.records) > CACHE_LIMIT:
            self.records = {}
        return changes

    # -- the record's state -----------------------------------------------

    def received(self, position: int, f: Any) -> None:
        self.records[f.originator_id] = [None, f.secrecy]
        self.new.add(f.originator_id)

    def arranged(self, position: int, f: Any) -> None:
        self._set(f.originator_id, 0, f.code)

    def appraised(self, position: int, f: Any) -> None:
        self._set(f.originator_id, 1, f.secrecy_after)

    def _set(self, record_id: str, index: int, value: Any) -> None:
        state = self.records.get(record_id)
        if state is not None and state[index] != value:
            state[index] = value
            self.dirty.add(record_id)

    # -- rows ---------------------------------------------------------------

    def consulted(self, position: int, f: Any) -> None:
        self._use(position, f, "consulted", None)

    def copied(self, position: int, f: Any) -> None:
        self._use(position, f, "copied", f"{f.pages} pages")

    def lent(self, position: int, f: Any) -> None:
        self._use(position, f, "lent", f"due {f.due}")

    def _use(self, position: int, f: Any, action: str, detail: str | None) -> None:
        record_id, at = f.originator_id, f.occurred_at
        code, secrecy = self.records.get(record_id) or NO_STATE
        self.rows.append(
            (position, at, utc_text(at), record_id, code, secrecy, action, "done", None,
             f.actor, f.reader, f.approved_by, f.letter, f.purpose, detail,
             f.originator_version)
        )  # fmt: skip

    def returned(self, position: int, f: Any) -> None:
        detail = f"{f.condition}, {f.pages} pages"
        if f.discrepancy:
            detail += f"; {f.discrepancy}"
        record_id, at = f.originator_id, f.occurred_at
        code, secrecy = self.records.get(record_id) or NO_STATE
        self.rows.append(
            (position, at, utc_text(at), record_id, code, secrecy, "returned", "done", None,
             f.actor, f.borrower, None, None, None, detail, f.originator_version)
        )  # fmt: skip

    def refused(self, position: int, f: Any) -> None:
        """A refused attempt carries the record's code and secrecy as they were; an
        appraisal's, in its detail, the decision and the committee."""
        at, detail = f.occurred_at, f.reason
        if f.decision is not None:
            detail += f"; decision {f.decision}, appraisers {', '.join(f.appraisers)}"
        self.rows.append(
            (position, at, utc_text(at), f.record_id, f.code, f.secrecy, f.action,
             "refused", f.rule, f.actor, f.reader, f.approved_by, f.letter,
             f.purpose, detail, None)
        )  # fmt: skip
