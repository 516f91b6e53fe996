"""Reading commands and queries through the real `ledger` process, on SQLite and
PostgreSQL: how they name records and actors, and what they answer at the edges."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest

from tests.cli import (
    ARCHIVIST,
    AUDITOR,
    BACKENDS,
    BORROWER,
    LEADER,
    LIAISON,
    event_count,
    fresh_store,
    one_line,
    post,
    run,
    setup_office,
)

RECORD = "00000000-0000-4000-8000-00000000000a"
CODE = "R-READ-0001"
OLD = "00000000-0000-4000-8000-00000000000b"
OLD_AT = "1000-01-01T00:00:00+14:00"
LENT_AT = "2020-02-01T07:00:00+08:00"
RETURNED_AT = "2020-02-10T20:00:00-08:00"
SEAL_ID = "2615ddc5-ffe5-5ba9-bd7a-bccb5beabb46"  # aggregates.seal.SEAL_ID


def world_lines() -> list[dict[str, object]]:
    """One record: a refused attempt before it is arranged (no code yet), then
    arranged, shelved, lent and returned."""
    lines: list[dict[str, object]] = []

    def add(command: str, occurred: str, actor: str = ARCHIVIST, **fields: object) -> None:
        lines.append(
            {"command": command, "id": f"r{len(lines)}", "actor": actor,
             "occurred_at": occurred, **fields}
        )  # fmt: skip

    receipt = {"title": "文件", "department": "办公室", "year": 2019, "carrier": "paper",
               "pages": 10, "secrecy": "internal", "transferred_by": LIAISON}  # fmt: skip
    add("receive", "2020-01-06T09:00:00+00:00", record=RECORD, **receipt)
    # R19 (a liaison does not post): a refused attempt on the record before it has a code
    add(
        "consult", "2020-01-07T09:00:00+00:00", LIAISON, record=RECORD, reader=BORROWER, purpose="p"
    )
    add("arrange", "2020-01-08T09:00:00+00:00", record=RECORD, code=CODE,
        category="administration", retention="30y")  # fmt: skip
    add("shelve", "2020-01-09T09:00:00+00:00", record=CODE, location="A1-01-1-1")
    # Lent late on 31 January UTC (1 February locally), returned a page short early on
    # 11 February UTC (10 February locally).
    add("lend", LENT_AT, record=CODE, to=BORROWER, due="2020-02-10", purpose="p",
        approved_by=LEADER)  # fmt: skip
    add("return", RETURNED_AT, record=CODE, pages=9, condition="intact")
    # Consulted on 1 January 1000 locally, 31 December 999 in UTC.
    add("receive", OLD_AT, record=OLD, **{**receipt, "year": 1000})
    add("arrange", OLD_AT, record=OLD, code="R-OLD-0001", category="administration",
        retention="permanent")  # fmt: skip
    add("shelve", OLD_AT, record=OLD, location="A1-01-1-2")
    add("consult", OLD_AT, record=OLD, reader=BORROWER, purpose="old")
    return lines


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_store(request.param, tmp_path_factory.mktemp("reading")) as url:
        setup_office(url)
        done = post(url, world_lines())
        assert done.code == 3 and done.stdout.startswith("posted 9, skipped 0, refused 1"), done
        sealed = run(url, "seal", actor=AUDITOR)
        assert sealed.code == 0, sealed
        yield url


@pytest.mark.parametrize(
    "args",
    [
        ("show", SEAL_ID),
        ("custody", SEAL_ID),
        ("custody", SEAL_ID, "--csv"),
        ("consult", SEAL_ID, "--reader", BORROWER, "--purpose", "p"),
        (
            "lend",
            SEAL_ID,
            "--to",
            BORROWER,
            "--due",
            "2030-01-01",
            "--purpose",
            "p",
            "--approved-by",
            LEADER,
        ),
    ],
)
def test_the_seal_chains_id_is_no_record(world: str, args: tuple[str, ...]) -> None:
    """Loading the seal chain as a record failed with a TopicError (exit 1): its topics
    were unknown to the reading commands. It is not found, as an actor's id is."""
    before = event_count(world)
    done = run(world, *args, actor=ARCHIVIST)
    assert (done.code, done.stdout) == (4, ""), done
    assert one_line(done.stderr) == f"error: record {SEAL_ID!r} not found", done
    assert event_count(world) == before


def audit_rows(url: str, *args: str) -> list[tuple[str, str, str | None]]:
    done = run(url, "audit", *args, "--json", actor=AUDITOR)
    assert done.code == 0, done
    return [(row["action"], row["outcome"], row["code"]) for row in done.json()]


