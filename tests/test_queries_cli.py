"""The queries through the CLI, on SQLite and PostgreSQL.

The "done" scenario and every output format run the real `ledger` process; the filter
matrix runs the same click command in this process (CliRunner), which keeps the suite
fast. Each filter is checked against exactly the rows it must keep.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from commands.main import cli
from ledger.application import open_ledger
from projections.runner import catch_up
from tests.cli import (
    BACKENDS,
    BORROWER,
    EXTERNAL,
    LEADER,
    Result,
    fresh_store,
    one_line,
    post,
    run,
)
from tests.cli import setup_office as setup_office_cli
from tests.test_projections_history import (
    BACK_CODE,
    DAMAGED_CODE,
    LIFE,
    LIFE_AUDIT,
    LIFE_CODE,
    LIFE_ID,
    LIFE_REFUSED,
    NEW_ID,
    OPENED_CODE,
    OTHERS,
    OVERDUE_CODE,
    new_office,
    numbered,
    post_in_process,
)

HISTORY = numbered(LIFE, "life") + numbered(OTHERS, "others")


def ok(done: Result) -> Result:
    assert done.code == 0, done
    return done


@pytest.fixture(scope="module", params=BACKENDS)
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A ledger holding the whole history, posted in this process."""
    with fresh_store(request.param, tmp_path_factory.mktemp("queries")) as url:
        ledger = open_ledger(url, must_exist=False)
        new_office(ledger)
        summary = post_in_process(ledger, HISTORY)
        assert summary.refused == LIFE_REFUSED and summary.invalid == 0, summary.problems
        catch_up(ledger)
        ledger.close()
        yield url


def query(url: str, *args: str) -> list[dict[str, Any]]:
    """Run a query in this process through the CLI's click group; its --json rows."""
    done = CliRunner().invoke(cli, [*args, "--json"], env={"LEDGER_DB": url})
    assert done.exit_code == 0, (done.output, done.exception)
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def codes(rows: list[dict[str, Any]]) -> list[str | None]:
    return [row["code"] for row in rows]


# -- the done scenario: whole life, audit, overdue, rebuild, byte-identical ----------


def test_whole_life_then_rebuild_prints_the_same_bytes(backend_store: str) -> None:
    url = backend_store
    setup_office_cli(url)
    posted = post(url, HISTORY)
    assert posted.code == 3, posted  # the refused attempts
    queries = [
        ["audit", "--secrecy-at-least", "confidential", "--json"],
        ["loans", "--overdue"],
        ["catalog", "--csv"],
    ]
    before = [ok(run(url, *q)) for q in queries]
    rows = before[0].json()
    life = [r for r in rows if r["record"] == LIFE_ID]
    assert [
        (r["action"], r["outcome"], r["rule"], r["reader"], r["approved_by"]) for r in life
    ] == LIFE_AUDIT
    assert {(r["code"], r["secrecy"]) for r in life} == {(LIFE_CODE, "confidential")}
    # Secret at the time: the overdue loan, and a consultation before the record was opened.
    assert [(r["code"], r["secrecy"], r["action"]) for r in rows if r["record"] != LIFE_ID] == [
        (OVERDUE_CODE, "secret", "lent"),
        (OPENED_CODE, "secret", "consulted"),
    ]
    for row in rows:
        assert set(row) >= {"occurred_at", "record", "code", "secrecy", "action", "actor",
                            "approved_by", "outcome", "rule"}  # fmt: skip
    lines = before[1].stdout.splitlines()
    assert lines[0].split()[:2] == ["code", "borrower"]
    assert [line.split()[0] for line in lines[2:]] == [OVERDUE_CODE]
    rebuilt = ok(run(url, "projections", "rebuild"))
    assert rebuilt.stdout.startswith("rebuilt catalog, loans, audit, destruction: ")
    assert " events in " in rebuilt.stdout and "events/s)" in rebuilt.stdout
    after = [ok(run(url, *q)) for q in queries]
    assert [done.stdout for done in after] == [done.stdout for done in before]


