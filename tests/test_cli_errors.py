"""The exit-code contract, through the real `ledger` process, on SQLite and PostgreSQL.

Every bad input is one line on stderr (``error: ...`` or ``refused (Rn): ...``), nothing
on stdout, no traceback, a documented exit code, and nothing written, except a refusal
under R5-R8 or R19, of a destruction under R11 or R12, of an appraisal for destruction
under R11, or of a use of a destroyed record under R12, which writes exactly one
refused-attempt event naming its rule (and the record's code and secrecy).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, uuid5

import pytest

from ledger.config import masked
from tests.cli import (
    APPRAISER_1,
    APPRAISER_2,
    ARCHIVIST,
    BACKENDS,
    BORROWER,
    DIRECTOR,
    EXTERNAL,
    LEADER,
    LEDGER,
    LIAISON,
    TIMEOUT,
    WITNESS,
    environment,
    event_count,
    fresh_store,
    jsonl,
    last_event,
    one_line,
    post,
    run,
    setup_office,
    stored_events,
)
from tests.pg import fresh_database, require_pg

# The records of the world the cases run against (fixed ids, codes).
RECEIVED = "00000000-0000-4000-8000-000000000001"  # received only
PUBLIC = "00000000-0000-4000-8000-000000000002"  # shelved, public, 30y, 2015
SECRET = "00000000-0000-4000-8000-000000000003"  # shelved, secret
LOANED = "00000000-0000-4000-8000-000000000004"  # on loan to BORROWER
PERMANENT = "00000000-0000-4000-8000-000000000005"  # shelved, permanent
APPRAISED = "00000000-0000-4000-8000-000000000006"  # standing decision to destroy
DESTROYED = "00000000-0000-4000-8000-000000000007"  # destroyed
SHORT = "00000000-0000-4000-8000-000000000008"  # returned 2 of its 10 pages short
# A standing decision to destroy, then its year corrected: its retention runs again (R11).
REDATED = "00000000-0000-4000-8000-000000000009"
CODES = {
    PUBLIC: "E-PUB-0001",
    SECRET: "E-SEC-0001",
    LOANED: "E-LOAN-0001",
    PERMANENT: "E-PERM-0001",
    APPRAISED: "E-APPR-0001",
    DESTROYED: "E-DEST-0001",
    SHORT: "E-SHORT-0001",
    REDATED: "E-REDATE-0001",
}
SECRECY = {SECRET: "secret"}  # the others are public
LAST_EVENT_AT = "2016-06-01T09:00:00+00:00"  # every record's last event is no later


def world_lines() -> list[dict[str, object]]:
    """Build the world in one bulk post: receipts, arrangements, shelving, and so on."""
    lines: list[dict[str, object]] = []

    def add(command: str, occurred: str, actor: str = ARCHIVIST, **fields: object) -> None:
        lines.append(
            {"command": command, "id": f"w{len(lines)}", "actor": actor,
             "occurred_at": occurred, **fields}
        )  # fmt: skip

    retention = {PERMANENT: "permanent", APPRAISED: "10y", DESTROYED: "10y"}
    year = {APPRAISED: 2000, DESTROYED: 2000, REDATED: 1980}
    for record in [RECEIVED, *CODES]:
        add("receive", "2016-01-04T09:00:00+00:00", record=record, title="文件",
            department="办公室", year=year.get(record, 2015), carrier="paper", pages=10,
            secrecy=SECRECY.get(record, "public"), transferred_by=LIAISON)  # fmt: skip
    for record, code in CODES.items():
        add("arrange", "2016-01-05T09:00:00+00:00", record=record, code=code,
            category="administration", retention=retention.get(record, "30y"))  # fmt: skip
        add("shelve", "2016-01-06T09:00:00+00:00", record=code, location="A1-01-1-1")
    add("lend", LAST_EVENT_AT, record=CODES[LOANED], to=BORROWER, due="2016-07-01",
        purpose="借阅", approved_by=LEADER)  # fmt: skip
    add("lend", "2016-03-01T09:00:00+00:00", record=CODES[SHORT], to=BORROWER,
        due="2016-04-01", purpose="借阅", approved_by=LEADER)  # fmt: skip
    add("return", "2016-04-01T09:00:00+00:00", record=CODES[SHORT], pages=8,
        condition="intact")  # fmt: skip
    for record in (APPRAISED, DESTROYED, REDATED):
        add("appraise", "2016-02-01T09:00:00+00:00", actor=APPRAISER_1, record=record,
            decision="destroy", appraiser=[APPRAISER_1, APPRAISER_2], basis="期满")  # fmt: skip
    add("destroy", "2016-03-01T09:00:00+00:00", record=DESTROYED, approved_by=LEADER,
        witness=[WITNESS, DIRECTOR], register="XH-2016-001")  # fmt: skip
    add("correct", "2016-02-02T09:00:00+00:00", record=REDATED, version=1, reason="误录年度",
        set={"year": 2015})  # fmt: skip
    return lines


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_store(request.param, tmp_path_factory.mktemp("errors")) as url:
        setup_office(url)
        lines = world_lines()
        done = post(url, lines)
        assert done.code == 0, done
        assert done.stdout.startswith(f"posted {len(lines)}, skipped 0, refused 0, invalid 0")
        yield url


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    code: int
    starts: str  # how the one stderr line starts
    actor: str | None = ARCHIVIST
    recorded: str | None = None  # the rule of the one refused-attempt event it writes
    input: str | None = None


def refused(rule: str) -> str:
    return f"refused ({rule}): "


def receipt(**changes: str) -> tuple[str, ...]:
    """A valid `ledger receive` command line, with some options changed."""
    options = {"title": "t", "department": "d", "year": "2020", "carrier": "paper",
               "pages": "3", "secrecy": "public", "transferred-by": LIAISON, **changes}  # fmt: skip
    return ("receive", *(x for k, v in options.items() for x in (f"--{k}", v)))


RECEIPT = receipt()
PUB, SEC, LOAN = CODES[PUBLIC], CODES[SECRET], CODES[LOANED]
PERM, APPR, DEST = CODES[PERMANENT], CODES[APPRAISED], CODES[DESTROYED]
LEND = ("--due", "2099-01-01", "--purpose", "借阅", "--approved-by", LEADER)
COPY = ("copy", PUB, "--reader", BORROWER, "--pages", "1", "--purpose", "p", "--approved-by")
APPRAISE = ("--basis", "b", "--appraiser", APPRAISER_1)
DESTROY = ("--approved-by", LEADER, "--register", "XH-1", "--witness", WITNESS, "--witness")
R3 = ("arrange", RECEIVED, "--category", "business", "--retention", "10y", "--code", PUB)
UNKNOWN = "error: actor 'ghost' is not registered"

# fmt: off
CASES = [
    Case("missing option", ("receive", "--title", "t"), 2, "error: Missing option"),
    Case("bad pages", receipt(pages="x"), 2, "error: Invalid value for '--pages'"),
    # Click lists the choices of a missing Choice option one per line.
    Case("missing choice", ("actor", "add", "x4", "--name", "X", "--clearance", "public"), 2,
         "error: Missing option '--role'. Choose from: archivist, director, liaison, leader, "
         "appraiser, borrower, auditor (see --help)", actor=DIRECTOR),
    Case("no lines a chunk", ("post", "-", "--chunk-size", "0"), 2,
         "error: Invalid value for '--chunk-size'", input=""),
    Case("bad occurred-at", (*RECEIPT, "--occurred-at", "yesterday"), 2,
         "error: --occurred-at: 'yesterday'"),
    Case("bad secrecy", receipt(secrecy="bogus"), 2, "error: Invalid value for '--secrecy'"),
    Case("no acting actor", RECEIPT, 2, "error: no acting actor", actor=None),
    Case("future", (*RECEIPT, "--occurred-at", "2099-01-01T00:00:00+00:00"), 3, refused("R14")),
    Case("before previous event", ("relocate", PUB, "--location", "B1-01-1-1",
         "--occurred-at", "2010-01-01T00:00:00Z"), 3, refused("R14")),
    Case("unknown record", ("lend", "E-NOPE-9", "--to", BORROWER, *LEND), 4, "error: record"),
    Case("unknown reader", ("consult", PUB, "--reader", "ghost", "--purpose", "p"), 4, UNKNOWN),
    Case("unknown approver", (*COPY, "ghost"), 4, UNKNOWN),
    Case("unregistered actor", ("consult", PUB, "--reader", BORROWER, "--purpose", "p"), 3,
         refused("R19"), actor="ghost", recorded="R19"),
    # Not an attempt by some other actor (it was recorded as one): not an actor id at all.
    Case("actor id with a newline", ("consult", PUB, "--reader", BORROWER, "--purpose", "p"),
         2, f"error: acting actor '{ARCHIVIST}\\n' is not an actor id", actor=ARCHIVIST + "\n"),
    Case("unregistered receiver", RECEIPT, 3, refused("R19"), actor="ghost", recorded="R19"),
    Case("borrower as archivist", ("relocate", PUB, "--location", "B1-01-1-1"), 3,
         refused("R19"), actor=BORROWER, recorded="R19"),
    Case("auditor posts", ("shelve", RECEIVED, "--location", "B1-01-1-1"), 3, refused("R19"),
         actor="auditor", recorded="R19"),
    Case("R1 not a liaison", receipt(**{"transferred-by": BORROWER}), 3, refused("R1")),
    Case("R3 duplicate code", R3, 3, refused("R3")),
    # A code that reads as a UUID would name another record: RECEIVED could not be named.
    *(Case(f"code that is a UUID ({code[:8]})", ("arrange", RECEIVED, "--category", "business",
           "--retention", "10y", "--code", code), 2,
           "error: --code: Value error, an archival code must not read as a record id")
      for code in (PUBLIC, "0123456789abcdef0123456789ABCDEF")),
    Case("lend without approval", ("lend", PUB, "--to", BORROWER, "--due", "2099-01-01",
         "--purpose", "p"), 2, "error: Missing option '--approved-by'. (see --help)"),
    Case("location too long", ("relocate", PUB, "--location", "A1-" + "0" * 200 + "-2-4"), 2,
         "error: --location: Value error, a location is at most 200 characters"),
    Case("R4 shelve unarranged", ("shelve", RECEIVED, "--location", "A1-01-1-2"), 3,
         refused("R4")),
    Case("R5 approver not a leader", (*COPY, ARCHIVIST), 3, refused("R5"), recorded="R5"),
    # An approval comes from another leader than the reader (a leader's own use too).
    Case("R5 leader approves its own copy", ("copy", PUB, "--reader", LEADER, "--pages", "1",
         "--purpose", "p", "--approved-by", LEADER), 3, f"refused (R5): {LEADER} cannot approve "
         f"its own copy of record {PUB}; another leader must approve it", recorded="R5"),
    Case("R6 leader approves its own consult of a secret record", ("consult", SEC, "--reader",
         LEADER, "--purpose", "p", "--approved-by", LEADER), 3, f"refused (R6): {LEADER} "
         f"cannot approve its own consult of secret record {SEC}", recorded="R6"),
    Case("R6 reader not cleared", ("consult", SEC, "--reader", WITNESS, "--purpose", "p",
         "--approved-by", LEADER), 3, refused("R6"), recorded="R6"),
    Case("R6 no approval", ("consult", SEC, "--reader", BORROWER, "--purpose", "p"), 3,
         refused("R6"), recorded="R6"),
    Case("R7 no letter", ("consult", PUB, "--reader", EXTERNAL, "--purpose", "p"), 3,
         refused("R7"), recorded="R7"),
    Case("R8 lend while on loan", ("lend", LOAN, "--to", EXTERNAL, "--letter", "J-1", *LEND),
         3, refused("R8"), recorded="R8"),
    # The reason kept in the audit trail said "repaired" for a loss report too.
    Case("R8 loss reported while on loan", ("report-loss", LOAN, "--pages", "1", "--note",
         "n"), 3, f"refused (R8): record {LOAN} is on loan to {BORROWER}; it must be returned "
         "before it can be reported lost", recorded="R8"),
    Case("R8 repair while on loan", ("repair", LOAN, "--note", "n"), 3,
         f"refused (R8): record {LOAN} is on loan to {BORROWER}; it must be returned before "
         "it can be repaired", recorded="R8"),
    Case("R9 return not on loan", ("return", PUB, "--pages", "10", "--condition", "intact"),
         3, refused("R9")),
    # The pages a loss leaves: some, and fewer than catalogued (10).
    *(Case(f"loss leaving {n} pages", ("report-loss", CODES[SHORT], "--pages", n, "--note",
           "n"), 2, starts) for n, starts in [
        ("0", "error: --pages: Input should be greater than or equal to 1"),
        ("10", "error: pages after a loss must be at least 1 and fewer than the catalogue's 10"),
        ("250", "error: pages after a loss must be at least 1 and fewer than the catalogue's")]),
    Case("R10 due before loan", ("lend", PUB, "--to", BORROWER, "--due", "2001-01-01",
         "--purpose", "p", "--approved-by", LEADER), 3, refused("R10")),
    # An appraisal for destruction is a destruction's first step: kept when refused (R11).
    Case("R11 permanent", ("appraise", PERM, "--decision", "destroy", *APPRAISE,
         "--appraiser", APPRAISER_2), 3, refused("R11"), actor=APPRAISER_1, recorded="R11"),
    Case("R11 one appraiser", ("appraise", PUB, "--decision", "retain",
         "--review-on", "2030-01-01", *APPRAISE), 3, refused("R11"), actor=APPRAISER_1),
    Case("R11 one appraiser to destroy", ("appraise", PUB, "--decision", "destroy",
         *APPRAISE), 3, refused("R11"), actor=APPRAISER_1, recorded="R11"),
    Case("R11 retention not run out", ("appraise", PUB, "--decision", "destroy", *APPRAISE,
         "--appraiser", APPRAISER_2), 3, "refused (R11): retention of record E-PUB-0001 (30y) "
         "runs until 2046-01-01; it cannot be appraised for destruction before 2046-01-01",
         actor=APPRAISER_1, recorded="R11"),
    Case("R8 appraised for destruction while on loan", ("appraise", LOAN, "--decision",
         "destroy", *APPRAISE, "--appraiser", APPRAISER_2), 3, refused("R8"),
         actor=APPRAISER_1, recorded="R8"),
    # Other appraisals refused under R11 are mistakes in what was posted: reported only.
    Case("R11 retain without a review date", ("appraise", PUB, "--decision", "retain",
         *APPRAISE, "--appraiser", APPRAISER_2), 3, "refused (R11): a decision to retain "
         "needs a next review date (--review-on)", actor=APPRAISER_1),
    Case("R11 review before appraisal", ("appraise", PUB, "--decision", "retain",
         "--review-on", "2020-01-01", "--occurred-at", "2020-01-01T09:00:00+00:00", *APPRAISE,
         "--appraiser", APPRAISER_2), 3, "refused (R11): the next review date (2020-01-01) "
         "must lie after the appraisal (2020-01-01)", actor=APPRAISER_1),
    Case("R11 declassified to the level it has", ("appraise", PUB, "--decision", "declassify",
         "--secrecy", "public", *APPRAISE, "--appraiser", APPRAISER_2), 3, "refused (R11): "
         "declassifying to public lowers nothing: the record is public already",
         actor=APPRAISER_1),
    # Every improper destruction attempt is kept (R12), and names whose approval it had.
    Case("R12 no destroy appraisal", ("destroy", PUB, *DESTROY, DIRECTOR), 3, refused("R12"),
         recorded="R12"),
    Case("R12 same witness twice", ("destroy", APPR, *DESTROY, WITNESS), 3, refused("R12"),
         recorded="R12"),
    Case("R12 one witness", ("destroy", APPR, "--approved-by", LEADER, "--register", "XH-1",
         "--witness", WITNESS), 3, refused("R12"), recorded="R12"),
    # Two others supervise (监销) the destruction: the archivist who carries it out is
    # no witness of it, however many others are named.
    Case("R12 the destroyer as a witness", ("destroy", APPR, "--approved-by", LEADER,
         "--register", "XH-1", "--witness", ARCHIVIST, "--witness", WITNESS, "--witness",
         DIRECTOR), 3, f"refused (R12): {ARCHIVIST} carries out the destruction and cannot "
         "also witness it", recorded="R12"),
    Case("R12 approver not a leader", ("destroy", APPR, "--approved-by", ARCHIVIST,
         "--register", "XH-1", "--witness", WITNESS, "--witness", DIRECTOR), 3,
         refused("R12"), recorded="R12"),
    Case("R12 destroyed again", ("destroy", DEST, *DESTROY, DIRECTOR), 3, refused("R12"),
         recorded="R12"),
    Case("R8 destroy while on loan", ("destroy", LOAN, *DESTROY, DIRECTOR), 3, refused("R8"),
         recorded="R8"),
    # Invalid input, not an attempt the rules refuse: not kept.
    Case("destroy with a blank register", ("destroy", APPR, "--approved-by", LEADER,
         "--register", " ", "--witness", WITNESS, "--witness", DIRECTOR), 2,
         "error: --register: String should have at least 1 character"),
    Case("destroy without witnesses", ("destroy", APPR, "--approved-by", LEADER,
         "--register", "XH-1"), 2, "error: Missing option '--witness'"),
    Case("destroy approved by no one registered", ("destroy", APPR, *DESTROY, DIRECTOR,
         "--approved-by", "ghost"), 4, UNKNOWN),
    Case("R11 destroy before a corrected retention runs out", ("destroy", CODES[REDATED],
         *DESTROY, DIRECTOR), 3, "refused (R11): retention of record E-REDATE-0001 (30y) runs "
         "until 2046-01-01; it cannot be destroyed before 2046-01-01", recorded="R11"),
    # A use of a destroyed record is an attempted access: kept, with reader and approver.
    Case("R12 consult after destruction", ("consult", DEST, "--reader", BORROWER,
         "--purpose", "p"), 3, refused("R12"), recorded="R12"),
    Case("R12 copy after destruction", ("copy", DEST, "--reader", BORROWER, "--pages", "1",
         "--purpose", "p", "--approved-by", LEADER), 3, refused("R12"), recorded="R12"),
    Case("R12 lend after destruction", ("lend", DEST, "--to", BORROWER, *LEND), 3,
         refused("R12"), recorded="R12"),
    # R10 is judged last: a lend the record's state or its people refuse is kept, whatever
    # its due date (a due date before the loan let it go unrecorded, as R10 refusals are).
    Case("R12 lend after destruction, due before it", ("lend", DEST, "--to", BORROWER,
         "--due", "2001-01-01", "--purpose", "p", "--approved-by", LEADER), 3,
         refused("R12"), recorded="R12"),
    Case("R8 lend while on loan, due before it", ("lend", LOAN, "--to", EXTERNAL, "--letter",
         "J-1", "--due", "2001-01-01", "--purpose", "p", "--approved-by", LEADER), 3,
         refused("R8"), recorded="R8"),
    Case("R6 lend to a reader not cleared, due before it", ("lend", SEC, "--to", WITNESS,
         "--due", "2001-01-01", "--purpose", "p", "--approved-by", LEADER), 3,
         refused("R6"), recorded="R6"),
    # So is a copy's page count, against the catalogue's, judged once the use is allowed.
    Case("copy of more pages than the record has", ("copy", PUB, "--reader", BORROWER,
         "--pages", "11", "--purpose", "p", "--approved-by", LEADER), 2,
         "error: pages to copy must be between 1 and 10"),
    Case("R12 copy after destruction, more pages than it had", ("copy", DEST, "--reader",
         BORROWER, "--pages", "11", "--purpose", "p", "--approved-by", LEADER), 3,
         refused("R12"), recorded="R12"),
    # Other commands on a destroyed record reach nothing it held: reported only.
    Case("R12 after destruction", ("relocate", DEST, "--location", "B1-01-1-1"), 3,
         refused("R12")),
    Case("R12 return after destruction", ("return", DEST, "--pages", "10", "--condition",
         "intact"), 3, refused("R12")),
    Case("empty corrected title", ("correct", PUB, "--version", "1", "--reason", "r", "--set",
         "title= "), 2, "error: --set.title: String should have at least 1 character"),
    # As a receipt checks it (RECEIVED was received on 2016-01-04).
    Case("corrected year after the receipt", ("correct", RECEIVED, "--version", "1",
         "--reason", "r", "--set", "year=2017"), 2,
         "error: year 2017 lies after the receipt (2016-01-04)"),
    Case("corrected pages not a number", ("correct", PUB, "--version", "1", "--reason", "r",
         "--set", "pages=many"), 2, "error: --set.pages: Input should be a valid integer"),
    Case("corrected year below zero", ("correct", PUB, "--version", "1", "--reason", "r",
         "--set", "year=-5"), 2,
         "error: --set.year: Input should be greater than or equal to 1000"),
    Case("corrected pages not plain digits", ("correct", PUB, "--version", "1", "--reason",
         "r", "--set", "pages=1_3"), 2, "error: --set.pages: Input should be a valid integer"),
    Case("corrected field twice", ("correct", PUB, "--version", "1", "--reason", "r", "--set",
         "pages=3", "--set", "title=x", "--set", "pages=4"), 2,
         "error: --set gives pages more than once"),
    # Options the decision or the actor would ignore.
    Case("review date with destruction", ("appraise", PUB, "--decision", "destroy",
         "--review-on", "2030-01-01", *APPRAISE, "--appraiser", APPRAISER_2), 2,
         "error: --review-on: Value error, a decision to destroy has no next review",
         actor=APPRAISER_1),
    *(Case(f"level with {decision}", ("appraise", PUB, "--decision", decision, "--review-on",
           "2030-01-01", "--secrecy", "internal", *APPRAISE, "--appraiser", APPRAISER_2), 2,
           "error: --secrecy: Value error, a level to lower to goes with a decision to "
           "declassify only", actor=APPRAISER_1) for decision in ("open", "retain")),
    Case("unit of an internal actor", ("actor", "add", "x5", "--name", "X", "--role",
         "borrower", "--clearance", "public", "--unit", "市设计院"), 2,
         "error: --unit: Value error, a unit is given for an external actor only",
         actor=DIRECTOR),
    Case("bad actor id", ("actor", "add", "x y", "--name", "X", "--role", "borrower",
         "--clearance", "public"), 2, "error: ID: ", actor=DIRECTOR),
    Case("bad actor id of a change", ("actor", "grant", "x y", "--role", "borrower"), 2,
         "error: ID: ", actor=DIRECTOR),
    Case("R13 correction of a field the event never set", ("correct", PUB, "--version", "3",
         "--reason", "r", "--set", "title=x"), 3, "refused (R13): the title of record "
         f"{PUB} comes from version 1 (received); a correction of it must reference that "
         "version, not 3"),
    Case("correction that changes nothing", ("correct", PUB, "--version", "1", "--reason", "r",
         "--set", "title=文件"), 2, f"error: the title of record {PUB} is already '文件'"),
    Case("R12 correct after destruction", ("correct", DESTROYED, "--version", "1",
         "--reason", "r", "--set", "title=x"), 3, refused("R12")),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(world: str, case: Case) -> None:
    before = event_count(world)
    done = run(world, *case.args, actor=case.actor, input=case.input)
    assert done.code == case.code, done
    assert "Traceback" not in done.stdout + done.stderr
    assert one_line(done.stderr).startswith(case.starts), done
    assert done.stdout == "", done
    if case.recorded is None:
        assert event_count(world) == before
        return
    assert event_count(world) == before + 1
    topic, body = last_event(world)
    assert topic == "ledger/Refusal/AttemptRefused"
    assert body["rule"] == case.recorded
    assert body["actor"] == (case.actor or "")
    assert body["action"] == case.args[0]
    if case.args[0] == "destroy":  # the approver named, as a use's refusal names it
        given = case.args[case.args.index("--approved-by") + 1]
        assert (body["approved_by"], body["record_id"]) == (given, _record_of(case.args[1]))
    if case.args[0] == "appraise":  # the decision and the committee named
        committee = [v for k, v in pairwise(case.args) if k == "--appraiser"]
        given = case.args[case.args.index("--decision") + 1]
        assert (body["decision"], body["appraisers"]) == (given, committee)
    if case.args[1] in CODES.values():  # the record's code and secrecy, for the auditor
        record = _record_of(case.args[1])
        assert (body["code"], body["secrecy"]) == (case.args[1], SECRECY.get(record, "public"))
    if case.args[0] in ("consult", "copy", "lend"):  # who was to read it
        reader = case.args[case.args.index("--to" if case.args[0] == "lend" else "--reader") + 1]
        assert body["reader"] == reader


def _record_of(code: str) -> str:
    return next(record for record, known in CODES.items() if known == code)


def test_bad_json_line_is_reported_and_the_rest_posts(world: str) -> None:
    before = event_count(world)
    good = {"command": "relocate", "id": "json-2", "record": PUB, "location": "C1-01-1-1"}
    done = run(world, "post", "-", actor=ARCHIVIST, input='{"command": oops\n' + jsonl([good]))
    assert done.code == 2, done
    assert "Traceback" not in done.stderr
    assert one_line(done.stderr).startswith("line 1: error: bad JSON"), done
    assert done.stdout == "posted 1, skipped 0, refused 0, invalid 1 (1 event)\n"
    assert event_count(world) == before + 1


@pytest.mark.parametrize("jobs", [("--jobs", "1"), ("--jobs", "2", "--chunk-size", "1")])
def test_a_file_that_starts_with_a_byte_order_mark_posts(world: str, jobs: tuple[str]) -> None:
    """Some editors save UTF-8 with a BOM first: line 1 was bad JSON. It is skipped, in
    one process and with workers."""
    before = event_count(world)
    lines = [
        {"command": "relocate", "id": f"bom-{n}-{jobs[1]}", "record": PUB,
         "location": f"D{jobs[1]}-01-1-{n}"}
        for n in (1, 2)
    ]  # fmt: skip
    done = run(world, "post", "-", *jobs, actor=ARCHIVIST, input="\ufeff" + jsonl(lines))
    assert (done.code, done.stderr) == (0, ""), done
    assert done.stdout == "posted 2, skipped 0, refused 0, invalid 0 (2 events)\n", done
    assert event_count(world) == before + 2


def test_a_line_whose_actor_is_no_actor_id_is_invalid_and_writes_nothing(world: str) -> None:
    """An actor id with a trailing newline (a sloppy export, say) was taken for an
    unregistered actor: its refused attempt was recorded under an id that prints as the
    archivist's. It is no actor id: the line is invalid, and takes up no key."""
    before = event_count(world)
    line = {"command": "relocate", "id": "nl-1", "record": PUB, "location": "C1-01-1-2",
            "actor": ARCHIVIST + "\n"}  # fmt: skip
    done = run(world, "post", "-", actor=ARCHIVIST, input=jsonl([line]))
    assert done.code == 2, done
    line = f"line 1: error: acting actor '{ARCHIVIST}\\n' is not an actor id"
    assert one_line(done.stderr) == line
    assert done.stdout == "posted 0, skipped 0, refused 0, invalid 1 (0 events)\n"
    assert event_count(world) == before


