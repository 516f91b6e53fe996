"""The return check (R9): what a return found, and the discrepancy it leaves open.

A discrepancy is judged against the catalogue's page count as it stands, not as it stood at
the return: a correction of the pages (R13) re-judges an open one (it may say how many are
missing now, or find nothing left to resolve). Derived on replay: the stored events keep
what the return check wrote at the time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DAMAGED = "returned damaged"
SHORT = re.compile(r"(\d+) pages returned, catalogue says \d+")


@dataclass(frozen=True)
class ReturnCheck:
    damaged: bool
    pages: int  # returned

    def discrepancy(self, catalogued: int) -> str | None:
        """What differs from a catalogue of ``catalogued`` pages; None when nothing does."""
        problems = [DAMAGED] if self.damaged else []
        if self.pages != catalogued:
            problems.append(f"{self.pages} pages returned, catalogue says {catalogued}")
        return "; ".join(problems) or None

    @classmethod
    def read(cls, discrepancy: str, catalogued: int) -> ReturnCheck:
        """The check behind a discrepancy as ``discrepancy()`` wrote it against a catalogue
        of ``catalogued`` pages (a read model keeps the text only; the text is also what
        every stored return records, so its form never changes)."""
        parts = discrepancy.split("; ")
        pages = catalogued
        for part in parts:
            if (short := SHORT.fullmatch(part)) is not None:
                pages = int(short.group(1))
        return cls(damaged=DAMAGED in parts, pages=pages)