@pytest.fixture(params=BACKENDS)
def backend_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_store(request.param, tmp_path) as url:
        yield url


# -- output formats, through the real process ------------------------------------


def test_output_formats(store: str) -> None:
    as_json = ok(run(store, "audit", "--record", LIFE_CODE, "--json")).json()
    assert len(as_json) == len(LIFE_AUDIT)
    as_csv = list(
        csv.DictReader(io.StringIO(ok(run(store, "audit", "--record", LIFE_CODE, "--csv")).stdout))
    )
    assert list(as_csv[0]) == list(as_json[0])  # the header row, then one row per row
    assert [dict(r) for r in as_csv] == [
        {k: "" if v is None else str(v) for k, v in row.items()} for row in as_json
    ]
    table = ok(run(store, "audit", "--record", LIFE_CODE)).stdout.splitlines()
    assert table[0].split() == ["occurred_at", "code", "secrecy", "action", "outcome", "rule",
                                "actor", "reader", "approved_by", "purpose"]  # fmt: skip
    assert set(table[1]) == {"-", " "}
    assert len(table) == 2 + len(LIFE_AUDIT)
    assert table[3].split()[:6] == ["2004-05-11T11:00:00+08:00", LIFE_CODE, "confidential",
                                    "consult", "refused", "R6"]  # fmt: skip
    both = CliRunner().invoke(cli, ["catalog", "--json", "--csv"], env={"LEDGER_DB": store})
    assert both.exit_code == 2


# -- the filters (in this process) ---------------------------------------------------


def test_catalog_filters(store: str) -> None:
    everything = query(store, "catalog")
    assert codes(everything) == [*sorted(c for c in codes(everything) if c), None]
    assert len(everything) == 6
    assert codes(query(store, "catalog", "--status", "shelved")) == [
        OPENED_CODE,
        BACK_CODE,
        DAMAGED_CODE,
    ]
    assert codes(query(store, "catalog", "--status", "on-loan")) == [OVERDUE_CODE]
    assert codes(query(store, "catalog", "--secrecy-at-least", "confidential")) == [
        LIFE_CODE,
        OVERDUE_CODE,
    ]
    assert codes(query(store, "catalog", "--secrecy-at-least", "top-secret")) == []
    assert codes(query(store, "catalog", "--category", "infrastructure")) == [
        OPENED_CODE,
        OVERDUE_CODE,
    ]
    assert codes(query(store, "catalog", "--year", "2010")) == [BACK_CODE]
    assert codes(query(store, "catalog", "--search", "基建")) == [OPENED_CODE, OVERDUE_CODE]
    assert codes(query(store, "catalog", "--search", "rs·2010")) == [BACK_CODE]  # any case
    assert codes(query(store, "catalog", "--search", "100%")) == []
    [new] = query(store, "catalog", "--search", "工作总结")
    assert new["id"] == NEW_ID and new["title"] == "2020年工作总结" and new["status"] == "received"


def test_catalog_rows_follow_the_records_life(store: str) -> None:
    rows = {r["code"]: r for r in query(store, "catalog")}
    life = rows[LIFE_CODE]
    assert (life["status"], life["location"], life["custodian"]) == ("destroyed", None, None)
    assert (life["discrepancy"], life["version"], life["late"]) == (None, 10, False)
    assert rows[OVERDUE_CODE]["custodian"] == BORROWER
    assert rows[BACK_CODE]["late"] is True and rows[BACK_CODE]["location"] == "B1-01-1-1"
    assert rows[DAMAGED_CODE]["discrepancy"] == "38 pages returned, catalogue says 40"
    assert rows[OPENED_CODE]["secrecy"] == "public"