SEAL_ID = "2615ddc5-ffe5-5ba9-bd7a-bccb5beabb46"  # aggregates.seal.SEAL_ID
DERIVED = "error: --record: Value error, a record id must not be a version-5 UUID"


def test_a_receipt_may_not_take_a_derived_id_or_any_aggregates_id(world: str) -> None:
    """A receipt given the seal chain's id, or an actor's or a code's (uuid5 of a name),
    was accepted: sealing failed from then on, and the actor or the code could never be
    registered or claimed. Version-5 ids are refused as invalid input, and an id that any
    aggregate holds (here a refused attempt's) as taken; in a bulk file each such line is
    its own problem and the others post."""
    attempt = run(world, "consult", PUB, "--reader", BORROWER, "--purpose", "p", actor="ghost")
    assert attempt.code == 3, attempt
    refusal = str(stored_events(world)[-1][0])
    actor_id = str(uuid5(uuid5(NAMESPACE_URL, "records-custody-ledger/actor"), "new.actor"))
    before = event_count(world)
    for given in (SEAL_ID, actor_id):
        done = run(world, *RECEIPT, "--record", given, actor=ARCHIVIST)
        assert (done.code, done.stdout) == (2, ""), done
        assert one_line(done.stderr).startswith(DERIVED), done
    taken = run(world, *RECEIPT, "--record", refusal, actor=ARCHIVIST)
    assert (taken.code, one_line(taken.stderr)) == (2, f"error: record {refusal} already exists")
    assert event_count(world) == before

    fields = {"command": "receive", "title": "t", "department": "d", "year": 2020,
              "carrier": "paper", "pages": 3, "secrecy": "public",
              "transferred_by": LIAISON}  # fmt: skip
    lines = [
        {**fields, "id": "derived-1", "record": SEAL_ID},
        {**fields, "id": "derived-2", "record": actor_id},
        {**fields, "id": "derived-3", "record": refusal},
        {**fields, "id": "derived-4"},
    ]
    done = post(world, lines, actor=ARCHIVIST)
    assert done.code == 2, done
    assert done.stdout == "posted 1, skipped 0, refused 0, invalid 3 (1 event)\n", done
    problems = done.stderr.splitlines()
    assert [p[:8] for p in problems] == ["line 1: ", "line 2: ", "line 3: "], done
    assert problems[0].startswith("line 1: error: record: Value error, a record id must not")
    assert problems[2] == f"line 3: error: record {refusal} already exists"
    assert event_count(world) == before + 1
    assert run(world, "seal", actor=ARCHIVIST).code == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_first_director_with_no_actor_id_is_refused_and_the_office_is_not_locked_out(
    backend: str, tmp_path: Path
) -> None:
    """`ledger init --director` took any text: a director nobody could act as (every
    command refuses an id that is no actor id) in a ledger that already has actors, so no
    second first director either. It is checked as `ledger actor add` checks an id."""
    with fresh_store(backend, tmp_path) as url:
        done = run(url, "init", "--director", "王 主任!", "--name", "王主任")
        assert done.code == 2, done
        assert one_line(done.stderr) == (
            "error: --director: Value error, actor id must be 1-64 letters, digits, '.', "
            "'_', '@' or '-'"
        )
        assert (done.stdout, event_count(url)) == ("", 0)
        blank = run(url, "init", "--director", "dir1", "--name", "  ")
        assert (blank.code, one_line(blank.stderr)) == (
            2,
            "error: --name: String should have at least 1 character",
        )
        done = run(url, "init", "--director", " dir1 ", "--name", "王主任")  # stripped
        assert done.code == 0, done
        assert done.stdout.endswith("; director dir1 registered\n"), done
        added = run(url, "actor", "add", "arch9", "--name", "档案员", "--role", "archivist",
                    "--clearance", "internal", actor="dir1")  # fmt: skip
        assert added.code == 0, added


