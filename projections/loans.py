"""The loan register (借阅登记): every loan, from lending to the face-to-face return (R9, R10)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregates import record_events as ev
from projections.base import LedgerProjection, as_dict, blank, row_maker
from projections.log import Event
from projections.tables import Changes, Table, TableChanges, ViewSpec

LOANS = Table(
    "loans",
    columns=(
        ("record_id", "text"),
        ("lent_version", "int"),
        ("borrower", "text"),
        ("approved_by", "text"),
        ("purpose", "text"),
        ("letter", "text"),
        ("lent_at", "text"),
        ("due", "text"),
        ("lent_by", "text"),
        ("returned_at", "text"),
        ("returned_to", "text"),
        ("condition", "text"),
        ("pages_returned", "int"),
        ("discrepancy", "text"),
    ),
    key=("record_id", "lent_version"),
    indexes=(("borrower",),),
)
CACHE_LIMIT = 50_000
BLANK = blank(LOANS)
as_row = row_maker(LOANS)

Loan = dict[str, Any]


class LoansProjection(LedgerProjection):
    spec = ViewSpec("loans", (LOANS,))
    handlers = {ev.Lent.TOPIC: "lent", ev.Returned.TOPIC: "returned"}
    reads = {
        "lent": "reader approved_by purpose letter due actor",
        "returned": "actor condition pages discrepancy",
    }

    def forget(self) -> None:
        self.open: dict[str, Loan] = {}  # record id -> its open loan, as stored
        self.new: list[Loan] = []  # lent in this page
        self.returned_loans: list[Loan] = []  # stored before, returned in this page

    def prepare(self, events: Sequence[Event]) -> None:
        lent, wanted = ev.Lent.TOPIC, set()
        lent_here: set[str] = set()  # a return of a loan made in this page needs no stored row
        for _, topic, f in events:
            record_id = f.originator_id
            if topic == lent:
                lent_here.add(record_id)
            elif record_id not in lent_here and record_id not in self.open:
                wanted.add(record_id)
        for row in self.load(LOANS, "record_id", wanted, "AND returned_at IS NULL"):
            loan = as_dict(LOANS, row)
            loan["stored"] = True
            self.open[loan["record_id"]] = loan

    def collect(self) -> Changes:
        changes = TableChanges(
            inserts=[as_row(loan) for loan in self.new],
            updates=[as_row(loan) for loan in self.returned_loans],
        )
        for loan in self.new:
            loan["stored"] = True
        self.new, self.returned_loans = [], []
        if len(self.open) > CACHE_LIMIT:
            self.open = {}
        return {LOANS.name: changes}

    def lent(self, position: int, f: Any) -> None:
        loan = dict(BLANK)
        loan.update(
            {
                "record_id": f.originator_id,
                "lent_version": f.originator_version,
                "borrower": f.reader,
                "approved_by": f.approved_by,
                "purpose": f.purpose,
                "letter": f.letter,
                "lent_at": f.occurred_at,
                "due": f.due,
                "lent_by": f.actor,
                "stored": False,
            }
        )
        self.new.append(loan)
        self.open[loan["record_id"]] = loan

    def returned(self, position: int, f: Any) -> None:
        loan = self.open.pop(f.originator_id, None)
        if loan is None:
            return
        loan.update(
            returned_at=f.occurred_at,
            returned_to=f.actor,
            condition=f.condition,
            pages_returned=f.pages,
            discrepancy=f.discrepancy,
        )
        if loan["stored"]:
            self.returned_loans.append(loan)