def test_loan_filters(store: str) -> None:
    assert codes(query(store, "loans")) == [OVERDUE_CODE]
    assert codes(query(store, "loans", "--open")) == [OVERDUE_CODE]
    assert codes(query(store, "loans", "--overdue")) == [OVERDUE_CODE]
    every = query(store, "loans", "--all")
    assert codes(every) == [LIFE_CODE, OVERDUE_CODE, BACK_CODE, DAMAGED_CODE]
    assert [r["status"] for r in every] == ["returned", "overdue", "returned", "returned"]
    assert every[0]["condition"] == "damaged" and every[0]["approved_by"] == LEADER
    assert codes(query(store, "loans", "--all", "--borrower", EXTERNAL)) == []
    assert len(query(store, "loans", "--all", "--borrower", BORROWER)) == 4
    # As of a past day: what was out then, and whether it was past due.
    assert codes(query(store, "loans", "--as-of", "2005-06-15")) == [LIFE_CODE]
    assert codes(query(store, "loans", "--overdue", "--as-of", "2005-06-15")) == []
    assert codes(query(store, "loans", "--open", "--as-of", "2017-04-05")) == [
        OVERDUE_CODE,
        DAMAGED_CODE,
    ]
    assert codes(query(store, "loans", "--overdue", "--as-of", "2009-03-31")) == []
    assert codes(query(store, "loans", "--overdue", "--as-of", "2009-04-01")) == [OVERDUE_CODE]
    assert codes(query(store, "loans", "--all", "--as-of", "2004-12-31")) == []


def test_audit_filters(store: str) -> None:
    everything = query(store, "audit")
    assert len(everything) == 15
    times = [r["occurred_at"] for r in everything]
    assert times[0] == "2004-05-11T10:00:00+08:00" and times[-1] == "2017-04-10T09:00:00+08:00"
    secret = query(store, "audit", "--secrecy-at-least", "secret")
    assert [(r["code"], r["action"]) for r in secret] == [
        (OVERDUE_CODE, "lent"),
        (OPENED_CODE, "consulted"),
    ]
    refused = query(store, "audit", "--refused")
    assert [r["rule"] for r in refused] == ["R6", "R5", "R8", "R19"]
    assert all(r["outcome"] == "refused" and r["detail"] for r in refused)
    assert [r["action"] for r in query(store, "audit", "--actor", EXTERNAL)] == [
        "consult",
        "lend",
        "consulted",
    ]
    assert [r["action"] for r in query(store, "audit", "--actor", "auditor")] == ["consult"]
    by_code = query(store, "audit", "--record", OPENED_CODE)
    assert [(r["secrecy"], r["reader"]) for r in by_code] == [
        ("secret", BORROWER),
        ("public", EXTERNAL),
    ]
    assert query(store, "audit", "--record", LIFE_ID) == query(
        store, "audit", "--record", LIFE_CODE
    )
    window = query(store, "audit", "--since", "2005-06-01T01:00:00Z", "--until", "2009-03-01")
    assert [r["action"] for r in window] == ["lent", "lend", "returned", "consult"]
    # 2005-06-01T09:00+08:00 is 01:00 UTC: included; the day 2009-03-01 itself is not.
    assert query(store, "audit", "--since", "2017-04-10")[0]["action"] == "returned"
    bad = CliRunner().invoke(
        cli, ["audit", "--since", "2005-06-01T01:00:00"], env={"LEDGER_DB": store}
    )
    assert bad.exit_code == 2 and "no UTC offset" in bad.stderr


