"""A record's whole life through the real `ledger` process, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from uuid import UUID

from tests.cli import (
    APPRAISER_1,
    APPRAISER_2,
    ARCHIVIST,
    BORROWER,
    DIRECTOR,
    LEADER,
    LIAISON,
    WITNESS,
    Result,
    event_count,
    run,
    setup_office,
)

CODE = "Z001-WS·2000-D10-BGS-0001"
GENESIS = "0" * 64
# (event name, custodian after it, actor) for each version, in order.
EXPECTED = [
    ("received", "archive", ARCHIVIST),
    ("arranged", "archive", ARCHIVIST),
    ("shelved", "archive", ARCHIVIST),
    ("relocated", "archive", ARCHIVIST),
    ("consulted", "archive", ARCHIVIST),
    ("copied", "archive", ARCHIVIST),
    ("lent", BORROWER, ARCHIVIST),
    ("returned", "archive", ARCHIVIST),
    ("repaired", "archive", ARCHIVIST),
    ("appraised", "archive", APPRAISER_1),
    ("destroyed", None, ARCHIVIST),
]
TIMES = [
    "2001-02-01T09:00:00+08:00",
    "2001-03-01T09:00:00+08:00",
    "2001-03-02T09:00:00+08:00",
    "2003-01-10T10:00:00+08:00",
    "2004-05-11T10:00:00+08:00",
    "2004-05-12T10:00:00+08:00",
    "2005-06-01T09:00:00+08:00",
    "2005-06-28T16:00:00+08:00",
    "2005-07-10T10:00:00+08:00",
    "2012-03-01T10:00:00+08:00",
    "2012-03-15T10:00:00+08:00",
]


def ok(done: Result) -> Result:
    assert done.code == 0, done
    assert done.stderr == "", done
    return done


def live_a_life(db: str) -> str:
    """Post every lifecycle event; return the record's id. Names it by id and by code."""
    received = ok(
        run(
            db, "receive", "--title", "2000年办公会议纪要", "--department", "办公室",
            "--year", "2000", "--carrier", "paper", "--pages", "24", "--secrecy", "internal",
            "--transferred-by", LIAISON, "--occurred-at", TIMES[0], "--json",
            actor=ARCHIVIST,
        )
    )  # fmt: skip
    body = received.json()
    record = body["record"]
    assert str(UUID(record)) == record
    assert body["late"] is False
    steps: list[tuple[str, list[str], str]] = [
        ("arrange", [record, "--category", "administration", "--retention", "10y",
                     "--code", CODE], ARCHIVIST),
        ("shelve", [CODE, "--location", "A1-03-2-4"], ARCHIVIST),
        ("relocate", [record, "--location", "A2-01-1-1"], ARCHIVIST),
        ("consult", [CODE, "--reader", BORROWER, "--purpose", "查考"], ARCHIVIST),
        ("copy", [CODE, "--reader", BORROWER, "--pages", "2", "--purpose", "复制存档",
                  "--approved-by", LEADER], ARCHIVIST),
        ("lend", [CODE, "--to", BORROWER, "--due", "2005-07-01", "--purpose", "专项审计",
                  "--approved-by", LEADER], ARCHIVIST),
        ("return", [CODE, "--pages", "24", "--condition", "damaged",
                    "--note", "封面破损"], ARCHIVIST),
        ("repair", [record, "--note", "封面修裱"], ARCHIVIST),
        ("appraise", [CODE, "--decision", "destroy", "--appraiser", APPRAISER_1,
                      "--appraiser", APPRAISER_2, "--basis", "保管期限已满"], APPRAISER_1),
        ("destroy", [CODE, "--approved-by", LEADER, "--witness", WITNESS,
                     "--witness", DIRECTOR, "--register", "XH-2012-001",
                     "--method", "碎纸"], ARCHIVIST),
    ]  # fmt: skip
    for version, (command, args, actor) in enumerate(steps, start=2):
        done = ok(run(db, command, *args, "--occurred-at", TIMES[version - 1], actor=actor))
        assert done.stdout == f"{command}: {CODE} version {version}\n", done
    return record


def check_custody(db: str, record: str) -> None:
    done = ok(run(db, "custody", CODE, "--json"))
    chain = done.json()
    assert chain["record"] == record
    assert chain["code"] == CODE
    events = chain["events"]
    assert [e["event"] for e in events] == [name for name, _, _ in EXPECTED]
    assert [e["custodian"] for e in events] == [custodian for _, custodian, _ in EXPECTED]
    assert [e["actor"] for e in events] == [actor for _, _, actor in EXPECTED]
    assert [e["version"] for e in events] == list(range(1, len(EXPECTED) + 1))
    assert [datetime.fromisoformat(e["occurred_at"]) for e in events] == [
        datetime.fromisoformat(t) for t in TIMES
    ]
    recorded = [datetime.fromisoformat(e["recorded_at"]) for e in events]
    assert recorded == sorted(recorded)
    assert all(r.tzinfo is not None for r in recorded)
    if db.startswith("postgresql"):  # who wrote it, as the database knows
        assert {e["db_role"] for e in events} == {"postgres"}
    else:
        assert all("db_role" not in e for e in events)
    assert [e["prev_hash"] for e in events] == [GENESIS] + [e["hash"] for e in events[:-1]]
    returned = events[7]
    assert returned["condition"] == "damaged"
    assert returned["discrepancy"] == "returned damaged"
    assert events[6]["reader"] == BORROWER and events[6]["approved_by"] == LEADER
    assert events[10]["witnesses"] == [WITNESS, DIRECTOR]
    assert chain["intervals"] == [
        {"custodian": "archive", "from": TIMES[0], "until": TIMES[6]},
        {"custodian": BORROWER, "from": TIMES[6], "until": TIMES[7]},
        {"custodian": "archive", "from": TIMES[7], "until": TIMES[10]},
    ]


def check_custody_csv(db: str) -> None:
    done = ok(run(db, "custody", CODE, "--csv"))
    rows = list(csv.reader(io.StringIO(done.stdout)))
    role = ["db_role"] if db.startswith("postgresql:") else []
    assert rows[0] == ["version", "occurred_at", "recorded_at", "event", "actor", "custodian",
                       *role, "details", "prev_hash", "hash"]  # fmt: skip
    assert len(rows) == 1 + len(EXPECTED)
    assert [r[3] for r in rows[1:]] == [name for name, _, _ in EXPECTED]
    assert rows[7][5] == BORROWER and rows[11][5] == ""


def check_show(db: str, record: str) -> None:
    now = ok(run(db, "show", record, "--json")).json()
    assert now["record"] == record
    assert now["code"] == CODE
    assert now["status"] == "destroyed"
    assert now["custodian"] is None
    assert now["version"] == len(EXPECTED)
    during_loan = ok(run(db, "show", CODE, "--as-of", "2005-06-15T12:00:00+08:00", "--json"))
    then = during_loan.json()
    assert then["record"] == record
    assert then["status"] == "on-loan"
    assert then["custodian"] == BORROWER
    assert then["loan"]["borrower"] == BORROWER
    assert then["version"] == 7


def test_a_records_whole_life(db_url: str) -> None:
    setup_office(db_url)
    before = event_count(db_url)
    record = live_a_life(db_url)
    assert event_count(db_url) == before + len(EXPECTED) + 1  # + the code claim
    check_custody(db_url, record)
    check_custody_csv(db_url)
    check_show(db_url, record)
