"""Bulk posting checks each chunk while the chunk before it commits (ledger.bulk).

A chunk is checked on top of the aggregates the committing chunk changed and with its
line ids taken, so posting a file in many chunks gives what one chunk gives; a run
that fails while a chunk commits still counts and reports that chunk, so a re-run, which
skips it, loses no report; and a chunk that collides with another writer is posted again
carefully, with the chunk checked on top of it checked again.
"""

from __future__ import annotations

import json
import uuid
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from ledger.application import open_ledger
from ledger.bulk import BulkPoster, Problem, _ChunkRun
from tests.cli import (
    BACKENDS,
    fingerprint,
    fresh_store,
    generate,
    jsonl,
    post,
    posted_times,
    refusal_count,
    run,
    setup_office,
)
from tests.test_bulk_parallel import across_windows, tricky_lines


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_chunks_give_the_outcome_of_one_chunk(backend: str, tmp_path: Path) -> None:
    """Chunks of 3 lines: records, archival codes, repeated and malformed line ids and an
    actor change all straddle chunks, each checked while the chunk before commits."""
    generated = generate(tmp_path / "gen.jsonl", 12)
    text = generated.path.read_text() + jsonl(tricky_lines(generated.path))
    receipt = next(json.loads(t) for t in text.splitlines() if '"receive"' in t)
    text += jsonl(across_windows(len(text.splitlines()), receipt))
    text += jsonl(straddling(len(text.splitlines()), receipt))
    path = tmp_path / "file.jsonl"
    path.write_text(text)
    outcomes = []
    for chunk in ("3", "100000"):
        (tmp_path / chunk).mkdir()
        with fresh_store(backend, tmp_path / chunk) as url:
            setup_office(url)
            done = run(url, "post", str(path), "--jobs", "1", "--chunk-size", chunk, "--json")
            outcomes.append((done.code, json.loads(done.stdout), done.stderr, fingerprint(url)))
    many, one = outcomes
    assert one[0] == 2 and "refused (R6)" in one[2] and "refused (R3)" in one[2], one
    assert "refused (R4)" in one[2] and "is already at S1-01-1-1" not in one[2], one
    assert many == one