def test_an_empty_or_out_of_range_filter_is_invalid_input(store: str) -> None:
    """An empty text filter was taken as none (`audit --actor ''` and `catalog --category
    ''` listed every row, while `loans --borrower ''` said exit 4), and `catalog --year
    99999999999999999999` failed on SQLite (exit 1, "unexpected OverflowError") while
    PostgreSQL listed none. Each is invalid input, naming its option, on both."""
    for args in (
        ("catalog", "--category", ""),
        ("catalog", "--search", ""),
        ("loans", "--borrower", ""),
        ("audit", "--actor", ""),
        ("audit", "--record", ""),
    ):
        done = run(store, *args, "--json")
        assert (done.code, done.stdout) == (2, ""), done
        assert one_line(done.stderr) == (
            f"error: {args[1]}: empty; give a value, or leave the option out"
        ), done
    for year in ("99999999999999999999", "-99999999999999999999", "10000", "999"):
        done = run(store, "catalog", "--year", year, "--json")
        assert (done.code, done.stdout) == (2, ""), done
        assert one_line(done.stderr) == (
            f"error: Invalid value for '--year': {year} is not in the range 1000<=x<=9999. "
            "(see --help)"
        ), done
    # The other filters refused an empty value already, each naming its option.
    for args in (
        ("catalog", "--status", ""),
        ("catalog", "--secrecy-at-least", ""),
        ("audit", "--secrecy-at-least", ""),
        ("audit", "--since", ""),
        ("audit", "--until", ""),
        ("loans", "--as-of", ""),
        ("report", "statistics", "--period", ""),
    ):
        done = run(store, *args)
        assert (done.code, done.stdout) == (2, ""), done
        assert f"{args[-2]}" in one_line(done.stderr), done


def test_a_whitespace_only_filter_is_invalid_input(store: str) -> None:
    """A text filter of whitespace only was taken as a value: `catalog --category ' '`
    listed nothing (no stored value is blank: posting strips them), `audit --actor ' '`
    and `loans --borrower ' '` said exit 4, `audit --record ' '` record not found. It is
    invalid input, as an empty one is, naming its option."""
    options = [
        ("catalog", "--category"),
        ("catalog", "--search"),
        ("loans", "--borrower"),
        ("audit", "--actor"),
        ("audit", "--record"),
    ]
    for command, option in options:
        for blank in (" ", "  ", "\t", "\u3000"):  # U+3000: the ideographic space
            done = run(store, command, option, blank, "--json")
            assert (done.code, done.stdout) == (2, ""), (option, blank, done)
            assert one_line(done.stderr) == (
                f"error: {option}: whitespace only; give a value, or leave the option out"
            ), done
    # The time and date filters refused whitespace already, naming their option.
    for args in (("audit", "--since"), ("audit", "--until"), ("loans", "--as-of")):
        done = run(store, *args, "  ")
        assert (done.code, done.stdout) == (2, ""), done
        assert one_line(done.stderr).startswith(f"error: {args[1]}: '  ' is not "), done


# Each text filter, and a value that finds rows.
SPACED = [
    (("catalog", "--category"), "infrastructure"),
    (("catalog", "--search"), "基建"),
    (("loans", "--all", "--borrower"), BORROWER),
    (("audit", "--actor"), EXTERNAL),
    (("audit", "--record"), OPENED_CODE),
]


def test_a_filter_drops_spaces_around_its_value_as_posting_does(store: str) -> None:
    """`catalog --category ' infrastructure '` listed nothing, `loans --borrower` and
    `audit --actor` said the actor was not registered (exit 4), while posting drops the
    spaces around a value (a tab, an ideographic space too) and stored `infrastructure`.
    Each filter reads its value as posting does, through the real process."""
    for args, value in SPACED:
        plain = ok(run(store, *args, value, "--json"))
        assert plain.json(), args
        for spaced in (f" {value} ", f"\t{value}", f"{value}\u3000"):
            done = run(store, *args, spaced, "--json")
            assert (done.code, done.stderr, done.stdout) == (0, "", plain.stdout), (spaced, done)


def test_a_filter_that_is_no_text_is_invalid_input(store: str) -> None:
    """A filter of bytes that are no UTF-8 (`--category $'\\xff'`) failed with exit 1,
    "unexpected UnicodeEncodeError", after reading the store; it is invalid input naming
    its option, as posting says it."""
    for args, _ in SPACED:
        done = run(store, *args, "\udcff")  # the process is given the byte 0xff
        assert (done.code, done.stdout) == (2, ""), (args, done)
        assert one_line(done.stderr) == (
            f"error: {args[-1]}: Input should be a valid string, unable to parse raw data as "
            "a unicode string"
        ), done