@pytest.mark.parametrize(
    "args",
    [("show", "X"), ("post", "-", "--jobs", "1"), ("post", "-", "--jobs", "2")],
    ids=["show", "post", "post-jobs"],
)
def test_no_database(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Even an empty bulk file finds the store missing (a post with workers opens it
    only when it has lines to route)."""
    missing = tmp_path / "missing.db"
    done = run(f"sqlite:///{missing}", *args, input="")
    assert done.code == 4, done
    assert "run `ledger init`" in one_line(done.stderr), done
    assert done.stderr.startswith("error: ")
    assert done.stdout == ""
    assert not missing.exists()


def test_sqlite_file_in_a_missing_folder(tmp_path: Path) -> None:
    done = run(f"sqlite:///{tmp_path}/no/such/folder/ledger.db", "init")
    assert done.code == 1, done
    assert one_line(done.stderr) == "error: database unavailable: unable to open database file"
    assert done.stdout == ""


@pytest.mark.parametrize("args", [("init", "--director", DIRECTOR, "--name", "王"), ("catalog",),
                                  ("show", "X"), ("verify",), ("post", "-")])  # fmt: skip
def test_a_file_that_is_not_a_database_is_unavailable_and_left_alone(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(bytes(range(256)) * 20)
    done = run(f"sqlite:///{path}", *args, actor=DIRECTOR, input="")
    assert done.code == 1, done
    assert one_line(done.stderr) == "error: database unavailable: file is not a database"
    assert path.read_bytes() == bytes(range(256)) * 20
    assert [p.name for p in tmp_path.iterdir()] == ["ledger.db"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://localhost/x", "is neither sqlite:///FILE nor postgresql://USER@HOST/DB"),
        ("postgresql://u:s3cret@127.0.0.1:99999/x", "has no valid port (1-65535)"),
        ("postgresql://u:s3cret@127.0.0.1:abc/x", "has no valid port (1-65535)"),
        ("postgresql://u:s3cret@127.0.0.1:5432/", "names no database"),
        (  # the parameters were dropped: the session went without the TLS it asked for
            "postgresql://u:s3cret@127.0.0.1:5432/x?sslmode=require",
            "instead (e.g. PGSSLMODE=require)",
        ),
        ("postgresql://u:s3cret@127.0.0.1/x#frag", "instead (e.g. PGSSLMODE=require)"),
        ("sqlite:///:memory:", "holds neither ':memory:' nor 'mode=memory'"),
        ("sqlite:///file:x?mode=memory&cache=shared", "holds neither ':memory:' nor 'mode=memory'"),
        ("sqlite:////tmp/x/:memory:", "holds neither ':memory:' nor 'mode=memory'"),
        # the parameters were taken for the file's name: a file `x.db?mode=ro` was made
        ("sqlite:///x.db?mode=ro", "is written %3F or %23)"),
        ("sqlite:///x.db#", "is written %3F or %23)"),
        ("postgresql://u:s3cret@127.0.0.1/x?", "instead (e.g. PGSSLMODE=require)"),
    ],
)
def test_bad_database_url(tmp_path: Path, url: str, message: str) -> None:
    url = url.replace("sqlite:///x", f"sqlite:///{tmp_path}/x")
    done = run(url, "init", "--director", DIRECTOR, "--name", "王")
    assert done.code == 2, done
    line = one_line(done.stderr)
    assert line.startswith("error: database URL"), done
    assert line.endswith(message), done
    assert "s3cret" not in line, "a password in a message"
    assert list(tmp_path.iterdir()) == [], "a file made"


def test_an_empty_db_option_is_invalid_and_an_empty_ledger_db_is_unset(tmp_path: Path) -> None:
    """`--db ''` (a variable that was never set, say) opened sqlite:///ledger.db in the
    current directory. An empty LEDGER_DB is as if unset: the default."""

    def in_folder(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LEDGER, *args], env=environment(""), cwd=tmp_path,
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
        )  # fmt: skip

    given = in_folder("--db", "", "init", "--director", DIRECTOR, "--name", "王")
    assert given.returncode == 2, given
    assert one_line(given.stderr).startswith("error: database URL is empty: give sqlite:///")
    assert (given.stdout, list(tmp_path.iterdir())) == ("", [])
    unset = in_folder("show", "X")
    assert unset.returncode == 4, unset
    assert unset.stderr == "error: no ledger at sqlite:///ledger.db; run `ledger init` first\n"


@pytest.mark.parametrize("size", ["0", "-5", "many"])
@pytest.mark.parametrize(
    "args",
    [("projections", "rebuild"), ("catalog",), ("projections", "follow")],
    ids=["rebuild", "catalog", "follow"],
)
def test_a_page_size_that_is_no_number_of_events_is_invalid_input(
    tmp_path: Path, args: tuple[str, ...], size: str
) -> None:
    """LEDGER_PROJECTION_PAGE_SIZE (README, "Rebuilds") is a whole number of at least 1.
    Before, 0 stopped every catch-up with an unexpected IndexError (exit 1), text with a
    ValueError, and -5 read the whole log as one page. `follow` said "following ..."
    first: the error is the only line."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    setup_office(url)
    done = subprocess.run(
        [LEDGER, *args],
        env={**environment(url), "LEDGER_PROJECTION_PAGE_SIZE": size},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (
        f"error: LEDGER_PROJECTION_PAGE_SIZE is a number of events, at least 1, not '{size}'"
    )
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u:p@ss@h/db?sslcert=/a@b", "postgresql://u:***@h/db?sslcert=/a@b"),
        ("postgresql://u@h:5432/db?x=a:b@c", "postgresql://u@h:5432/db?x=a:b@c"),
        ("sqlite:///ledger@home.db", "sqlite:///ledger@home.db"),
        ("postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db"),  # it printed "pa/ss"
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert masked(url) == shown


UNENCODED = (
    ": a '#' or '?' ends a URL's address, so a password's '#', '?', '@', '/' or '%' must be "
    "percent-encoded (%23 for '#', %3F for '?', %40, %2F and %25)"
)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (
            "postgresql://u:s3#cr@127.0.0.1/test",
            f"database URL 'postgresql://u:***@127.0.0.1/test' names no database{UNENCODED}",
        ),
        (
            "postgresql://u:s3?cr@127.0.0.1:5432/test",
            f"database URL 'postgresql://u:***@127.0.0.1:5432/test' names no database{UNENCODED}",
        ),
        (
            "postgresql://u@127.0.0.1#x",
            "database URL 'postgresql://u@127.0.0.1#x' names no database",
        ),
        (
            "postgresql://u:s3/cr@127.0.0.1/test",
            "database URL 'postgresql://u:***@127.0.0.1/test' has no valid port (1-65535)"
            + UNENCODED.replace("'#' or '?'", "'/'"),
        ),
        (
            "postgresql://u@127.0.0.1:54x/test",
            "database URL 'postgresql://u@127.0.0.1:54x/test' has no valid port (1-65535)",
        ),
    ],
)
def test_a_password_that_breaks_the_url_is_named_and_never_printed(url: str, error: str) -> None:
    """A password's unencoded '#' or '?' ended the URL's address: the URL named no database,
    and the message did not say why; a '/' made "u:s3" a host and port, printed as it was,
    and said only that the port was not valid."""
    done = run(url, "show", "X")
    assert (done.code, done.stdout) == (2, ""), done
    assert one_line(done.stderr) == f"error: {error}"
    assert "s3" not in done.stderr and "cr@" not in done.stderr


