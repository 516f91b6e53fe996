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

NOT_ALLOWED = (
    "control characters (such as NUL or ESC), invisible characters (such as U+200B or "
    "U+FEFF) and bidirectional formatting characters (such as U+202E) are not allowed"
)
REFUSED = f"Value error, {NOT_ALLOWED}; {{}}, a bidirectional formatting character"
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
        ("title", "3 is U+202E RIGHT-TO-LEFT OVERRIDE",
         {**RECEIPT, "title": "会议\u202e要纪"}),  # RLO: shows 会议纪要
        ("department", "3 is U+2066 LEFT-TO-RIGHT ISOLATE",
         {**RECEIPT, "department": "办公\u2066室\u2069"}),  # LRI ... PDI
        ("purpose", "6 is U+200F RIGHT-TO-LEFT MARK",
         {"command": "consult", "record": RECORD, "reader": BORROWER,
          "purpose": "审计 12\u200f-\u200f30"}),  # RLM: reorders the digits
        ("note", "1 is U+061C ARABIC LETTER MARK",
         {"command": "return", "record": RECORD, "pages": 3, "condition": "intact",
          "note": "\u061c完好"}),  # ALM
        ("location", "3 is U+202A LEFT-TO-RIGHT EMBEDDING",
         {"command": "relocate", "record": RECORD, "location": "C1\u202a-01-1-1"}),  # LRE
        ("record", "37 is U+202D LEFT-TO-RIGHT OVERRIDE",
         {"command": "shelve", "record": f"{RECORD}\u202d",
          "location": "C1-01-1-1"}),  # LRO, in a RECORD
        ("set.title", "3 is U+202B RIGHT-TO-LEFT EMBEDDING",
         {"command": "correct", "record": RECORD, "version": 1,
          "reason": "题名有误", "set": {"title": "纪要\u202b"}}),  # RLE
        ("name", "2 is U+2067 RIGHT-TO-LEFT ISOLATE", {**ACTOR, "name": "王\u2067五"}),  # RLI
        ("unit", "1 is U+2068 FIRST STRONG ISOLATE",
         {**ACTOR, "external": True, "unit": "\u2068设计院\u2069"}),  # FSI ... PDI
        ("reason", "2 is U+202C POP DIRECTIONAL FORMATTING",
         {"command": "correct", "record": RECORD, "version": 1, "reason": "改\u202c"}),  # PDF
        ("basis", "1 is U+200E LEFT-TO-RIGHT MARK",
         {"command": "appraise", "record": RECORD, "decision": "retain",
          "appraiser": ["appr1", "appr2"], "review_on": "2030-01-01",
          "basis": "\u200e保存"}),  # LRM
    ]  # fmt: skip
    fine = {**RECEIPT, "id": "bidi-fine", "title": "会议纪要\t(二)"}
    posted = [{**line, "id": f"bidi-{n}"} for n, (_, _, line) in enumerate(lines, 1)] + [fine]
    before = event_count(office)
    done = run(office, "post", "-", actor=ARCHIVIST, input=jsonl(posted))
    assert done.code == 2, done
    invalid = len(lines)
    assert done.stdout == f"posted 1, skipped 0, refused 0, invalid {invalid} (1 event)\n", done
    assert done.stderr.splitlines() == [
        f"line {n}: error: {field}: {REFUSED.format('character ' + which)}"
        for n, (field, which, _) in enumerate(lines, 1)
    ]
    assert event_count(office) == before + 1


@pytest.mark.parametrize(
    ("args", "name", "which"),
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
            "3 is U+202E RIGHT-TO-LEFT OVERRIDE",
        ),
        (("show", f"{RECORD}\u2066"), "RECORD", "37 is U+2066 LEFT-TO-RIGHT ISOLATE"),
        (("custody", f"{RECORD}\u202e"), "RECORD", "37 is U+202E RIGHT-TO-LEFT OVERRIDE"),
        (("audit", "--record", f"{RECORD}\u200f"), "--record", "37 is U+200F RIGHT-TO-LEFT MARK"),
        (
            ("relocate", RECORD, "--location", "C1-01\u202e-1-1"),
            "--location",
            "6 is U+202E RIGHT-TO-LEFT OVERRIDE",
        ),
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
            "2 is U+2067 RIGHT-TO-LEFT ISOLATE",
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
            "4 is U+061C ARABIC LETTER MARK",
        ),
    ],
    ids=["receive", "show", "custody", "audit", "relocate", "actor-name", "actor-unit"],
)
def test_a_command_given_a_bidirectional_control_is_invalid_input(
    office: str, args: tuple[str, ...], name: str, which: str
) -> None:
    before = event_count(office)
    done = run(office, *args, actor=DIRECTOR if args[0] == "actor" else ARCHIVIST)
    assert (done.code, done.stdout) == (2, ""), done
    assert one_line(done.stderr) == f"error: {name}: {REFUSED.format('character ' + which)}"
    assert event_count(office) == before


def test_a_line_id_with_a_bidirectional_control_is_invalid(office: str) -> None:
    """Keys were refused already (not printable), as "at most 200 characters, all
    printable (no control characters)": the message said nothing of what was wrong. It
    says what text's does."""
    done = run(office, "post", "-", actor=ARCHIVIST, input=jsonl([{**RECEIPT, "id": "k\u202e"}]))
    assert done.code == 2, done
    assert one_line(done.stderr) == (
        f'line 1: error: "id": {NOT_ALLOWED}; character 2 is U+202E RIGHT-TO-LEFT OVERRIDE, '
        "a bidirectional formatting character"
    )
