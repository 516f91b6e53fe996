"""`ledger loans` judges a loan overdue on the office's day (R10), through the real `ledger`
process, on SQLite and PostgreSQL.

Without `--as-of`, today was today in UTC for every loan: in an office at +08:00 a loan due
yesterday was not listed overdue until 08:00, and in one at -05:00 a loan was listed
overdue from 19:00 on its own due day. Today is now the date, now, in the offset the loan
was made in (as R2 and R11 count a time's day in its own offset).

Two loans are made with due dates taken from the clock: one at +14:00 due yesterday there,
one at -12:00 due today there. Whatever the hour, UTC's date differs from one of those
two: the listing in UTC got one of them wrong at every hour of the day.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.cli import ARCHIVIST, BACKENDS, BORROWER, LEADER, LIAISON, fresh_store, post, run
from tests.cli import setup_office as setup_office_cli

EAST = timezone(timedelta(hours=14))  # Kiribati's Line Islands
WEST = timezone(timedelta(hours=-12))
RECORDS = {
    "EAST-1": "7f0c1e2a-3b4c-4d5e-8f60-718293a4b5c6",
    "WEST-1": "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9",
}


def today(zone: timezone) -> str:
    return datetime.now(UTC).astimezone(zone).date().isoformat()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loan_is_overdue_once_its_due_day_has_passed_where_it_was_made(
    backend: str, tmp_path: Path
) -> None:
    with fresh_store(backend, tmp_path) as url:
        setup_office_cli(url)
        now = datetime.now(UTC)
        days_ago = (now - timedelta(days=3)).isoformat()
        lines: list[dict[str, object]] = []
        for code, record in RECORDS.items():
            lines += [
                {"command": "receive", "id": f"r-{code}", "record": record, "title": "t",
                 "department": "办公室", "year": 2020, "carrier": "paper", "pages": 3,
                 "secrecy": "public", "transferred_by": LIAISON, "occurred_at": days_ago},
                {"command": "arrange", "id": f"a-{code}", "record": record, "code": code,
                 "category": "administration", "retention": "30y", "occurred_at": days_ago},
                {"command": "shelve", "id": f"s-{code}", "record": code,
                 "location": "A1-01-1-1", "occurred_at": days_ago},
            ]  # fmt: skip
        east_lent = (now - timedelta(days=1)).astimezone(EAST)  # yesterday at +14:00
        west_lent = (now - timedelta(hours=1)).astimezone(WEST)
        west_due = today(WEST)
        lines += [
            {"command": "lend", "id": "l-east", "record": "EAST-1", "to": BORROWER,
             "due": east_lent.date().isoformat(), "purpose": "p", "approved_by": LEADER,
             "occurred_at": east_lent.isoformat()},
            {"command": "lend", "id": "l-west", "record": "WEST-1", "to": BORROWER,
             "due": west_due, "purpose": "p", "approved_by": LEADER,
             "occurred_at": west_lent.isoformat()},
        ]  # fmt: skip
        done = post(url, lines, actor=ARCHIVIST)
        assert done.code == 0, done

        listed = run(url, "loans", "--open", "--json")
        assert listed.code == 0, listed
        status = {row["code"]: row["status"] for row in json.loads(listed.stdout)}
        # Due yesterday where it was made: overdue, at any hour.
        assert status["EAST-1"] == "overdue", listed
        # Due today where it was made: open (unless that day ended while this ran).
        assert status["WEST-1"] == ("open" if today(WEST) == west_due else "overdue"), listed

        overdue = run(url, "loans", "--overdue", "--json")
        assert overdue.code == 0, overdue
        assert "EAST-1" in [row["code"] for row in json.loads(overdue.stdout)]

        # A day asked for is that day wherever the loan was made: due on it, not overdue
        # (a loan made after that day ended in UTC is not listed).
        for code, due in (("EAST-1", east_lent.date().isoformat()), ("WEST-1", west_due)):
            on_due = run(url, "loans", "--all", "--as-of", due, "--json")
            assert on_due.code == 0, on_due
            rows = {row["code"]: row["status"] for row in json.loads(on_due.stdout)}
            assert rows.get(code, "open") == "open", on_due