@pytest.mark.postgres
def test_a_password_in_the_url_is_never_printed() -> None:
    pg = require_pg()
    parts = urlsplit(pg)
    host = f"{parts.hostname}:{parts.port or 5432}"
    no_store = f"postgresql://{parts.username}:s3cret@{host}/postgres"  # trust: ignored
    done = run(no_store, "show", "X")
    assert done.code == 4, done
    assert one_line(done.stderr) == (
        f"error: no ledger at postgresql://{parts.username}:***@{host}/postgres; "
        "run `ledger init` first"
    )
    with fresh_database() as url:
        new = urlsplit(url)
        with_password = f"postgresql://{new.username}:s3cret@{host}{new.path}"
        done = run(with_password, "init", "--director", DIRECTOR, "--name", "王主任")
        assert done.code == 0, done
        assert "s3cret" not in done.stdout + done.stderr and ":***@" in done.stdout, done


def test_unreachable_postgresql() -> None:
    started = time.monotonic()
    done = run("postgresql://postgres@127.0.0.1:1/test", "show", "X", actor=ARCHIVIST)
    elapsed = time.monotonic() - started
    assert done.code == 1, done
    assert "Traceback" not in done.stderr
    line = one_line(done.stderr)
    assert line.startswith("error: database unavailable: "), done
    assert "Connection refused" in line, done  # the server's reason, not the pool's timeout
    assert done.stdout == ""
    assert elapsed < 20, f"took {elapsed:.1f} s to report an unreachable server"


