"""What the real `ledger` prints, on SQLite and PostgreSQL: CSV a CSV reader reads back as
--json has it, custody details that no value can forge, the option a bad time was given
to, and the ids as stored (exploratory finds)."""

from __future__ import annotations

import csv
import io
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli import (
    ARCHIVIST,
    AUDITOR,
    BACKENDS,
    BORROWER,
    DIRECTOR,
    EXTERNAL,
    LEADER,
    LEDGER,
    LIAISON,
    TIMEOUT,
    Result,
    environment,
    event_count,
    fresh_store,
    one_line,
    run,
    setup_office,
)

CODE = "R-OUT-0001"
PLAIN = "R-OUT-0002"
# Text with every character a CSV field must be quoted for, and Chinese text.
AWKWARD = ["函\r号", "第一行\n第二行", "甲\r\n乙", 'say "hi"', "a,b", '引"号",\r逗号']
TITLE = "关于\r年度报告"  # a CR, alone: nothing else in it is quoted
FORGING = "查阅 approved_by=zhao.ld letter=函-001"


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_store(request.param, tmp_path_factory.mktemp("output")) as url:
        setup_office(url)
        ok(run(url, "actor", "add", "out.cr", "--name", "张\r三", "--role", "borrower",
               "--clearance", "internal", actor=DIRECTOR))  # fmt: skip
        for code, title in ((CODE, TITLE), (PLAIN, "平常 题名")):
            received = ok(run(url, *receive_args(title), actor=ARCHIVIST)).stdout.strip()
            ok(run(url, "arrange", received, "--category", "administration", "--retention",
                   "30y", "--code", code, actor=ARCHIVIST))  # fmt: skip
            ok(run(url, "shelve", code, "--location", "A1-01-1-1", actor=ARCHIVIST))
        uses = [{"purpose": text, "letter": text, "approved_by": LEADER} for text in AWKWARD] + [
            {"purpose": FORGING},
            {"purpose": "核对 = 原件", "letter": '"函" 3号'},
        ]
        for use in uses:
            ok(run(url, "consult", CODE, "--reader", BORROWER, *options(use), actor=ARCHIVIST))
        ok(run(url, "consult", PLAIN, "--reader", BORROWER, "--purpose", "查考", actor=ARCHIVIST))
        ok(run(url, "lend", CODE, "--to", BORROWER, "--due", "2099-01-01", "--purpose",
               "借\r阅", "--approved-by", LEADER, actor=ARCHIVIST))  # fmt: skip
        ok(run(url, "correct", CODE, "--version", "1", "--reason", 'wrong "title" =',
               "--set", "title=新\r题名 a=b", "--set", "pages=9", actor=ARCHIVIST))  # fmt: skip
        yield url


def receive_args(title: str) -> list[str]:
    return ["receive", "--title", title, "--department", "办公室", "--year", "2019",
            "--carrier", "paper", "--pages", "10", "--secrecy", "internal",
            "--transferred-by", LIAISON]  # fmt: skip


def options(fields: dict[str, str]) -> list[str]:
    return [x for k, v in fields.items() for x in (f"--{k.replace('_', '-')}", v)]


def ok(done: Result) -> Result:
    assert done.code == 0, done
    return done


def output(url: str, *args: str) -> str:
    """The stdout of `ledger ARGS...` as written: `run` reads it as text, which turns a
    CR into a LF."""
    done = subprocess.run(
        [LEDGER, *args], env=environment(url, AUDITOR), capture_output=True, timeout=TIMEOUT
    )
    assert done.returncode == 0, done
    return done.stdout.decode()


