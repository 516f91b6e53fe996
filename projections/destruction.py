"""Appraisals (鉴定) and destructions (销毁): the rows of the destruction register (R11, R12).

Both tables only grow. The register joins a destruction with the appraisal it rests on
(``appraisal_version``) and with the record's catalogue fields.
"""

from __future__ import annotations

from typing import Any

from aggregates import record_events as ev
from projections.base import LedgerProjection
from projections.tables import Changes, Table, TableChanges, ViewSpec

APPRAISALS = Table(
    "appraisals",
    columns=(
        ("record_id", "text"),
        ("version", "int"),
        ("appraised_at", "text"),
        ("decision", "text"),
        ("appraisers", "text"),
        ("basis", "text"),
        ("review_on", "text"),
        ("secrecy_after", "text"),
        ("actor", "text"),
    ),
    key=("record_id", "version"),
)
DESTRUCTIONS = Table(
    "destructions",
    columns=(
        ("record_id", "text"),
        ("version", "int"),
        ("destroyed_at", "text"),
        ("approved_by", "text"),
        ("witnesses", "text"),
        ("register_no", "text"),
        ("method", "text"),
        ("appraisal_version", "int"),
        ("actor", "text"),
    ),
    key=("record_id",),
    indexes=(("register_no",),),
)


class DestructionProjection(LedgerProjection):
    spec = ViewSpec("destruction", (APPRAISALS, DESTRUCTIONS))
    handlers = {ev.Appraised.TOPIC: "appraised", ev.Destroyed.TOPIC: "destroyed"}
    reads = {
        "appraised": "decision appraisers basis review_on secrecy_after actor",
        "destroyed": "approved_by witnesses register_no method appraisal_version actor",
    }

    def forget(self) -> None:
        self.appraisals: list[tuple[Any, ...]] = []
        self.destructions: list[tuple[Any, ...]] = []

    def collect(self) -> Changes:
        changes = {
            APPRAISALS.name: TableChanges(inserts=self.appraisals),
            DESTRUCTIONS.name: TableChanges(inserts=self.destructions),
        }
        self.forget()
        return changes

    def appraised(self, position: int, f: Any) -> None:
        self.appraisals.append(
            (
                f.originator_id,
                f.originator_version,
                f.occurred_at,
                f.decision,
                ",".join(f.appraisers),
                f.basis,
                f.review_on,
                f.secrecy_after,
                f.actor,
            )
        )

    def destroyed(self, position: int, f: Any) -> None:
        self.destructions.append(
            (
                f.originator_id,
                f.originator_version,
                f.occurred_at,
                f.approved_by,
                ",".join(f.witnesses),
                f.register_no,
                f.method,
                f.appraisal_version,
                f.actor,
            )
        )