def test_audit_names_a_record_as_show_does(world: str) -> None:
    """`audit --record` matched the id as written, or the code as it was at each row: a
    refused attempt before arrangement was missed by code, other spellings of the id
    matched nothing, and an unknown record gave an empty trail (exit 0)."""
    rows = [("consult", "refused", None), ("lent", "done", CODE), ("returned", "done", CODE)]
    plain = RECORD.replace("-", "")
    for ref in (CODE, RECORD, plain, "{" + RECORD + "}", f"urn:uuid:{RECORD}", RECORD.upper()):
        assert audit_rows(world, "--record", ref) == rows, ref
    for ref in ("R-NONE-0001", "00000000-0000-4000-8000-0000000000ff", SEAL_ID):
        done = run(world, "audit", "--record", ref, actor=AUDITOR)
        assert (done.code, done.stdout) == (4, ""), done
        assert one_line(done.stderr).startswith(f"error: record {ref!r} not found"), done


# Every command that takes a record, with where the record goes.
READING = [
    ("show", "{}"),
    ("show", "{}", "--json"),
    ("custody", "{}"),
    ("custody", "{}", "--csv"),
    ("custody", "{}", "--json"),
    ("audit", "--record", "{}", "--json"),
]


def test_reading_commands_drop_spaces_around_a_record_as_posting_does(world: str) -> None:
    """`show ' R-READ-0001 '` and `custody` said not found (exit 4), as did `audit
    --record` and `verify --record`, while a posting command drops the spaces and finds
    the record. Each reads it as posting does, by archival code and by id. (One test for
    all spellings: each plain answer is read once.)"""
    spellings = {CODE: [f" {CODE} ", f"\t{CODE}"], RECORD: [f" {RECORD}", f"{RECORD}\u3000"]}
    for plain_ref, refs in spellings.items():
        for args in READING:
            plain = run(world, *(a.format(plain_ref) for a in args), actor=AUDITOR)
            assert (plain.code, plain.stderr) == (0, ""), (args, plain)
            for ref in refs:
                given = run(world, *(a.format(ref) for a in args), actor=AUDITOR)
                assert (given.code, given.stderr) == (0, ""), (args, ref, given)
                assert given.stdout == plain.stdout, (args, ref)
        for ref in refs:
            checked = run(world, "verify", "--record", ref, "--json", actor=AUDITOR)
            assert checked.code == 0, (ref, checked)
            assert (checked.json()["intact"], checked.json()["record"]) == (True, RECORD), ref


@pytest.mark.parametrize("blank", ["", " ", "\t", "\u3000"])
def test_an_empty_record_is_invalid_input_as_posting_says(world: str, blank: str) -> None:
    """`show ''` and `custody ''` said record '' not found (exit 4), and `verify --record
    ''` checked the whole log (exit 0). An empty record, or one of spaces only, is invalid
    input, in the words a posting command has for it."""
    before = event_count(world)
    for args, name in [
        (("show", blank), "RECORD"),
        (("custody", blank, "--csv"), "RECORD"),
        (("consult", blank, "--reader", BORROWER, "--purpose", "p"), "RECORD"),
        (("verify", "--record", blank), "--record"),
    ]:
        done = run(world, *args, actor=ARCHIVIST)
        assert (done.code, done.stdout) == (2, ""), (args, done)
        assert one_line(done.stderr) == f"error: {name}: String should have at least 1 character"
    assert event_count(world) == before


def loans_as_of(url: str, day: str) -> list[dict[str, object]]:
    done = run(url, "loans", "--all", "--as-of", day, "--json", actor=AUDITOR)
    assert done.code == 0, done
    rows: list[dict[str, object]] = done.json()
    return rows


def test_loans_as_of_a_day_judge_instants_in_utc_and_show_only_what_had_happened(
    world: str,
) -> None:
    """`loans --as-of DAY` compared each loan's local calendar date with the day, and a
    row showed a return made after the day. The day ends at 24:00 UTC, as a date means
    00:00 UTC for `audit`, and a loan returned later is shown open, without its return."""
    returned = ("returned_at", "returned_to", "condition", "pages_returned", "discrepancy")
    assert loans_as_of(world, "2020-01-30") == []
    [lent] = loans_as_of(world, "2020-01-31")  # lent at 23:00 UTC
    assert (lent["status"], lent["lent_at"], lent["due"]) == ("open", LENT_AT, "2020-02-10")
    assert all(lent[k] is None for k in returned), lent
    [due] = loans_as_of(world, "2020-02-10")  # returned at 04:00 UTC the day after
    assert due["status"] == "open" and all(due[k] is None for k in returned), due
    [back] = loans_as_of(world, "2020-02-11")
    assert back["status"] == "returned", back
    assert [back[k] for k in returned] == [
        RETURNED_AT,
        ARCHIVIST,
        "intact",
        9,
        "9 pages returned, catalogue says 10",
    ]