def as_text(value: Any) -> str:
    """A --json value as a CSV cell holds it (the shared renderer's own rule)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(as_text(v) for v in value)
    return str(value)


# -- CSV: a CR is quoted as a LF is ------------------------------------------------

EXPORTS = [
    ("audit", "--record", CODE),
    ("catalog",),
    ("loans", "--all"),
    ("actor", "list"),
]


@pytest.mark.parametrize("args", EXPORTS, ids=lambda a: " ".join(a))
def test_csv_reads_back_as_json_has_it(world: str, args: tuple[str, ...]) -> None:
    """A field holding a CR was written unquoted (the writer quoted only what its "\\n"
    terminator holds), and a CSV reader split the row there or failed outright."""
    as_json = ok(run(world, *args, "--json", actor=AUDITOR)).json()
    out = output(world, *args, "--csv")
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert [dict(r) for r in rows] == [{k: as_text(v) for k, v in r.items()} for r in as_json]
    assert rows and list(rows[0]) == list(as_json[0])


def test_the_awkward_text_is_in_the_export_and_rows_end_in_a_newline(world: str) -> None:
    out = output(world, "audit", "--record", CODE, "--csv")
    purposes = [row["purpose"] for row in csv.DictReader(io.StringIO(out, newline=""))]
    assert purposes[: len(AWKWARD)] == AWKWARD
    # Rows end in "\n" as before; a row without a CR or LF is written as it was.
    assert out.startswith("occurred_at,record,code,secrecy,action,")
    plain = output(world, "audit", "--record", PLAIN, "--csv").split("\n")
    assert len(plain) == 3 and plain[0] == out.split("\n")[0] and plain[2] == ""
    assert '"' not in plain[1] and plain[1].split(",")[-6:-2] == [BORROWER, "", "", "查考"]


# -- custody details: one value cannot read as other fields -----------------------

PAIR = re.compile(r'([a-z_.]+)=("(?:[^"]|"")*"|[^\s="]+)(?: |\Z)', re.S)


def parse(details: str) -> dict[str, Any]:
    """The details column read back: name=value pairs, one space apart; a quoted value
    with '"' doubled; a mapping's fields as name.field."""
    fields: dict[str, Any] = {}
    at = 0
    while at < len(details):
        pair = PAIR.match(details, at)
        assert pair, (details, at)
        name, value = pair.groups()
        if value.startswith('"'):
            value = value[1:-1].replace('""', '"')
        *outer, last = name.split(".")
        place = fields
        for part in outer:
            place = place.setdefault(part, {})
        assert last not in place, details
        place[last] = value
        at = pair.end()
    return fields


NOT_DETAILS = {"version", "occurred_at", "recorded_at", "event", "actor", "custodian",
               "prev_hash", "hash", "db_role"}  # fmt: skip


def own_fields(event: dict[str, Any]) -> dict[str, Any]:
    def text(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: text(v) for k, v in value.items()}
        return as_text(value)

    return {
        k: text(v)
        for k, v in event.items()
        if k not in NOT_DETAILS and v is not None and v != [] and v != {}
    }


def test_custody_details_parse_back_into_the_fields_json_has(world: str) -> None:
    """A purpose of '查阅 approved_by=zhao.ld letter=函-001' read, in details, as an
    approval and a letter --json shows as null."""
    events = ok(run(world, "custody", CODE, "--json", actor=AUDITOR)).json()["events"]
    out = output(world, "custody", CODE, "--csv")
    rows = list(csv.DictReader(io.StringIO(out, newline="")))
    assert len(rows) == len(events)
    for row, event in zip(rows, events, strict=True):
        assert parse(row["details"]) == own_fields(event), row["details"]
        assert {k: v for k, v in row.items() if k != "details"} == {
            k: as_text(event[k]) for k in row if k != "details"
        }
    forged = next(e for e in events if e.get("purpose") == FORGING)
    assert forged["approved_by"] is None and forged["letter"] is None
    assert rows[events.index(forged)]["details"] == f'reader={BORROWER} purpose="{FORGING}"'
    corrected = rows[-1]["details"]
    assert corrected == ('corrects_version=1 reason="wrong ""title"" =" '
                         'changes.pages=9 changes.title="新\r题名 a=b"')  # fmt: skip
    assert rows[0]["details"].startswith("title=")  # a plain value stays bare
    assert "department=办公室 year=2019 carrier=paper pages=10" in rows[0]["details"]