@pytest.mark.parametrize("bad", ["\u0000", "\u001b[8m", "\u009b8m"])  # NUL, ESC, 8-bit CSI
def test_control_characters_in_text_are_invalid_and_the_projections_go_on(
    world: str, bad: str
) -> None:
    """A title with NUL was posted, and on PostgreSQL every catalog query and rebuild then
    failed (its text refuses NUL), for good: the event cannot be removed. Terminal escape
    codes would hide text in a listing. Such a line is invalid; the others post."""
    before = event_count(world)
    tag = f"{ord(bad[0]):02x}"
    receipt = {"command": "receive", "id": f"ctl-{tag}-1", "title": f"会议{bad}纪要",
               "department": "办公室", "year": 2000, "carrier": "paper", "pages": 3,
               "secrecy": "public", "transferred_by": LIAISON}  # fmt: skip
    moved = {"command": "relocate", "id": f"ctl-{tag}-2", "record": PUB,
             "location": f"C{tag}{bad}-01-1-1"}  # fmt: skip
    fine = {**receipt, "id": f"ctl-{tag}-3", "title": "会议纪要\t(二)"}
    done = run(world, "post", "-", actor=ARCHIVIST, input=jsonl([receipt, moved, fine]))
    assert done.code == 2, done
    assert done.stdout == "posted 1, skipped 0, refused 0, invalid 2 (1 event)\n", done
    assert done.stderr.count("are not allowed; character ") == 2
    assert event_count(world) == before + 1
    assert run(world, "catalog", "--json").code == 0
    assert run(world, "projections", "rebuild").code == 0


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("show", "{}"), "RECORD"),
        (("custody", "{}"), "RECORD"),
        (("relocate", "{}", "--location", "C1-01-1-1"), "RECORD"),
        (("verify", "--record", "{}"), "--record"),
        (("audit", "--record", "{}"), "--record"),
    ],
    ids=["show", "custody", "relocate", "verify", "audit"],
)
def test_a_record_with_control_characters_is_invalid_as_other_text_is(
    world: str, args: tuple[str, ...], name: str
) -> None:
    """A RECORD holding a control character was looked for, and not found (exit 4), where
    any other text holding one is invalid input."""
    before = event_count(world)
    done = run(world, *(a.format(f"{PUB}\u0001") for a in args), actor=ARCHIVIST)
    assert (done.code, done.stdout) == (2, ""), done
    assert one_line(done.stderr) == (
        f"error: {name}: Value error, control characters (such as NUL or ESC), invisible "
        "characters (such as U+200B or U+FEFF) and bidirectional formatting characters (such "
        "as U+202E) are not allowed; "
        f"character {len(PUB) + 1} is U+0001, a control character"
    ), done
    assert event_count(world) == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("occurred_at", 0, "occurred_at: Value error, must be ISO 8601 text, not a number"),
        ("occurred_at", "1700000000", "'1700000000' is not an ISO 8601 time"),
        ("occurred_at", "2016-06-01T10:00:00z", "'2016-06-01T10:00:00z' is not an ISO 8601"),
        ("occurred_at", "2016-06-01_10:00:00Z", "'2016-06-01_10:00:00Z' is not an ISO 8601"),
        ("due", 20260101, "due: Value error, must be a date as text (YYYY-MM-DD), not a number"),
        ("due", "2099-01-01T00:00:00-23:00", "'2099-01-01T00:00:00-23:00' is not a date"),
        ("pages", True, "pages: Input should be a valid integer"),
        ("pages", "2", "pages: Input should be a valid integer"),
        ("pages", 2.0, "pages: Input should be a valid integer"),
        # Beyond 64 bits, read as a float by the JSON parser: out of range, as is 10**10.
        ("pages", 10**23, "pages: Input should be less than or equal to 1000000"),
        ("pages", -(10**23), "pages: Input should be greater than or equal to "),
        ("pages", 10**10, "pages: Input should be less than or equal to 1000000"),
    ],
)
def test_numbers_times_and_dates_are_taken_only_as_json_writes_them(
    world: str, field: str, value: Any, message: str
) -> None:
    """pydantic's lax mode posted `"occurred_at": 0` as 1970-01-01, text of digits as
    seconds since 1970, `true` as one page and "2" or 2.0 as two; its parser took a
    lowercase z, an underscore for the T, and a time at midnight in any zone for a date,
    which the command line refused (and the command line took week dates and the basic
    form, which bulk lines refused). Each is invalid now, by one rule for both."""
    before = event_count(world)
    lend = {"command": "lend", "id": f"lax-{field}-{value!r}", "record": PUB, "to": BORROWER,
            "due": "2099-01-01", "purpose": "审计", "approved_by": DIRECTOR}  # fmt: skip
    copy = {"command": "copy", "id": f"lax-{field}-{value!r}", "record": PUB,
            "reader": BORROWER, "pages": 1, "purpose": "审计", "approved_by": DIRECTOR}  # fmt: skip
    line = {**(copy if field == "pages" else lend), field: value}
    done = run(world, "post", "-", actor=ARCHIVIST, input=jsonl([line]))
    assert done.code == 2, done
    assert done.stdout == "posted 0, skipped 0, refused 0, invalid 1 (0 events)\n", done
    assert one_line(done.stderr).startswith(f"line 1: error: {field}: "), done
    assert message in done.stderr, done
    assert event_count(world) == before