@pytest.mark.parametrize("option", ["--since", "--until"])
@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_audit_times_out_of_range_in_utc_are_invalid(world: str, option: str, moment: str) -> None:
    """They failed with 'unexpected OverflowError' (exit 1)."""
    done = run(world, "audit", option, moment, actor=AUDITOR)
    assert (done.code, done.stdout) == (2, ""), done
    expected = f"error: {option}: {moment!r} is out of range in UTC (years 1-9999)"
    assert one_line(done.stderr) == expected, done


def test_times_before_the_year_1000_in_utc_sort_and_filter_as_times(world: str) -> None:
    """A time before the year 1000 in UTC was written with an unpadded year ("999-12-31T..."),
    which sorted after every other time and fell outside --until 1000-01-01."""
    assert [r[0] for r in audit_rows(world, "--until", "1000-01-01")] == ["consulted"]
    assert audit_rows(world)[:2] == [
        ("consulted", "done", "R-OLD-0001"),
        ("consult", "refused", None),
    ]
    done = run(world, "report", "statistics", "--period", "year", "--json", actor=AUDITOR)
    assert {"dimension": "uses per year", "value": "0999", "count": 1} in done.json(), done


def test_custody_csv_has_what_json_has(world: str) -> None:
    """The CSV left out when each event was recorded (needed with --known-at), its hashes
    and, on PostgreSQL, the database role that wrote it."""
    as_json = run(world, "custody", CODE, "--json", actor=AUDITOR)
    as_csv = run(world, "custody", CODE, "--csv", actor=AUDITOR)
    assert as_json.code == as_csv.code == 0, (as_json, as_csv)
    events = as_json.json()["events"]
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    shared = ["version", "occurred_at", "recorded_at", "event", "actor", "prev_hash", "hash"]
    if "db_role" in events[0]:
        shared.append("db_role")
    assert [[r[k] for k in shared] for r in rows] == [[str(e[k]) for k in shared] for e in events]
    assert ("db_role" in rows[0]) == world.startswith("postgresql:")
    # The table shows who wrote each event on PostgreSQL too, as README says.
    table = run(world, "custody", CODE, actor=AUDITOR)
    header = table.stdout.splitlines()[1].split()
    assert ("db_role" in header) == world.startswith("postgresql:"), table


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("projections", "follow", "--interval", "-1"), "error: Invalid value for '--interval'"),
        (("projections", "follow", "--interval", "nan"), "error: Invalid value for '--interval'"),
        (("loans", "--all", "--overdue"), "error: choose one of --open, --overdue and --all"),
        (("loans", "--open", "--all"), "error: choose one of --open, --overdue and --all"),
        # One rule for times and dates (they were taken here, refused elsewhere).
        (("loans", "--as-of", "2026-3-1"), "error: --as-of: '2026-3-1' is not a date"),
        (("audit", "--since", "2026-W10-1T09:30Z"), "error: --since: '2026-W10-1T09:30Z' is "),
        (("audit", "--until", "2026-03-01t09:30Z"), "error: --until: '2026-03-01t09:30Z' is "),
    ],
)
def test_bad_or_conflicting_query_options_are_refused(
    world: str, args: tuple[str, ...], line: str
) -> None:
    """They were accepted: follow ran with a negative interval, and of two loan filters
    the last one given applied."""
    done = run(world, *args, actor=AUDITOR)
    assert (done.code, done.stdout) == (2, ""), done
    assert one_line(done.stderr).startswith(line), done


@pytest.mark.parametrize(
    "args", [("audit", "--actor", "nobody"), ("loans", "--all", "--borrower", "nobody")]
)
def test_a_query_by_an_unregistered_actor_is_not_found(world: str, args: tuple[str, ...]) -> None:
    """An auditor's typo printed "(none)" with exit 0, as if nobody had accessed anything."""
    done = run(world, *args, actor=AUDITOR)
    assert (done.code, done.stdout) == (4, ""), done
    trail = ", and the audit trail does not name it" if args[0] == "audit" else ""
    assert one_line(done.stderr) == f"error: actor 'nobody' is not registered{trail}", done
    assert len(run(world, "loans", "--all", "--borrower", BORROWER, "--json").json()) == 1
    assert len(run(world, "audit", "--actor", LIAISON, "--json").json()) == 1
