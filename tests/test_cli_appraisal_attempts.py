"""A refused appraisal for destruction, through the real `ledger` process, on SQLite and
PostgreSQL: the first step of a destruction, kept as a refused attempt (R11) as a refused
`destroy` is, naming the decision and the committee; a refused retain (no review date: a
mistake in what was posted) is reported only."""

from __future__ import annotations

from tests.cli import (
    APPRAISER_1,
    APPRAISER_2,
    ARCHIVIST,
    LIAISON,
    event_count,
    jsonl,
    posted_outcomes,
    run,
    setup_office,
    stored_events,
)

RECORD = "00000000-0000-4000-8000-00000000c001"
CODE = "K-1"
REFUSAL = "ledger/Refusal/AttemptRefused"
EARLY = (  # 30 years from 2015 run until 2046
    f"refused (R11): retention of record {CODE} (30y) runs until 2046-01-01; it cannot be "
    "appraised for destruction before 2046-01-01"
)
COMMITTEE = "refused (R11): an appraisal needs a committee of at least two appraisers"
NO_REVIEW = "refused (R11): a decision to retain needs a next review date (--review-on)"


def at(day: str) -> str:
    return f"{day}T09:00:00+08:00"


def shelved_record() -> list[dict[str, object]]:
    return [
        {"command": "receive", "id": "k1", "record": RECORD, "title": "合同",
         "department": "财务处", "year": 2015, "carrier": "paper", "pages": 5,
         "secrecy": "public", "transferred_by": LIAISON, "occurred_at": at("2016-01-10")},
        {"command": "arrange", "id": "k2", "record": RECORD, "code": CODE,
         "category": "finance-audit", "retention": "30y", "occurred_at": at("2016-01-11")},
        {"command": "shelve", "id": "k3", "record": CODE, "location": "A1-01-1-1",
         "occurred_at": at("2016-01-12")},
    ]  # fmt: skip


def custody(db_url: str) -> list[object]:
    return list(run(db_url, "custody", CODE, "--json").json()["events"])


def test_a_refused_appraisal_for_destruction_is_kept(db_url: str) -> None:
    setup_office(db_url)
    assert run(db_url, "post", "-", actor=ARCHIVIST, input=jsonl(shelved_record())).code == 0
    history, before = custody(db_url), event_count(db_url)

    single = run(db_url, "appraise", CODE, "--decision", "destroy", "--appraiser", APPRAISER_1,
                 "--appraiser", APPRAISER_2, "--basis", "期满", "--occurred-at",
                 at("2020-03-01"), actor=APPRAISER_1)  # fmt: skip
    assert (single.code, single.stdout, single.stderr) == (3, "", EARLY + "\n"), single

    appraise = {"command": "appraise", "record": CODE, "basis": "期满"}
    lines = [  # a destroy decided by one appraiser: kept; a retain with no review: not
        {**appraise, "id": "p1", "decision": "destroy", "appraiser": [APPRAISER_1],
         "occurred_at": at("2020-03-02")},
        {**appraise, "id": "p2", "decision": "retain", "appraiser": [APPRAISER_1, APPRAISER_2],
         "occurred_at": at("2020-03-03")},
    ]  # fmt: skip
    bulk = run(db_url, "post", "-", actor=APPRAISER_1, input=jsonl(lines))
    assert bulk.code == 3, bulk
    assert bulk.stdout == "posted 0, skipped 0, refused 2, invalid 0 (1 event)\n", bulk
    assert bulk.stderr == f"line 1: {COMMITTEE}\nline 2: {NO_REVIEW}\n", bulk
    outcomes = posted_outcomes(db_url)
    assert (outcomes.get("p1"), outcomes.get("p2")) == ("refused R11", None)

    assert event_count(db_url) == before + 2
    assert [topic for _, _, topic in stored_events(db_url)[before:]] == [REFUSAL, REFUSAL]
    assert custody(db_url) == history  # the record's events unchanged

    shown = ("action", "outcome", "rule", "actor", "record", "code", "secrecy", "detail")
    kept = ("appraise", "refused", "R11", APPRAISER_1, RECORD, CODE, "public")
    reason = len("refused (R11): ")
    audit = run(db_url, "audit", "--refused", "--json").json()
    assert [tuple(row[k] for k in shown) for row in audit] == [
        (*kept, f"{EARLY[reason:]}; decision destroy, appraisers {APPRAISER_1}, {APPRAISER_2}"),
        (*kept, f"{COMMITTEE[reason:]}; decision destroy, appraisers {APPRAISER_1}"),
    ]
    check = run(db_url, "projections", "check", "audit", "--jobs", "1")
    assert check.code == 0, check