@pytest.mark.parametrize(
    ("moment", "why"),
    [
        ("2016-W22-3T10:00:00+08:00", "is not an ISO 8601 time (e.g. 2026-03-01T09:30:00+08:00)"),
        ("20160601T100000+0800", "is not an ISO 8601 time (e.g. 2026-03-01T09:30:00+08:00)"),
        ("0001-01-01T00:00:00+01:00", "is out of range in UTC (years 1-9999)"),
    ],
)
def test_the_command_line_reads_times_as_bulk_lines_do(world: str, moment: str, why: str) -> None:
    """--occurred-at took ISO 8601's week dates and basic form, which bulk lines refused.
    A time in year 1 with an offset east of UTC was taken too, and a refusal recorded at
    it (year 0 in UTC) stopped the audit trail and the projections for good, exit 1."""
    done = run(world, "relocate", PUB, "--location", "W1-01-1-1", "--occurred-at", moment,
               actor=ARCHIVIST)  # fmt: skip
    expected = f"error: --occurred-at: {moment!r} {why}"
    assert (done.code, one_line(done.stderr)) == (2, expected), done


KEY_REFUSED = (
    '"id": control characters (such as NUL or ESC), invisible characters (such as U+200B or '
    "U+FEFF) and bidirectional formatting characters (such as U+202E) are not allowed"
)
KEY_UNPRINTABLE = (
    '"id" must be printable: no tabs, line breaks, spaces but U+0020, private-use or '
    "unassigned characters"
)


