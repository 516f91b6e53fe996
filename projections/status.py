"""Where each projection stands: its position, and how many events it is behind."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import PersistenceError

from ledger.application import Ledger
from projections.log import EventLog
from projections.runner import PROJECTIONS, open_view


def status_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """One row per projection; reads only (a projection never built shows as such)."""
    log = EventLog(ledger)
    head = log.head()
    rows = []
    for name in PROJECTIONS:
        try:
            position: int | None = open_view(ledger, name).position() or 0
        except PersistenceError:  # its tables do not exist yet
            position = None
        lag = log.count_after(position or 0)
        state = "not built" if position is None else "up to date" if lag == 0 else "behind"
        row = {"projection": name, "position": position, "head": head, "lag": lag}
        rows.append({**row, "state": state})
    return rows
