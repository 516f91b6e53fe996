"""What the real `ledger` prints, on SQLite and PostgreSQL (exploratory finds): CSV that a
CSV reader reads back as --json has it."""

from __future__ import annotations

import csv
import io
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
    LEADER,
    LEDGER,
    LIAISON,
    TIMEOUT,
    Result,
    environment,
    fresh_store,
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
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
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