@pytest.mark.parametrize(
    ("key", "why", "message"),
    [
        ("bad\u0000id", "NUL", f"{KEY_REFUSED}; character 4 is U+0000, a control character"),
        ("k" * 201, "long", '"id" must be at most 200 characters'),
        ("esc\u001bid", "ESC", f"{KEY_REFUSED}; character 4 is U+001B, a control character"),
        ("tab\tid", "TAB", f"{KEY_UNPRINTABLE}; character 4 is U+0009"),
        ("nl\nid", "LF", f"{KEY_UNPRINTABLE}; character 3 is U+000A"),
        ("c1\u009bid", "CSI", f"{KEY_REFUSED}; character 3 is U+009B, a control character"),
        ("ideo\u3000id", "U3000", f"{KEY_UNPRINTABLE}; character 5 is U+3000 IDEOGRAPHIC SPACE"),
    ],
)
def test_a_line_id_with_control_characters_or_too_long_is_invalid(
    world: str, key: str, why: str, message: str
) -> None:
    """On PostgreSQL a line id with NUL (refused by its text) or of 10,000 characters (over
    its key index's row size) failed the whole run, and every re-run of the file, with
    exit 1: nothing after it could be posted. Such a line is malformed; the others post."""
    before = event_count(world)
    moves = [{"command": "relocate", "record": PUB, "id": f"key-{why}-{n}",
              "location": f"K{n}-01-1-1"} for n in (1, 2)]  # fmt: skip
    bad = {**moves[0], "id": key, "location": "K3-01-1-1"}
    done = run(
        world, "post", "-", "--jobs", "1", actor=ARCHIVIST, input=jsonl([moves[0], bad, moves[1]])
    )
    assert done.code == 2, done
    assert done.stdout == "posted 2, skipped 0, refused 0, invalid 1 (2 events)\n", done
    assert one_line(done.stderr) == f"line 2: error: {message}"
    assert event_count(world) == before + 2