def straddling(lines_before: int, receipt: dict[str, Any]) -> list[dict[str, Any]]:
    """A line refused under a rule whose refusals are not kept (R4) ends a chunk of 3; a
    good line with its id begins the next, checked while the first commits: skipped, as
    in one chunk (the id is taken, though the store has no key for it)."""
    record = str(uuid.uuid4())
    by = {"actor": "g.arch"}
    fill = (2 - (lines_before + 1) % 3) % 3  # the refused line is the last of its chunk
    moves = [
        {
            "command": "relocate",
            "id": f"s-fill-{n}",
            "record": record,
            "location": "S9-01-1-1",
            **by,
        }
        for n in range(fill)
    ]  # refused (R4) too: the record is not shelved
    refused = {"command": "shelve", "id": "s-1", "record": record, "location": "S1-01-1-1", **by}
    return [
        {**receipt, "id": "s-0", "record": record},
        *moves,
        refused,
        {**refused, "command": "relocate"},  # s-1 again: skipped, else "already at S1..."
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_failing_while_a_chunk_commits_keeps_and_reports_that_chunk(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = generate(tmp_path / "gen.jsonl", 30)
    size = generated.refused[0] + 3  # the first chunk holds a refused line
    first = [n for n in generated.refused if n <= size]
    checks = count()
    check = _ChunkRun.check

    def fail_on_the_second_chunk(self: _ChunkRun) -> bool:
        if next(checks) == 1:  # checked while the first chunk commits
            raise RuntimeError("the machine stops here")
        return check(self)

    with fresh_store(backend, tmp_path) as url:
        setup_office(url)
        reported: list[Problem] = []
        monkeypatch.setattr(_ChunkRun, "check", fail_on_the_second_chunk)
        poster = BulkPoster(open_ledger(url), None, chunk_size=size, on_problem=reported.append)
        with pytest.raises(RuntimeError, match="the machine stops here"):
            poster.post(generated.path.read_bytes().splitlines(keepends=True))
        monkeypatch.undo()
        assert [p.line for p in reported] == first
        assert poster.summary.posted + poster.summary.refused == size
        assert not poster.summary.problems  # reported, not kept as well

        # The re-run skips the first chunk's posted lines, names its refused ones as
        # refused already, and posts the rest.
        rest = run(url, "post", str(generated.path), "--jobs", "1")
        assert rest.code == 3, rest
        assert f"skipped {size - len(first)}," in rest.stdout, rest
        again = dict(line.split(": ", 1) for line in rest.stderr.splitlines())
        assert [int(n.removeprefix("line ")) for n in again] == generated.refused, rest
        before = [n for n, message in again.items() if message.startswith("refused (R6) already")]
        assert before == [f"line {n}" for n in first], rest


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_collision_has_the_chunk_posted_again_and_the_next_checked_again(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer posts the first chunk's receipt between its check and its insert.
    The insert collides: on SQLite in the posting thread, on PostgreSQL on the commit
    thread, after the second chunk was checked on top of the first. The first chunk is
    posted again carefully (the receipt skipped), the second checked again, and the store
    holds what posting the file in order after that receipt gives, its chains intact."""
    generated = generate(tmp_path / "gen.jsonl", 6)
    lines = generated.path.read_bytes().splitlines(keepends=True)
    actors = [line for line in lines if b'"actor-add"' in line]
    rest = [line for line in lines if b'"actor-add"' not in line]
    assert b'"receive"' in rest[0]
    (tmp_path / "in-order").mkdir()
    with fresh_store(backend, tmp_path / "in-order") as url:
        setup_office(url)
        BulkPoster(open_ledger(url), None).post(actors)
        summary = BulkPoster(open_ledger(url), None, chunk_size=4).post(rest)
        in_order = (summary.posted, summary.refused, fingerprint(url))

    (tmp_path / "collided").mkdir()
    with fresh_store(backend, tmp_path / "collided") as url:
        setup_office(url)
        BulkPoster(open_ledger(url), None).post(actors)
        poster = BulkPoster(open_ledger(url), None, chunk_size=4)  # splits a lifecycle
        recorder: Any = poster.ledger.recorder
        insert, inserts = recorder.insert_uncommitted, count()

        def receipt_first(rows: Any, posted: Any, relied: Any) -> Any:
            if next(inserts) == 0:
                BulkPoster(open_ledger(url), None).post(rest[:1])
            return insert(rows, posted, relied)

        settles: list[bool] = []
        settle = BulkPoster.settle

        def settle_noted(self: BulkPoster) -> bool:
            settles.append(settle(self))
            return settles[-1]

        monkeypatch.setattr(recorder, "insert_uncommitted", receipt_first)
        monkeypatch.setattr(BulkPoster, "settle", settle_noted)
        summary = poster.post(rest)
        monkeypatch.undo()
        assert summary.skipped == 1, summary  # the receipt, posted by the other writer
        if backend == "postgres":  # found on the commit thread
            assert False in settles, settles
        verified = run(url, "verify")
        assert verified.code == 0, verified
        assert (summary.posted + 1, summary.refused, fingerprint(url)) == in_order


@pytest.mark.parametrize("backend", BACKENDS)
def test_lines_posted_before_behind_new_ones_give_the_outcome_of_looking_each_chunk_up(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk whose line ids the store has none of turns the look-up off for the chunks
    after it (BulkPoster.look_up). A file posted before, behind new lines, is then found
    by its posted-line keys: a chunk that writes one collides and is posted again
    carefully; a chunk that only fails is found after its commit (_posted_meanwhile).
    Summary, problems and store are those of looking every chunk up."""
    generated = generate(tmp_path / "gen.jsonl", 12)
    old = generated.path.read_bytes().splitlines(keepends=True)
    receipt = next(json.loads(line) for line in old if b'"receive"' in line)
    new = [
        json.dumps({**receipt, "id": f"new-{n}", "record": str(uuid.uuid4())}).encode() + b"\n"
        for n in range(3)
    ]
    runs: list[_ChunkRun] = []
    check = _ChunkRun.check

    def noted(self: _ChunkRun) -> bool:
        runs.append(self)
        return check(self)

    outcomes = []
    for always in (False, True):
        runs.clear()
        (tmp_path / str(always)).mkdir()
        with fresh_store(backend, tmp_path / str(always)) as url:
            setup_office(url)
            BulkPoster(open_ledger(url), None).post(old)
            if always:  # every chunk looked up, as before the look-up could be turned off
                stays_on = property(lambda self: True, lambda self, value: None)
                monkeypatch.setattr(BulkPoster, "look_up", stays_on, raising=False)
            monkeypatch.setattr(_ChunkRun, "check", noted)
            summary = BulkPoster(open_ledger(url), None, chunk_size=3).post(new + old)
            monkeypatch.undo()
            unlooked = [r for r in runs if not r.look_up]
            careful = [r for r in runs if r.batch.careful]
            assert run(url, "verify").code == 0
            problems = sorted((p.line, p.outcome, p.message) for p in summary.problems)
            counts = (summary.posted, summary.skipped, summary.refused, summary.invalid)
            outcomes.append((counts, summary.events, problems, fingerprint(url)))
            if always:
                assert not unlooked and not careful, (unlooked, careful)
            else:  # chunks went unlooked, and the lines posted before collided
                assert unlooked and careful, (unlooked, careful)
    optimistic, looked_up = outcomes
    assert optimistic[0][0] == 3 and optimistic[0][1] > 0, optimistic[0]
    assert optimistic == looked_up


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_lines_report_does_not_depend_on_where_chunks_end(backend: str, tmp_path: Path) -> None:
    """Found by tests/test_posting_property.py: what a chunk held decided a line's report.
    A chunk knows whether a code is claimed, or a record id taken, only if it made or read
    the claim or the record (otherwise the store's key answers at the commit), so those
    checks come after every other: a record already arranged, arranged again with a code
    another record holds, is refused on its own state (R3); a record arranged at a time
    before its receipt, with a claimed code, on the time (R14); a receipt of a record
    already received, naming an unknown liaison, on the liaison. A malformed line whose
    id a posted line has is reported as malformed, not skipped, whether that line was in
    its chunk or an earlier one."""
    first, second, third = (str(uuid.UUID(int=n)) for n in (1, 2, 3))
    by = {"actor": "arch"}
    receipt = {
        "command": "receive",
        "title": "会议纪要",
        "department": "办公室",
        "year": 2014,
        "carrier": "paper",
        "pages": 10,
        "secrecy": "public",
        "transferred_by": "liaison",
    }
    lines = [
        {"id": "a-1", **receipt, "record": first, **by},
        {"id": "a-2", **receipt, "record": second, **by},
        {"id": "a-3", "command": "arrange", "record": first, "code": "P-1",
         "category": "business", "retention": "10y", **by},
        {"id": "a-4", "command": "arrange", "record": second, "code": "P-2",
         "category": "business", "retention": "10y", **by},
        {"id": "a-5", "command": "arrange", "record": second, "code": "P-1",
         "category": "business", "retention": "10y", **by},
        {"id": "same", "command": "shelve", "record": first, "location": "A1-01-1-1", **by},
        {"id": "same", "command": "shelve", "record": second, **by},  # no location
        {"id": "a-8", **receipt, "record": first, "transferred_by": "nobody", **by},
        {"id": "a-9", **receipt, "record": third, "occurred_at": "2026-01-01T00:00:00+00:00",
         **by},
        {"id": "a-10", "command": "arrange", "record": third, "code": "P-1",
         "category": "business", "retention": "10y",
         "occurred_at": "2025-12-31T00:00:00+00:00", **by},
    ]  # fmt: skip
    path = tmp_path / "file.jsonl"
    path.write_text(jsonl(lines))
    reports = []
    for chunk in ("1", "2", "100"):
        (tmp_path / chunk).mkdir()
        with fresh_store(backend, tmp_path / chunk) as url:
            setup_office(url)
            done = run(url, "post", str(path), "--jobs", "1", "--chunk-size", chunk)
            reports.append((done.code, done.stderr.splitlines()))
    assert reports[0] == (2, [
        "line 5: refused (R3): record P-2 is already arranged (code P-2); "
        "use correct to answer a mistake",
        "line 7: error: location: Field required",
        "line 8: error: actor 'nobody' is not registered",
        "line 10: refused (R14): occurred-at 2025-12-31T00:00:00+00:00 is before the "
        "previous event (2026-01-01T00:00:00+00:00)",
    ]), reports[0]  # fmt: skip
    assert reports[1] == reports[2] == reports[0]


def test_a_refusal_that_records_nothing_leaves_its_line_to_be_tried_again(db_url: str) -> None:
    """Found by tests/test_posting_property.py: deactivating an actor twice is refused
    under R19 but records no refused attempt (not an attempt by an unauthorised actor);
    its line took up its key all the same, so the store said "refused" for an attempt it
    did not keep. Now only a recorded refusal takes up the key: a re-run tries the line
    again. A refused attempt that is recorded (an unregistered actor's, R19) keeps both,
    and is named as refused already by the re-run, not tried again."""
    lines = [
        {"id": "off-1", "command": "actor-deactivate", "actor_id": "ext", "reason": "离职"},
        {"id": "off-2", "command": "actor-deactivate", "actor_id": "ext", "reason": "离职"},
        {"id": "off-3", "command": "actor-deactivate", "actor_id": "ext", "reason": "离职",
         "actor": "ghost"},
    ]  # fmt: skip
    setup_office(db_url)
    before = refusal_count(db_url)
    first = post(db_url, lines, "--json", actor="dir")
    again = post(db_url, lines, "--json", actor="dir")
    keys = set(posted_times(db_url))
    assert first.code == 3 and first.stderr.splitlines() == [
        "line 2: refused (R19): actor ext is already deactivated",
        "line 3: refused (R19): actor 'ghost' is not registered and may not act; "
        "attempted: actor-deactivate ext reason='离职'",
    ], first
    counts = json.loads(again.stdout)
    assert (counts["skipped"], counts["refused"]) == (1, 2), again
    assert again.stderr.splitlines() == [
        "line 2: refused (R19): actor ext is already deactivated",
        "line 3: refused (R19) already: its id was taken by a refused attempt "
        "(see ledger audit --refused)",
    ]
    assert {"off-1", "off-3"} <= keys and "off-2" not in keys
    assert refusal_count(db_url) == before + 1  # off-3's, once


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_names_the_lines_another_run_of_the_file_refused_meanwhile(
    backend: str, tmp_path: Path
) -> None:
    """Two runs of one file at once: the lines the other run refused after this one
    started were counted as skipped (a run could exit 0 with lines of its file refused).
    Each run names every refused line of the file: refused here, or refused already."""
    generated = generate(tmp_path / "gen.jsonl", 30)
    lines = generated.path.read_bytes().splitlines(keepends=True)
    with fresh_store(backend, tmp_path) as url:
        setup_office(url)
        later = BulkPoster(open_ledger(url), None, chunk_size=7)  # started, nothing posted
        first = BulkPoster(open_ledger(url), None, chunk_size=7).post(lines)
        assert [p.line for p in first.problems] == generated.refused
        second = later.post(lines)
        assert [p.line for p in second.problems] == generated.refused
        assert all(p.message.startswith("refused (R6) already: ") for p in second.problems)
        assert (second.posted, second.refused) == (0, len(generated.refused))
