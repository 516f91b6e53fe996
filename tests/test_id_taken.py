"""A bulk line's id is its idempotency key, kept with the digest of what the line asks
for: a line whose id another line took up is skipped only if it asks for the same thing
(a re-run, however the file is spaced or its fields ordered); if it asks for something
else, it is invalid, on every run, in any chunk size, with workers or not. (Before, it
was skipped unseen: a line after one refused under R4 with its id was never posted.)"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.cli import ARCHIVIST, BORROWER, LIAISON, event_count, jsonl, run, setup_office

RECORD = "00000000-0000-4000-8000-00000000c001"
RECEIPT = {
    "command": "receive", "id": "r", "record": RECORD, "title": "会议纪要", "department": "办公室",
    "year": 2020, "carrier": "paper", "pages": 4, "secrecy": "public",
    "transferred_by": LIAISON, "occurred_at": "2021-01-10T09:00:00+08:00",
}  # fmt: skip
ARRANGE = {"command": "arrange", "id": "a", "record": RECORD, "category": "business",
           "retention": "10y", "code": "C-1"}  # fmt: skip
SHELVE = {"command": "shelve", "id": "s", "record": "C-1", "location": "A1-01-1-1"}


def move(key: str, shelf: int) -> dict[str, object]:
    return {"command": "relocate", "id": key, "record": "C-1", "location": f"A1-01-1-{shelf}"}


def taken(line: int, key: str) -> str:
    return (
        f"line {line}: error: id {key!r} is taken by another line, which asks for something "
        "else; give each line an id of its own\n"
    )


def summary(posted: int, skipped: int, refused: int, invalid: int, events: int) -> str:
    return (
        f"posted {posted}, skipped {skipped}, refused {refused}, invalid {invalid} "
        f"({events} event{'' if events == 1 else 's'})\n"
    )


def location(db_url: str) -> str:
    state = run(db_url, "show", "C-1", "--json").json()
    return str(state["location"])


@pytest.mark.parametrize(
    ("chunk_size", "jobs"), [("1", "1"), ("5000", "1"), ("1", "2")], ids=["1x1", "5000x1", "1x2"]
)
def test_an_id_taken_for_something_else_is_invalid_on_every_run(
    db_url: str, tmp_path: Path, chunk_size: str, jobs: str
) -> None:
    """In one chunk or across chunks (then found through the key's primary key, the file
    being taken as new), alone or with workers: the same outcome and messages."""
    setup_office(db_url)
    path = tmp_path / "lines.jsonl"
    lines = [
        RECEIPT,  # 1
        ARRANGE,  # 2
        SHELVE,  # 3: posted
        move("m1", 2),  # 4: posted
        SHELVE,  # 5: line 3 again: skipped
        {**move("s", 3)},  # 6: id of line 3, another command: invalid
        move("m2", 4),  # 7: posted
        {**SHELVE, "location": "A1-01-1-5"},  # 8: id of line 3, other text: invalid
    ]
    path.write_text(jsonl(lines))
    before = event_count(db_url)
    options = ("--chunk-size", chunk_size, "--jobs", jobs)
    first = run(db_url, "post", str(path), *options, actor=ARCHIVIST)
    assert first.code == 2, first
    assert first.stdout == summary(5, 1, 0, 2, 6), first  # (the code claim: one more event)
    assert first.stderr == taken(6, "s") + taken(8, "s"), first
    assert event_count(db_url) == before + 6
    assert location(db_url) == "A1-01-1-4"

    again = run(db_url, "post", str(path), *options, actor=ARCHIVIST)
    assert again.code == 2, again
    assert again.stdout == summary(0, 6, 0, 2, 0), again
    assert again.stderr == first.stderr, again
    assert event_count(db_url) == before + 6


def test_a_line_after_one_failed_with_its_id_is_reported(db_url: str, tmp_path: Path) -> None:
    """A line refused under a rule whose refusals are not kept (R4: shelving a record
    not arranged, or shelved already) leaves no key; a later line with its id, asking for
    something else, was skipped on every run and never posted. It is invalid now; the
    same line again is still skipped."""
    setup_office(db_url)
    path = tmp_path / "lines.jsonl"
    early = {**SHELVE, "id": "x", "record": RECORD}  # 2: not arranged: refused (R4), no key
    path.write_text(jsonl([RECEIPT, early, ARRANGE, early, {**move("x", 2)}, SHELVE]))
    for posted in (3, 0):  # (the receipt, the arrangement and its claim, the shelving)
        done = run(db_url, "post", str(path), "--chunk-size", "1", "--jobs", "1", actor=ARCHIVIST)
        assert done.code == 2, done
        assert done.stdout == summary(posted, 3 - posted + 1, 1, 1, posted + 1 if posted else 0)
        refusal, *rest = done.stderr.splitlines(keepends=True)
        assert refusal.startswith("line 2: refused (R4): "), done
        assert rest == [taken(5, "x")], done
    assert location(db_url) == "A1-01-1-1"


def test_a_re_run_matches_its_lines_however_they_are_written(db_url: str, tmp_path: Path) -> None:
    """Spacing, field order, a field given null and the run's --actor do not make another
    line (a re-run by someone else skips what was posted); an actor the line names does."""
    setup_office(db_url)
    path = tmp_path / "lines.jsonl"
    path.write_text(jsonl([RECEIPT, ARRANGE, SHELVE]))
    assert run(db_url, "post", str(path), actor=ARCHIVIST).code == 0
    events = event_count(db_url)

    rewritten = tmp_path / "rewritten.jsonl"
    spaced = [  # (a field given null is one left out)
        json.dumps(dict(reversed(line.items())), separators=(" ,  ", " :  "), ensure_ascii=True)
        for line in (RECEIPT, {**ARRANGE, "occurred_at": None}, {**SHELVE, "occurred_at": None})
    ]
    rewritten.write_text("".join(text + "\n" for text in spaced))
    for actor in (ARCHIVIST, BORROWER, None):
        same = run(db_url, "post", str(rewritten), actor=actor)
        assert (same.code, same.stdout, same.stderr) == (0, summary(0, 3, 0, 0, 0), ""), same

    named = tmp_path / "named.jsonl"
    named.write_text(jsonl([{**line, "actor": ARCHIVIST} for line in (RECEIPT, SHELVE)]))
    other = run(db_url, "post", str(named))
    assert other.code == 2, other
    assert other.stdout == summary(0, 0, 0, 2, 0), other
    assert other.stderr == taken(1, "r") + taken(2, "s"), other
    assert event_count(db_url) == events


@pytest.mark.parametrize("again", ["the first line", "the failed line"])
@pytest.mark.parametrize(
    ("chunk_size", "jobs"), [("1", "1"), ("2", "1"), ("8", "1"), ("2", "2")], ids=str
)
def test_a_failed_line_with_a_stored_id_is_judged_by_the_stored_line(
    db_url: str, tmp_path: Path, again: str, chunk_size: str, jobs: str
) -> None:
    """A line that fails (a record not found) with the id of a line posted before is
    invalid, as taken; a later line with the id is judged by the posted line, not by the
    failed one: skipped if it is the posted line again, invalid if it is the failed line
    again. Before, in a chunk checked without a look-up, the later line was judged by the
    failed line (found by an exploratory round: the outcome hung on the chunk size)."""
    setup_office(db_url)
    failing = {**move("x", 3), "record": "NO-SUCH"}
    later = move("x", 2) if again == "the first line" else failing
    fillers = [move(f"f{n}", n) for n in range(4, 10)]
    lines = [RECEIPT, ARRANGE, SHELVE, move("x", 2), *fillers, failing, later, move("g", 12)]
    path = tmp_path / "lines.jsonl"
    path.write_text(jsonl(lines))
    if again == "the first line":
        expected = (summary(11, 1, 0, 1, 12), taken(11, "x"))
    else:
        expected = (summary(11, 0, 0, 2, 12), taken(11, "x") + taken(12, "x"))
    done = run(
        db_url, "post", str(path), "--chunk-size", chunk_size, "--jobs", jobs, actor=ARCHIVIST
    )
    assert (done.code, done.stdout, done.stderr) == (2, *expected), done


def _drop_digest_column(db_url: str) -> None:
    """A store as made before digests were kept: no digest column (SQLite cannot drop a
    column under the append-only triggers' watch by UPDATE, but ALTER is no UPDATE)."""
    statement = "ALTER TABLE ledger_posted DROP COLUMN digest"
    if db_url.startswith("sqlite:"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            conn.execute(statement)
    else:
        with psycopg.connect(db_url) as conn:
            conn.execute(statement)


def test_a_store_made_before_digests_is_upgraded_by_init(db_url: str, tmp_path: Path) -> None:
    """Posting into it is refused with what to do (exit 4, nothing written); `ledger
    init` adds the column, and the keys kept without a digest match any line."""
    setup_office(db_url)
    path = tmp_path / "lines.jsonl"
    path.write_text(jsonl([RECEIPT, ARRANGE]))
    assert run(db_url, "post", str(path), actor=ARCHIVIST).code == 0
    _drop_digest_column(db_url)
    events = event_count(db_url)

    path.write_text(jsonl([RECEIPT, ARRANGE, SHELVE]))
    for options in (["--jobs", "1"], ["--jobs", "2", "--chunk-size", "1"]):  # (workers too)
        refused = run(db_url, "post", str(path), *options, actor=ARCHIVIST)
        assert refused.code == 4, refused
        assert refused.stdout == ""
        assert refused.stderr == (
            "error: this store was made before posted lines kept their content's digest; "
            "run `ledger init` once to upgrade it\n"
        ), refused
        assert event_count(db_url) == events

    assert run(db_url, "init").code == 0
    changed = {**RECEIPT, "title": "另一个标题"}  # kept without a digest: matches
    path.write_text(jsonl([changed, ARRANGE, SHELVE]))
    done = run(db_url, "post", str(path), actor=ARCHIVIST)
    assert (done.code, done.stdout, done.stderr) == (0, summary(1, 2, 0, 0, 1), ""), done
