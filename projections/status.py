"""Where each projection stands: its position, and how many events it is behind."""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import PersistenceError

from ledger.application import Ledger
from projections.log import EventLog
from projections.runner import PROJECTIONS, open_view

UNREADABLE = "not readable by this role"


def status_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """One row per projection; reads only. A projection never built shows as such, and
    one whose tables the session's role may not read (README "Who wrote it") as that:
    its position and lag unknown to this role."""
    log = EventLog(ledger)
    head = log.head()
    rows = []
    for name in PROJECTIONS:
        view = open_view(ledger, name)
        row: dict[str, Any] = {"projection": name, "position": None, "head": head, "lag": None}
        if not view.readable():
            rows.append({**row, "state": UNREADABLE})
            continue
        try:
            position: int | None = view.position() or 0
        except PersistenceError:  # its tables do not exist yet
            position = None
        lag = log.count_after(position or 0)
        state = "not built" if position is None else "up to date" if lag == 0 else "behind"
        rows.append({**row, "position": position, "lag": lag, "state": state})
    return rows
