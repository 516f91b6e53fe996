"""A bulk line that names a field twice is malformed: orjson keeps the last value silently,
so `"set": {"pages": 30}, "set": {"title": "C"}` lost its pages (an exploratory find)."""

from __future__ import annotations

import pytest

from ledger.lines import parse
from tests.cli import ARCHIVIST, LIAISON, event_count, jsonl, run, setup_office

HEAD = '{"command": "consult", "id": "k", "record": "P1", "reader": "r", '


@pytest.mark.parametrize(
    ("text", "repeated"),
    [
        (HEAD + '"purpose": "a", "purpose": "b"}', "purpose"),
        (HEAD + '"purpose": "a", "set": {"title": "A", "title": "B"}}', "title"),
        (HEAD + '"purpose": "a", "set": {"pages": 3}, "set": {"title": "C"}}', "set"),
        # Whitespace before a colon, and a key spelt with an escape, are the same key.
        (HEAD + '"purpose" : "a", "purpose"\t: "b"}', "purpose"),
        (HEAD + '"purpose": "a", "\\u0070urpose": "b"}', "purpose"),
        (HEAD + '"purpose": "a", "list": [{"x": 1, "x": 2}]}', "x"),
        # A quote and a colon inside a string are no key.
        (HEAD + '"purpose": "say \\": so", "note": "\\":\\":"}', None),
        (HEAD + '"purpose": "a", "set": {"title": "A", "pages": 3}}', None),
        (HEAD + '"purpose" : "a"}', None),
    ],
)
def test_a_repeated_field_makes_a_line_malformed(text: str, repeated: str | None) -> None:
    line = parse(1, text.encode(), ARCHIVIST)
    if repeated is None:
        assert line.problem is None or "given twice" not in line.problem, line.problem
    else:
        assert line.problem == f"field {repeated!r} is given twice"
        assert line.key is None  # takes up no id


def test_a_repeated_field_is_reported_and_nothing_is_posted(db_url: str) -> None:
    setup_office(db_url)
    before = event_count(db_url)
    receipt = jsonl(
        [
            {"command": "receive", "id": "r1", "title": "合同",
             "department": "财务处", "year": 2020, "carrier": "paper", "pages": 5,
             "secrecy": "public", "transferred_by": LIAISON},
        ]
    )  # fmt: skip
    twice = receipt.replace('"pages": 5', '"pages": 5, "pages": 50')
    done = run(db_url, "post", "-", actor=ARCHIVIST, input=twice)
    assert done.code == 2, done
    assert done.stderr == "line 1: error: field 'pages' is given twice\n"
    assert done.stdout.startswith("posted 0, skipped 0, refused 0, invalid 1 (0 events)")
    assert event_count(db_url) == before