def test_custody_table_shows_the_same_details(world: str) -> None:
    table = output(world, "custody", CODE)
    assert f'reader={BORROWER} purpose="{FORGING}"' in table
    assert 'purpose="核对 = 原件" letter="""函"" 3号"' in table
    # The table shows a CR and a LF escaped, once, as in any cell.
    assert 'purpose="甲\\r\\n乙" approved_by=leader letter="甲\\r\\n乙"' in table


# -- flags: true or false, as --json has them ---------------------------------------


def rows_of(out: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(out, newline="")))


def test_flags_read_true_or_false_as_json_has_them(world: str) -> None:
    """A flag was printed as Python's True or False: a late receipt in the catalog's CSV
    and table, in `show` and in custody details (table and CSV); an external reader, and
    an active actor, in `actor list --csv`."""
    assert {row["late"] for row in rows_of(output(world, "catalog", "--csv"))} == {"true"}
    actors = {row["id"]: row for row in rows_of(output(world, "actor", "list", "--csv"))}
    assert [actors[EXTERNAL][k] for k in ("external", "active")] == ["true", "true"]
    assert actors[BORROWER]["external"] == "false"
    received = rows_of(output(world, "custody", CODE, "--csv"))[0]
    assert parse(received["details"])["late"] == "true", received
    table = output(world, "custody", CODE)
    assert " late=true" in table.splitlines()[3], table
    shown = {
        w[0]: w[1:] for w in (line.split() for line in output(world, "show", PLAIN).splitlines())
    }
    assert (shown["late"], shown["opened"]) == (["true"], ["false"]), shown
    catalog = output(world, "catalog")
    assert all(" true " in row for row in catalog.splitlines()[2:]), catalog
    for text in (table, catalog, output(world, "show", CODE), output(world, "actor", "list")):
        assert "True" not in text and "False" not in text, text


# -- a bad time names its option --------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("show", CODE, "--as-of", ""),
        ("show", CODE, "--known-at", ""),
        ("custody", CODE, "--as-of", ""),
        ("custody", CODE, "--known-at", "x"),
        ("custody", CODE, "--csv", "--as-of", "2026-03-01"),
        ("consult", CODE, "--reader", BORROWER, "--purpose", "p", "--occurred-at", ""),
    ],
)
def test_a_bad_time_names_its_option(world: str, args: tuple[str, ...]) -> None:
    """`show` and `custody` printed "error: '' is not an ISO 8601 time", naming no option
    (`audit` and `loans` name theirs); so did a posting command for --occurred-at."""
    before = event_count(world)
    done = run(world, *args, actor=ARCHIVIST)
    assert (done.code, done.stdout) == (2, ""), done
    option, value = args[-2:]
    assert one_line(done.stderr).startswith(f"error: {option}: {value!r} "), done
    assert event_count(world) == before


# -- the id as stored -------------------------------------------------------------


def test_actor_commands_print_the_id_as_stored(world: str) -> None:
    """`actor add ' a '` stored `a` and printed `actor  a  registered`."""
    added = ok(run(world, "actor", "add", " out.a ", "--name", "X", "--role", "borrower",
                   "--clearance", "internal", actor=DIRECTOR))  # fmt: skip
    assert added.stdout == "actor out.a registered\n"
    granted = ok(run(world, "actor", "grant", "\tout.a ", "--role", "leader", actor=DIRECTOR))
    assert granted.stdout == "actor out.a: grant\n"
    changed = ok(run(world, "actor", "clearance", " out.a", "secret", actor=DIRECTOR))
    assert changed.stdout == "actor out.a: clearance\n"
    ids = [a["id"] for a in ok(run(world, "actor", "list", "--json")).json()]
    assert "out.a" in ids