def test_a_null_actor_is_the_runs_actor_and_any_other_non_text_actor_is_invalid(
    world: str,
) -> None:
    """`"actor": null` was taken for no actor at all ("no acting actor: give --actor"),
    though the run had one; a number said the same. Null is the run's actor, like an
    absent one; anything else that is not text is an invalid line, and so is empty text
    (it said "no acting actor: give --actor ID", though one was given)."""
    before = event_count(world)
    lines = [
        {"command": "relocate", "id": "null-actor-1", "record": PUB,
         "location": "N1-01-1-1", "actor": None},
        {"command": "relocate", "id": "null-actor-2", "record": PUB,
         "location": "N1-01-1-2", "actor": 7},
        {"command": "relocate", "id": "null-actor-3", "record": PUB,
         "location": "N1-01-1-3", "actor": ""},
    ]  # fmt: skip
    done = run(world, "post", "-", actor=ARCHIVIST, input=jsonl(lines))
    assert done.code == 2, done
    assert done.stdout == "posted 1, skipped 0, refused 0, invalid 2 (1 event)\n", done
    assert done.stderr == "".join(
        f'line {n}: error: "actor" must be an actor id (a non-empty string)\n' for n in (2, 3)
    )
    assert event_count(world) == before + 1


def test_a_line_that_is_not_utf_8_says_so(world: str, tmp_path: Path) -> None:
    """Bytes that are not UTF-8 (a UTF-16 byte order mark, a Latin-1 é) were reported as
    "bad JSON: str is not valid UTF-8: surrogates not allowed: line 1 column 1 (char 0)",
    a false explanation and position."""
    before = event_count(world)
    good = {"command": "relocate", "id": "utf-1", "record": PUB, "location": "U1-01-1-1"}
    path = tmp_path / "latin.jsonl"
    path.write_bytes(
        jsonl([good]).encode()
        + b'\xff\xfe{"command": "relocate"}\n'
        + b'{"command": "correct", "id": "utf-2", "set": {"title": "caf\xe9"}}\n'
    )
    done = run(world, "post", str(path), actor=ARCHIVIST)
    assert done.code == 2, done
    assert done.stdout == "posted 1, skipped 0, refused 0, invalid 2 (1 event)\n", done
    assert done.stderr == (
        "line 2: error: not UTF-8 text (byte 1 of the line)\n"
        "line 3: error: not UTF-8 text (byte 60 of the line)\n"
    ), done
    assert event_count(world) == before + 1
