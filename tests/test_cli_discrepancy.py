"""An open discrepancy (R9) after the record's page count is corrected (R13), through the
real `ledger` process on SQLite and PostgreSQL: `show`, the catalog (live and rebuilt) and
`report-loss` judge it against the corrected count."""

from __future__ import annotations

from typing import Any

from tests.cli import (
    ARCHIVIST,
    BORROWER,
    LEADER,
    LIAISON,
    event_count,
    one_line,
    post,
    run,
    setup_office,
)

SHORT = "00000000-0000-4000-8000-0000000000d1"  # 10 pages catalogued, 8 returned
DAMAGED = "00000000-0000-4000-8000-0000000000d2"  # 10 catalogued, 10 returned damaged


def lines() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for n, (record, pages, condition) in enumerate(
        [(SHORT, 8, "intact"), (DAMAGED, 10, "damaged")], start=1
    ):
        code = f"R-DISC-000{n}"
        steps: list[dict[str, Any]] = [
            {"command": "receive", "record": record, "title": "文件", "department": "办公室",
             "year": 2019, "carrier": "paper", "pages": 10, "secrecy": "internal",
             "transferred_by": LIAISON},
            {"command": "arrange", "record": record, "code": code,
             "category": "administration", "retention": "30y"},
            {"command": "shelve", "record": code, "location": "A1-01-1-1"},
            {"command": "lend", "record": code, "to": BORROWER, "due": "2030-01-01",
             "purpose": "p", "approved_by": LEADER},
            {"command": "return", "record": code, "pages": pages, "condition": condition},
        ]  # fmt: skip
        for step in steps:
            found.append({"id": f"d{len(found)}", "actor": ARCHIVIST, **step})
    return found


def open_discrepancy(url: str, record: str) -> tuple[str | None, str | None]:
    """What `show` and the catalog say of the record's open discrepancy."""
    shown = run(url, "show", record, "--json")
    assert shown.code == 0, shown
    catalog = run(url, "catalog", "--json")
    assert catalog.code == 0, catalog
    row = next(row for row in catalog.json() if row["id"] == record)
    return shown.json()["discrepancy"], row["discrepancy"]


def correct_pages(url: str, record: str, pages: int, version: int = 1) -> None:
    """Correct the pages set by ``version`` (the receipt, or an earlier correction)."""
    done = run(
        url, "correct", record, "--version", str(version), "--reason", "receipt miscounted",
        "--set", f"pages={pages}", actor=ARCHIVIST,
    )  # fmt: skip
    assert done.code == 0, done


def test_a_corrected_page_count_re_judges_the_open_discrepancy(db_url: str) -> None:
    """It kept saying "catalogue says 10", and a loss report of 7 pages was accepted
    after a correction to the 8 pages returned (a loss of a page never missing)."""
    setup_office(db_url)
    assert post(db_url, lines(), actor=ARCHIVIST).code == 0
    short = "8 pages returned, catalogue says 10"
    assert open_discrepancy(db_url, SHORT) == (short, short)
    correct_pages(db_url, SHORT, 12)
    now = "8 pages returned, catalogue says 12"
    assert open_discrepancy(db_url, SHORT) == (now, now)
    correct_pages(db_url, DAMAGED, 11)
    damaged = "returned damaged; 10 pages returned, catalogue says 11"
    assert open_discrepancy(db_url, DAMAGED) == (damaged, damaged)
    # The receipt miscounted: 8 pages is all there ever were. Nothing is left to resolve.
    correct_pages(db_url, SHORT, 8, version=6)
    assert open_discrepancy(db_url, SHORT) == (None, None)
    before = event_count(db_url)
    done = run(db_url, "report-loss", SHORT, "--pages", "7", "--note", "n", actor=ARCHIVIST)
    assert (done.code, done.stdout) == (3, ""), done
    assert one_line(done.stderr) == "refused (R9): record R-DISC-0001 has no open discrepancy"
    assert event_count(db_url) == before
    # Derived on replay: a rebuilt catalog says the same, and so does its check.
    assert run(db_url, "projections", "rebuild", "catalog", "--jobs", "1").code == 0
    assert run(db_url, "projections", "check", "catalog", "--jobs", "1").code == 0
    assert open_discrepancy(db_url, SHORT) == (None, None)
    assert open_discrepancy(db_url, DAMAGED) == (damaged, damaged)
    # A loss is judged against the corrected count, as the discrepancy now says.
    done = run(db_url, "report-loss", DAMAGED, "--pages", "10", "--note", "n", actor=ARCHIVIST)
    assert done.code == 0, done
    assert open_discrepancy(db_url, DAMAGED) == (None, None)
