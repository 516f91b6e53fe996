"""The return check (R9) is counted face to face (当面点清): a borrower who is an
archivist does not check in its own return; another archivist does. Through the real
`ledger` process on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.cli import (
    ARCHIVIST,
    LEADER,
    LIAISON,
    WITNESS,
    event_count,
    one_line,
    post,
    run,
    setup_office,
)

RECORD = "00000000-0000-4000-8000-0000000000e1"
CODE = "R-RET-0001"


def test_a_borrower_does_not_check_its_own_return(db_url: str) -> None:
    setup_office(db_url)
    steps = [
        {"command": "receive", "record": RECORD, "title": "文件", "department": "办公室",
         "year": 2019, "carrier": "paper", "pages": 10, "secrecy": "internal",
         "transferred_by": LIAISON},
        {"command": "arrange", "record": RECORD, "code": CODE, "category": "administration",
         "retention": "30y"},
        {"command": "shelve", "record": CODE, "location": "A1-01-1-1"},
        # WITNESS is an archivist of the office, borrowing as any member of staff may.
        {"command": "lend", "record": CODE, "to": WITNESS, "due": "2099-01-01",
         "purpose": "p", "approved_by": LEADER},
    ]  # fmt: skip
    lines = [{"id": f"ret-{n}", "actor": ARCHIVIST, **step} for n, step in enumerate(steps)]
    assert post(db_url, lines).code == 0
    before = event_count(db_url)
    done = run(db_url, "return", CODE, "--pages", "8", "--condition", "intact", actor=WITNESS)
    assert done.code == 3, done
    assert one_line(done.stderr) == (
        f"refused (R9): {WITNESS} borrowed record {CODE} and cannot check its own return; "
        "another archivist receives it"
    )
    assert (done.stdout, event_count(db_url)) == ("", before)
    assert run(db_url, "show", CODE, "--json").json()["custodian"] == WITNESS
    done = run(db_url, "return", CODE, "--pages", "8", "--condition", "intact", actor=ARCHIVIST)
    assert done.code == 0, done
    shown = run(db_url, "show", CODE, "--json").json()
    assert (shown["custodian"], shown["discrepancy"]) == (
        "archive",
        "8 pages returned, catalogue says 10",
    )
