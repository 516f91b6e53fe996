"""Invisible characters are refused in text as control and bidirectional formatting
characters are: a zero-width space, a joiner, a soft hyphen, a word joiner, U+FEFF, a
variation selector or a tag character draws as nothing, so a title, a location, a name or
a RECORD holding one prints as text it is not, and a search or look-up for the text that
shows misses it (README, "Using it"). Through the real `ledger` process, on SQLite and
PostgreSQL: bulk lines (every kind of text, line ids) and single commands."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

import pytest

from tests.cli import (
    ARCHIVIST,
    BACKENDS,
    BORROWER,
    DIRECTOR,
    LEADER,
    LIAISON,
    WITNESS,
    event_count,
    fresh_store,
    jsonl,
    one_line,
    run,
    setup_office,
)

NOT_ALLOWED = (
    "control characters (such as NUL or ESC), invisible characters (such as U+200B or "
    "U+FEFF) and bidirectional formatting characters (such as U+202E) are not allowed"
)
INVISIBLE = "an invisible or format character"
RECORD = "00000000-0000-4000-8000-0000000000c1"  # validation comes before any look-up
CODE = "Z001-WS·2000-D10-BGS-0001"
RECEIPT = {"command": "receive", "title": "会议纪要", "department": "办公室", "year": 2000,
           "carrier": "paper", "pages": 3, "secrecy": "public",
           "transferred_by": LIAISON}  # fmt: skip
ACTOR = {"command": "actor-add", "actor_id": "new.one", "name": "王五", "role": ["borrower"],
         "clearance": "public"}  # fmt: skip
CONSULT = {"command": "consult", "record": RECORD, "reader": BORROWER, "purpose": "审计"}
DESTROY = {"command": "destroy", "record": RECORD, "approved_by": LEADER,
           "witness": [WITNESS, DIRECTOR], "register": "XH-001"}  # fmt: skip


@pytest.fixture(scope="module", params=BACKENDS)
def office(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    with fresh_store(request.param, tmp_path_factory.mktemp("invisible")) as url:
        setup_office(url)
        yield url


def test_bulk_lines_with_invisible_characters_are_invalid_and_the_others_post(
    office: str,
) -> None:
    lines = [
        ("title", "3 is U+200B ZERO WIDTH SPACE", {**RECEIPT, "title": "会议\u200b纪要"}),
        ("department", "2 is U+200D ZERO WIDTH JOINER",
         {**RECEIPT, "department": "办\u200d公室"}),
        ("purpose", "2 is U+200C ZERO WIDTH NON-JOINER", {**CONSULT, "purpose": "审\u200c计"}),
        ("letter", "2 is U+FE0F VARIATION SELECTOR-16", {**CONSULT, "letter": "函\ufe0f"}),
        ("note", "2 is U+2060 WORD JOINER",
         {"command": "return", "record": RECORD, "pages": 3, "condition": "intact",
          "note": "完\u2060好"}),
        ("location", "6 is U+200B ZERO WIDTH SPACE",
         {"command": "relocate", "record": RECORD, "location": "C1-01\u200b-1-1"}),
        ("record", "37 is U+2063 INVISIBLE SEPARATOR",
         {"command": "shelve", "record": f"{RECORD}\u2063", "location": "C1-01-1-1"}),
        ("set.title", "2 is U+00AD SOFT HYPHEN",
         {"command": "correct", "record": RECORD, "version": 1, "reason": "题名有误",
          "set": {"title": "纪\u00ad要"}}),
        ("reason", "2 is U+2061 FUNCTION APPLICATION",
         {"command": "correct", "record": RECORD, "version": 1, "reason": "改\u2061"}),
        ("name", "2 is U+FEFF ZERO WIDTH NO-BREAK SPACE", {**ACTOR, "name": "王\ufeff五"}),
        ("unit", "3 is U+180E MONGOLIAN VOWEL SEPARATOR",
         {**ACTOR, "external": True, "unit": "设计\u180e院"}),
        ("basis", "3 is U+E0041 TAG LATIN CAPITAL LETTER A",
         {"command": "appraise", "record": RECORD, "decision": "retain",
          "appraiser": ["appr1", "appr2"], "review_on": "2030-01-01",
          "basis": "保存\U000e0041"}),
        ("register", "3 is U+3164 HANGUL FILLER", {**DESTROY, "register": "XH\u3164001"}),
        ("method", "3 is U+E0100 VARIATION SELECTOR-17",
         {**DESTROY, "method": "粉碎\U000e0100"}),
    ]  # fmt: skip
    keys = [  # each key refused, on a line that would post
        ("k\u200b", "2 is U+200B ZERO WIDTH SPACE"),  # refused as unprintable, not saying so
        ("k\ufe0f", "2 is U+FE0F VARIATION SELECTOR-16"),  # printable to Python: it posted
    ]
    fine = {**RECEIPT, "id": "zw-fine", "title": "会议纪要\t(二)"}
    posted = [
        *({**line, "id": f"zw-{n}"} for n, (_, _, line) in enumerate(lines, 1)),
        *({**RECEIPT, "id": key} for key, _ in keys),
        fine,
    ]
    before = event_count(office)
    done = run(office, "post", "-", actor=ARCHIVIST, input=jsonl(posted))
    assert done.code == 2, done
    invalid = len(lines) + len(keys)
    assert done.stdout == f"posted 1, skipped 0, refused 0, invalid {invalid} (1 event)\n", done
    assert done.stderr.splitlines() == [
        *(
            f"line {n}: error: {field}: Value error, {NOT_ALLOWED}; character {which}, {INVISIBLE}"
            for n, (field, which, _) in enumerate(lines, 1)
        ),
        *(
            f'line {n}: error: "id": {NOT_ALLOWED}; character {which}, {INVISIBLE}'
            for n, (_, which) in enumerate(keys, len(lines) + 1)
        ),
    ], done
    assert event_count(office) == before + 1


@pytest.mark.parametrize(
    ("args", "name", "which"),
    [
        (
            (
                "receive",
                "--title",
                "会议\u200b纪要",
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
            "3 is U+200B ZERO WIDTH SPACE",
        ),
        # A code with an invisible character was looked for, and not found (exit 4).
        (("show", f"{CODE}\u200b"), "RECORD", "26 is U+200B ZERO WIDTH SPACE"),
        (("custody", f"{CODE}\u2060"), "RECORD", "26 is U+2060 WORD JOINER"),
        (
            ("audit", "--record", f"{CODE}\ufeff"),
            "--record",
            "26 is U+FEFF ZERO WIDTH NO-BREAK SPACE",
        ),
        (
            ("relocate", RECORD, "--location", "A1\u200d-03-2-4"),
            "--location",
            "3 is U+200D ZERO WIDTH JOINER",
        ),
        (
            ("consult", RECORD, "--reader", BORROWER, "--purpose", "审计\u00ad"),
            "--purpose",
            "3 is U+00AD SOFT HYPHEN",
        ),
        (
            (
                "actor",
                "add",
                "new.two",
                "--name",
                "赵\u200c六",
                "--role",
                "borrower",
                "--clearance",
                "public",
            ),
            "--name",
            "2 is U+200C ZERO WIDTH NON-JOINER",
        ),
    ],
    ids=["receive", "show", "custody", "audit", "relocate", "consult", "actor-name"],
)
def test_a_command_given_an_invisible_character_is_invalid_input(
    office: str, args: tuple[str, ...], name: str, which: str
) -> None:
    before = event_count(office)
    done = run(office, *args, actor=DIRECTOR if args[0] == "actor" else ARCHIVIST)
    assert (done.code, done.stdout) == (2, ""), done
    assert one_line(done.stderr) == (
        f"error: {name}: Value error, {NOT_ALLOWED}; character {which}, {INVISIBLE}"
    ), done
    assert event_count(office) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (
                "actor",
                "add",
                "g.\u200barch",
                "--name",
                "赵六",
                "--role",
                "auditor",
                "--clearance",
                "public",
            ),
            "ID: Value error, actor id must be 1-64",
        ),
        (
            (
                "actor",
                "add",
                "ｇ.arch",
                "--name",
                "赵六",
                "--role",
                "auditor",
                "--clearance",
                "public",
            ),
            "ID: Value error, actor id must be 1-64",
        ),  # full-width g
        (
            (
                "arrange",
                RECORD,
                "--category",
                "administration",
                "--retention",
                "10y",
                "--code",
                "Z001-WS\u200b·2000",
            ),
            "--code: Value error, archival code must be",
        ),
        (
            (
                "arrange",
                RECORD,
                "--category",
                "administration",
                "--retention",
                "10y",
                "--code",
                "Ｚ001-WS·2000",
            ),
            "--code: Value error, archival code must be",
        ),
        (
            (
                "arrange",
                RECORD,
                "--category",
                "administration",
                "--retention",
                "10y",
                "--code",
                "Z001-WS\u30fb2000",
            ),
            "--code: Value error, archival code must be",
        ),
    ],
    ids=["actor-zwsp", "actor-full-width", "code-zwsp", "code-full-width", "code-katakana-dot"],
)
def test_actor_ids_and_archival_codes_take_no_look_alike(
    office: str, args: tuple[str, ...], message: str
) -> None:
    """Kept as it was (a guard, not a fix): an actor id and an archival code are ASCII
    letters and digits and a few marks (a code's middle dot is U+00B7 alone), so none holds
    an invisible character or a full-width or other look-alike of another: `audit --actor
    g.arch` misses no `g.\\u200barch`, which can never act or be named."""
    before = event_count(office)
    done = run(office, *args, actor=DIRECTOR if args[0] == "actor" else ARCHIVIST)
    assert (done.code, done.stdout) == (2, ""), done
    assert one_line(done.stderr).startswith(f"error: {message}"), done
    assert event_count(office) == before


def test_text_refuses_format_and_default_ignorable_characters_and_no_other() -> None:
    """What text may not hold is Unicode's categories Cc (but tab, line feed, carriage
    return) and Cf, and the default-ignorable code points (DerivedCoreProperties.txt,
    Unicode 14), searched for in two steps (README, "Using it"): checked for every code
    point."""
    from ledger.requests import refused_at

    ignorable = [(0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
                 (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
                 (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
                 (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
                 (0xE0000, 0xE0FFF)]  # fmt: skip
    later_format = range(0x13439, 0x13440)  # Cf in Unicode 15: refused already
    wrong = []
    for point in range(0x110000):
        char = chr(point)
        if unicodedata.category(char) == "Cs":
            continue  # no text holds a lone surrogate: the command line and JSON refuse it
        refused = (
            (unicodedata.category(char) in ("Cc", "Cf") and char not in "\t\n\r")
            or any(low <= point <= high for low, high in ignorable)
            or point in later_format
        )
        if (refused_at(f"a{char}\U00020bb7") == 1) != refused:  # 𠮷 after it: beyond the BMP
            wrong.append(f"U+{point:04X}")
    assert wrong == []