def test_reports(store: str) -> None:
    [destroyed] = query(store, "report", "destruction-register")
    assert destroyed == {
        "register_no": "XH-2012-001",
        "destroyed_at": "2012-03-15T10:00:00+08:00",
        "record": LIFE_ID,
        "code": LIFE_CODE,
        "title": "2000年办公会议纪要",
        "retention": "10y",
        "appraised_at": "2012-03-01T10:00:00+08:00",
        "decision": "destroy",
        "appraisers": ["appr1", "appr2"],
        "basis": "保管期限已满,无保存价值",
        "approved_by": LEADER,
        "witnesses": ["witness", "appr2"],
        "method": "粉碎",
        "actor": "arch",
    }
    stats = {(r["dimension"], r["value"]): r["count"] for r in query(store, "report", "statistics")}
    assert stats[("status", "shelved")] == 3 and stats[("status", "destroyed")] == 1
    assert stats[("secrecy", "public")] == 2 and stats[("category", None)] == 1
    assert stats[("carrier", "paper")] == 4 and stats[("year", 2010)] == 1
    assert stats[("retention", "permanent")] == 2 and stats[("transfer", "late")] == 1
    assert stats[("discrepancy", "open")] == 1
    # The real process: the late and open-discrepancy rows say what they count, in a table
    # as in CSV (they read "late yes" and "open discrepancy yes").
    table = ok(run(store, "report", "statistics")).stdout.splitlines()
    assert [line.split() for line in table if line.split()[0] in ("transfer", "discrepancy")] == [
        ["transfer", "late", "1"],
        ["discrepancy", "open", "1"],
    ]
    as_csv = ok(run(store, "report", "statistics", "--csv")).stdout.splitlines()
    assert "transfer,late,1" in as_csv and "discrepancy,open,1" in as_csv
    assert not [line for line in as_csv if ",yes," in line]
    assert stats[("uses per month", "2004-05")] == 2  # consulted, copied (UTC months)
    assert stats[("refused attempts per month", "2005-06")] == 1
    yearly = query(store, "report", "statistics", "--period", "year")
    assert {r["value"]: r["count"] for r in yearly if r["dimension"] == "uses per year"} == {
        "2004": 2, "2005": 2, "2009": 1, "2010": 1, "2013": 2, "2016": 1, "2017": 2,
    }  # fmt: skip
    assert [r["dimension"] for r in yearly][:2] == ["category", "category"]


def test_status_after_a_query(store: str) -> None:
    query(store, "catalog")
    rows = query(store, "projections", "status")
    assert [r["projection"] for r in rows] == ["catalog", "loans", "audit", "destruction"]
    assert {(r["lag"], r["state"]) for r in rows} == {(0, "up to date")}
    assert len({r["head"] for r in rows}) == 1 and rows[0]["position"] == rows[0]["head"]


def test_no_catch_up_reads_the_projections_as_they_are(backend_store: str) -> None:
    url = backend_store
    ledger = open_ledger(url, must_exist=False)
    new_office(ledger)
    post_in_process(ledger, numbered(OTHERS[:3], "a"))
    assert codes(query(url, "catalog")) == [OVERDUE_CODE]
    post_in_process(ledger, numbered(OTHERS[4:6], "b"))
    ledger.close()
    status = ok(run(url, "projections", "status", "--json")).json()
    assert [(r["projection"], r["state"]) for r in status] == [
        ("catalog", "behind"), ("loans", "not built"), ("audit", "not built"),
        ("destruction", "not built"),
    ]  # fmt: skip
    assert status[0]["lag"] == 3  # received, arranged and the code's claim
    stale = ok(run(url, "catalog", "--no-catch-up", "--json")).json()
    assert codes(stale) == [OVERDUE_CODE] and stale[0]["status"] == "shelved"
    fresh = ok(run(url, "catalog", "--json")).json()
    assert codes(fresh) == [BACK_CODE, OVERDUE_CODE]
