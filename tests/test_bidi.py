"""Unicode's bidirectional formatting characters are refused in text as control characters
are: an override (U+202E) shows a title or a note reversed, an isolate or a mark reorders
it, in any terminal or viewer; in `audit`, `custody` and the reports one would show text
other than the text stored. Through the real `ledger` process: bulk lines and single
commands, every kind of text (titles, purposes, notes, locations, names, units, RECORD)."""

from __future__ import annotations

import pytest

from tests.cli import (
    ARCHIVIST,
    BORROWER,
    DIRECTOR,
    LIAISON,
    event_count,
    jsonl,
    one_line,
    run,
    setup_office,
)

REFUSED = (
    "Value error, control characters (such as NUL or ESC) and bidirectional formatting "
    "characters (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) are not allowed"
)
RECORD = "00000000-0000-4000-8000-0000000000b1"  # validation comes before any look-up
RECEIPT = {"command": "receive", "title": "会议纪要", "department": "办公室", "year": 2000,
           "carrier": "paper", "pages": 3, "secrecy": "public",
           "transferred_by": LIAISON}  # fmt: skip
ACTOR = {"command": "actor-add", "actor_id": "new.one", "name": "王五", "role": ["borrower"],
         "clearance": "public"}  # fmt: skip


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('bidi')}/ledger.db"
    setup_office(url)
    return url


def test_bulk_lines_with_bidirectional_controls_are_invalid_and_the_others_post(
    office: str,
) -> None:
    lines = [
        ("title", {**RECEIPT, "title": "会议\u202e要纪"}),  # RLO: shows 会议纪要
        ("department", {**RECEIPT, "department": "办公\u2066室\u2069"}),  # LRI ... PDI
        ("purpose", {"command": "consult", "record": RECORD, "reader": BORROWER,
                     "purpose": "审计 12\u200f-\u200f30"}),  # RLM: reorders the digits
        ("note", {"command": "return", "record": RECORD, "pages": 3, "condition": "intact",
                  "note": "\u061c完好"}),  # ALM
        ("location", {"command": "relocate", "record": RECORD,
                      "location": "C1\u202a-01-1-1"}),  # LRE
        ("record", {"command": "shelve", "record": f"{RECORD}\u202d",
                    "location": "C1-01-1-1"}),  # LRO, in a RECORD
        ("set.title", {"command": "correct", "record": RECORD, "version": 1,
                       "reason": "题名有误", "set": {"title": "纪要\u202b"}}),  # RLE
        ("name", {**ACTOR, "name": "王\u2067五"}),  # RLI
        ("unit", {**ACTOR, "external": True, "unit": "\u2068设计院\u2069"}),  # FSI ... PDI
        ("reason", {"command": "correct", "record": RECORD, "version": 1,
                    "reason": "改\u202c"}),  # PDF
        ("basis", {"command": "appraise", "record": RECORD, "decision": "retain",
                   "appraiser": ["appr1", "appr2"], "review_on": "2030-01-01",
                   "basis": "\u200e保存"}),  # LRM
    ]  # fmt: skip
    fine = {**RECEIPT, "id": "bidi-fine", "title": "会议纪要\t(二)"}
    posted = [{**line, "id": f"bidi-{n}"} for n, (_, line) in enumerate(lines, 1)] + [fine]
    before = event_count(office)
    done = run(office, "post", "-", actor=ARCHIVIST, input=jsonl(posted))
    assert done.code == 2, done
    invalid = len(lines)
    assert done.stdout == f"posted 1, skipped 0, refused 0, invalid {invalid} (1 event)\n", done
    assert done.stderr.splitlines() == [
        f"line {n}: error: {field}: {REFUSED}" for n, (field, _) in enumerate(lines, 1)
    ]
    assert event_count(office) == before + 1


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (
            (
                "receive",
                "--title",
                "会议\u202e要纪",
                "--department",
                "办公室",
                "--year",
                "2000",
                "--carrier",
                "paper",
                "--pages",
                "3",
                "--secrecy",
                "public",
                "--transferred-by",
                LIAISON,
            ),
            "--title",
        ),
        (("show", f"{RECORD}\u2066"), "RECORD"),
        (("custody", f"{RECORD}\u202e"), "RECORD"),
        (("audit", "--record", f"{RECORD}\u200f"), "--record"),
        (("relocate", RECORD, "--location", "C1-01\u202e-1-1"), "--location"),
        (
            (
                "actor",
                "add",
                "new.two",
                "--name",
                "赵\u2067六",
                "--role",
                "borrower",
                "--clearance",
                "public",
            ),
            "--name",
        ),
        (
            (
                "actor",
                "add",
                "new.two",
                "--name",
                "赵六",
                "--role",
                "borrower",
                "--clearance",
                "public",
                "--external",
                "--unit",
                "设计院\u061c",
            ),
            "--unit",
        ),
    ],
    ids=["receive", "show", "custody", "audit", "relocate", "actor-name", "actor-unit"],
)
def test_a_command_given_a_bidirectional_control_is_invalid_input(
    office: str, args: tuple[str, ...], name: str
) -> None:
    before = event_count(office)
    done = run(office, *args, actor=DIRECTOR if args[0] == "actor" else ARCHIVIST)
    assert (done.code, done.stdout) == (2, ""), done
    assert one_line(done.stderr) == f"error: {name}: {REFUSED}"
    assert event_count(office) == before


def test_a_line_id_with_a_bidirectional_control_is_invalid(office: str) -> None:
    """Keys were refused already (not printable): the message still says so."""
    done = run(office, "post", "-", actor=ARCHIVIST, input=jsonl([{**RECEIPT, "id": "k\u202e"}]))
    assert done.code == 2, done
    assert one_line(done.stderr).startswith('line 1: error: "id" must be at most 200 characters')
