"""A bulk line's id is its idempotency key, kept with the digest of what the line asks
for: a line whose id another line took up is skipped only if it asks for the same thing
(a re-run, however its lines are written: spacing, field order, spaces around text, Z for
+00:00); if it asks for something else, it is invalid, on every run, in any chunk size,
with workers or not. (Before, it was skipped unseen: a line after one refused under R4
with its id was never posted.) Keys kept with version-1 digests match as they did."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from ledger.lines import raw_values_digest
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


UTC_RECEIPT = {**RECEIPT, "occurred_at": "2021-01-10T01:00:00+00:00"}
UTC_ARRANGE = {**ARRANGE, "occurred_at": "2021-01-10T02:00:00+00:00"}
UTC_SHELVE = {**SHELVE, "occurred_at": "2021-01-11T01:00:00+00:00"}


@pytest.mark.parametrize(
    ("chunk_size", "jobs"), [("1", "1"), ("5000", "1"), ("1", "2")], ids=["1x1", "5000x1", "1x2"]
)
def test_a_re_run_matches_what_its_lines_ask_for(
    db_url: str, tmp_path: Path, chunk_size: str, jobs: str
) -> None:
    """A re-run's line written otherwise (a time's Z for +00:00, spaces around text, the
    ideographic U+3000 too, a record id in capitals) asks for the same and is skipped
    (before, it was invalid, as taken); a line whose values differ once read (another
    text, the same moment at another offset, which the event would keep) is invalid. In
    one chunk or many, alone or with workers (1x2: 2 processes posted)."""
    setup_office(db_url)
    path = tmp_path / "lines.jsonl"
    path.write_text(jsonl([UTC_RECEIPT, UTC_ARRANGE, UTC_SHELVE, move("m", 2)]))
    options = ("--chunk-size", chunk_size, "--jobs", jobs, "--json")
    first = run(db_url, "post", str(path), *options, actor=ARCHIVIST)
    assert (first.code, first.stderr) == (0, ""), first
    assert first.json()["posted"] == 4, first
    events = event_count(db_url)

    rewritten = [
        {**UTC_RECEIPT, "record": RECORD.upper(), "title": " 会议纪要\u3000",
         "department": "\u3000办公室 ", "occurred_at": "2021-01-10T01:00:00Z"},
        {**UTC_ARRANGE, "record": f" {RECORD} ", "code": " C-1"},
        {**UTC_SHELVE, "location": " A1-01-1-1 ", "occurred_at": "2021-01-11 01:00Z"},
        {**move("m", 2), "record": "C-1\u3000"},
        {**UTC_SHELVE, "location": "A1-01-1-3"},  # 5: another value
        {**UTC_RECEIPT, "occurred_at": "2021-01-10T09:00:00+08:00"},  # 6: another offset
        {**UTC_RECEIPT, "title": "会议纪要 二"},  # 7: another text
    ]  # fmt: skip
    path.write_text(jsonl(rewritten))
    for _ in range(2):
        again = run(db_url, "post", str(path), *options, actor=ARCHIVIST)
        assert again.code == 2, again
        assert again.json() == {
            "posted": 0, "skipped": 4, "refused": 0, "invalid": 3, "events": 0,
            "jobs": int(jobs),
        }, again  # fmt: skip
        assert again.stderr == taken(5, "s") + taken(6, "r") + taken(7, "r"), again
    assert event_count(db_url) == events


def _keep_v1_keys(db_url: str, lines: list[dict[str, object]]) -> None:
    """Keys as posts before version-2 digests kept them: with the version-1 digest of
    each line's raw values (the lines' events are not needed for what is judged)."""
    rows = []
    for line in lines:
        values = {name: value for name, value in line.items() if name != "id"}
        rows.append((line["id"], "posted", raw_values_digest(values, None)))
    statement = "INSERT INTO ledger_posted (id, outcome, digest) VALUES ({0}, {0}, {0})"
    if db_url.startswith("sqlite:"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            conn.executemany(statement.format("?"), rows)
    else:
        with psycopg.connect(db_url) as conn, conn.cursor() as cursor:
            cursor.executemany(statement.format("%s"), rows)


@pytest.mark.parametrize(
    ("chunk_size", "jobs"), [("1", "1"), ("5000", "1"), ("1", "2")], ids=["1x1", "5000x1", "1x2"]
)
def test_a_key_kept_with_a_version_1_digest_matches_its_own_line(
    db_url: str, tmp_path: Path, chunk_size: str, jobs: str
) -> None:
    """A key posted before version 2 still has its own line skipped, and another line
    with its id invalid, whether the line would post now (then, in a chunk checked
    without a look-up, found by the key's primary key) or fail (a record not found:
    then the chunk's ids are looked up)."""
    setup_office(db_url)
    path = tmp_path / "lines.jsonl"
    path.write_text(jsonl([RECEIPT, ARRANGE, SHELVE]))
    assert run(db_url, "post", str(path), actor=ARCHIVIST).code == 0
    old = {**move("old", 2), "occurred_at": "2024-05-01T09:00:00Z"}
    gone = {**move("gone", 2), "record": "NO-SUCH", "occurred_at": "2024-05-01T09:00:00Z"}
    _keep_v1_keys(db_url, [old, gone])
    events = event_count(db_url)

    lines = [
        move("n", 3),  # 1: new, posted: later chunks are taken to be new
        gone,  # 2: fails, then found: skipped
        old,  # 3: would post, collides: skipped
        {**old, "location": "A1-01-1-5"},  # 4: another line: invalid
        {**gone, "occurred_at": "2024-05-01T09:00:01Z"},  # 5: invalid
    ]
    path.write_text(jsonl(lines))
    options = ("--chunk-size", chunk_size, "--jobs", jobs, "--json")
    for posted in (1, 0):  # (line 1, then on the re-run skipped with the others)
        done = run(db_url, "post", str(path), *options, actor=ARCHIVIST)
        assert done.code == 2, done
        assert done.json() == {
            "posted": posted, "skipped": 3 - posted, "refused": 0, "invalid": 2,
            "events": posted, "jobs": int(jobs),
        }, done  # fmt: skip
        assert done.stderr == taken(4, "old") + taken(5, "gone"), done
    assert event_count(db_url) == events + 1
    assert location(db_url) == "A1-01-1-3"
