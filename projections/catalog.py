"""The catalog (目录): one row per record, its catalogue fields and where it stands now;
and the titles that corrections replaced, for the loan register as of a past moment."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from aggregates import record_events as ev
from aggregates.return_check import ReturnCheck
from aggregates.rules import is_late
from aggregates.values import Unit
from projections.base import LedgerProjection, as_dict, blank, row_maker, utc_text
from projections.log import Event
from projections.tables import Changes, Table, TableChanges, ViewSpec

CATALOG = Table(
    "catalog",
    columns=(
        ("id", "text"),
        ("code", "text"),
        ("title", "text"),
        ("department", "text"),
        ("year", "int"),
        ("category", "text"),
        ("carrier", "text"),
        ("pages", "int"),
        ("retention", "text"),
        ("unit", "text"),
        ("secrecy", "text"),
        ("status", "text"),
        ("location", "text"),
        ("custodian", "text"),
        ("late", "int"),
        ("discrepancy", "text"),
        ("received_at", "text"),
        ("last_event_at", "text"),
        ("version", "int"),
    ),
    key=("id",),
    indexes=(("code",),),
)
# One row per correction of a title: the title it replaced, which the record had until
# then (the correction's time in UTC text). A title as of a moment is that of the first
# correction after it, or the catalog's.
FORMER_TITLES = Table(
    "former_titles",
    columns=(("record_id", "text"), ("version", "int"), ("until_utc", "text"), ("title", "text")),
    key=("record_id", "version"),
)
CORRECTABLE = ("title", "department", "year", "pages")
BLANK = blank(CATALOG)
as_row = row_maker(CATALOG)
CACHE_LIMIT = 20_000  # rows kept between pages; a rebuild's pages mostly touch recent records

Row = dict[str, Any]


class CatalogProjection(LedgerProjection):
    spec = ViewSpec("catalog", (CATALOG, FORMER_TITLES))
    handlers = {
        ev.Received.TOPIC: "received",
        ev.Arranged.TOPIC: "arranged",
        ev.Shelved.TOPIC: "shelved",
        ev.Relocated.TOPIC: "relocated",
        ev.Consulted.TOPIC: "touched",
        ev.Copied.TOPIC: "touched",
        ev.Lent.TOPIC: "lent",
        ev.Returned.TOPIC: "returned",
        ev.Repaired.TOPIC: "repaired",
        ev.LossReported.TOPIC: "loss_reported",
        ev.Appraised.TOPIC: "appraised",
        ev.Destroyed.TOPIC: "destroyed",
        ev.Corrected.TOPIC: "corrected",
    }
    reads = {
        "received": "title department year carrier pages secrecy late",
        "arranged": "category retention code unit",
        "shelved": "location",
        "relocated": "location",
        "lent": "reader",
        "returned": "discrepancy",
        "loss_reported": "pages",
        "appraised": "secrecy_after",
        "corrected": "changes",
    }

    def forget(self) -> None:
        self.rows: dict[str, Row] = {}  # record id -> row as stored (or as this page leaves it)
        self.new: set[str] = set()  # received in this page: inserted
        self.dirty: set[str] = set()  # stored before, changed in this page: updated
        self.former: list[tuple[str, int, str, str]] = []  # FORMER_TITLES rows of this page

    def prepare(self, events: Sequence[Event]) -> None:
        received = ev.Received.TOPIC
        # Received in this page: not stored yet (a receipt is a record's first event).
        here = {f.originator_id for _, topic, f in events if topic == received}
        rows = self.rows
        wanted = {i for i in {f.originator_id for _, _, f in events} - here if i not in rows}
        for row in self.load(CATALOG, "id", wanted):
            self.rows[row[0]] = as_dict(CATALOG, row)

    def collect(self) -> Changes:
        changes = TableChanges(
            inserts=[as_row(self.rows[i]) for i in sorted(self.new)],
            updates=[as_row(self.rows[i]) for i in sorted(self.dirty - self.new)],
        )
        former = TableChanges(inserts=self.former)
        self.new, self.dirty, self.former = set(), set(), []
        if len(self.rows) > CACHE_LIMIT:
            self.rows = {}
        return {CATALOG.name: changes, FORMER_TITLES.name: former}

    def _row(self, fields: Any) -> Row | None:
        """The record's row, marked changed and stamped with this event."""
        record_id = fields.originator_id
        row = self.rows.get(record_id)
        if row is not None:
            self.dirty.add(record_id)
            row["last_event_at"] = fields.occurred_at
            row["version"] = fields.originator_version
        return row

    # -- handlers ---------------------------------------------------------

    def received(self, position: int, f: Any) -> None:
        record_id = f.originator_id
        self.rows[record_id] = {
            **BLANK,
            "id": record_id,
            "title": f.title,
            "department": f.department,
            "year": f.year,
            "carrier": f.carrier,
            "pages": f.pages,
            "unit": Unit.ITEM.value,  # a record is an item until arranged as a volume
            "secrecy": f.secrecy,
            "status": "received",
            "custodian": "archive",
            "late": 1 if f.late else 0,
            "received_at": f.occurred_at,
            "last_event_at": f.occurred_at,
            "version": f.originator_version,
        }
        self.new.add(record_id)

    def arranged(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            row["category"], row["retention"] = f.category, f.retention
            row["code"], row["unit"], row["status"] = f.code, f.unit, "arranged"

    def shelved(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            row["location"], row["status"] = f.location, "shelved"

    def relocated(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            row["location"] = f.location

    def touched(self, position: int, f: Any) -> None:
        self._row(f)

    def lent(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            row["status"], row["custodian"] = "on-loan", f.reader

    def returned(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            row["status"], row["custodian"] = "shelved", "archive"
            if f.discrepancy:
                row["discrepancy"] = f.discrepancy

    def repaired(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            row["discrepancy"] = None

    def loss_reported(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            row.update(discrepancy=None, pages=f.pages)

    def appraised(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            row["secrecy"] = f.secrecy_after

    def destroyed(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            row.update(status="destroyed", location=None, custodian=None)

    def corrected(self, position: int, f: Any) -> None:
        if (row := self._row(f)) is not None:
            changes = f.changes or {}
            if "title" in changes:
                until = utc_text(f.occurred_at)
                self.former.append((f.originator_id, f.originator_version, until, row["title"]))
            pages = row["pages"]
            for field, value in changes.items():
                if field in CORRECTABLE:
                    row[field] = value
            if "year" in changes:  # R2, judged as the record judges it
                received = datetime.fromisoformat(row["received_at"])
                row["late"] = 1 if is_late(int(row["year"]), received) else 0
            if "pages" in changes and row["discrepancy"]:  # R9, likewise
                check = ReturnCheck.read(row["discrepancy"], int(pages))
                row["discrepancy"] = check.discrepancy(int(row["pages"]))
