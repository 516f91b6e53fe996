"""Concurrent writers on PostgreSQL: real processes released together at a barrier.

A lost race is retried and the rules checked again, so the loser is refused by the rule
the winner made true (R8, R3), or told to run again (exit 5); never a second write.
"""

from __future__ import annotations

from pathlib import Path

from tests.cli import (
    ARCHIVIST,
    LEADER,
    LIAISON,
    Result,
    bodies,
    event_count,
    generate,
    one_line,
    post,
    release,
    setup_office,
    start_at_barrier,
    stored_events,
    versions_by_originator,
)

SHELVED = "00000000-0000-4000-8000-00000000c001"
RECEIVED = ["00000000-0000-4000-8000-00000000c002", "00000000-0000-4000-8000-00000000c003"]
BORROWERS = [f"b{n}" for n in range(6)]
REFUSAL = "ledger/Refusal/AttemptRefused"


def prepare(url: str) -> None:
    """Six borrowers, one shelved record, two received records (one bulk post)."""
    setup_office(url)
    lines: list[dict[str, object]] = [
        {"command": "actor-add", "id": f"r-{b}", "actor": "dir", "actor_id": b,
         "name": b, "role": ["borrower"], "clearance": "internal"}
        for b in BORROWERS
    ]  # fmt: skip
    for record in [SHELVED, *RECEIVED]:
        lines.append(
            {"command": "receive", "id": f"r-{record}", "record": record, "title": "纪要",
             "department": "办公室", "year": 2020, "carrier": "paper", "pages": 3,
             "secrecy": "public", "transferred_by": LIAISON}
        )  # fmt: skip
    lines.append({"command": "arrange", "id": "r-a", "record": SHELVED, "code": "C-SH-1",
                  "category": "business", "retention": "30y"})  # fmt: skip
    lines.append({"command": "shelve", "id": "r-s", "record": "C-SH-1", "location": "A1-01-1-1"})
    done = post(url, lines, actor=ARCHIVIST)
    assert done.code == 0, done


def check_losers(results: list[Result], rule: str) -> list[Result]:
    """Exactly one winner; every loser refused by ``rule`` or told to retry (5)."""
    assert [r.code for r in results].count(0) == 1, [str(r) for r in results]
    losers = [r for r in results if r.code != 0]
    for loser in losers:
        assert loser.code in (3, 5), loser
        assert loser.stdout == "", loser
        prefix = f"refused ({rule}): " if loser.code == 3 else "error: "
        assert one_line(loser.stderr).startswith(prefix), loser
    return losers


def test_six_processes_lend_one_record_at_once(pg_url: str, tmp_path: Path) -> None:
    prepare(pg_url)
    before = event_count(pg_url)
    go = tmp_path / "go"
    processes = [
        start_at_barrier(pg_url, go, "lend", "C-SH-1", "--to", b, "--due", "2099-01-01",
                         "--purpose", "借阅", "--approved-by", LEADER, actor=ARCHIVIST)
        for b in BORROWERS
    ]  # fmt: skip
    results = release(go, processes)
    losers = check_losers(results, "R8")
    winner = BORROWERS[[r.code for r in results].index(0)]

    lent = bodies(pg_url, "ledger/Record/Lent")
    assert [(b["reader"], b["originator_version"]) for b in lent] == [(winner, 4)]
    refused = [r for r in losers if r.code == 3]
    refusals = bodies(pg_url, REFUSAL)
    assert [(b["rule"], b["action"]) for b in refusals] == [("R8", "lend")] * len(refused)
    assert event_count(pg_url) == before + 1 + len(refused)
    assert all(v == list(range(1, len(v) + 1)) for v in versions_by_originator(pg_url).values())


def test_two_processes_claim_one_archival_code_at_once(pg_url: str, tmp_path: Path) -> None:
    prepare(pg_url)
    before = event_count(pg_url)
    go = tmp_path / "go"
    processes = [
        start_at_barrier(pg_url, go, "arrange", record, "--category", "business",
                         "--retention", "10y", "--code", "C-SAME-1", actor=ARCHIVIST)
        for record in RECEIVED
    ]  # fmt: skip
    results = release(go, processes)
    check_losers(results, "R3")
    winner = RECEIVED[[r.code for r in results].index(0)]

    claims = bodies(pg_url, "ledger/CodeClaim/Claimed")
    assert [(c["record_id"], c["code"]) for c in claims] == [
        (SHELVED, "C-SH-1"),
        (winner, "C-SAME-1"),
    ]
    arranged = bodies(pg_url, "ledger/Record/Arranged")
    assert [(a["originator_id"], a["code"]) for a in arranged] == [
        (SHELVED, "C-SH-1"),
        (winner, "C-SAME-1"),
    ]
    assert event_count(pg_url) == before + 2  # an R3 refusal is not recorded


def test_three_processes_post_the_same_file_at_once(pg_url: str, tmp_path: Path) -> None:
    generated = generate(tmp_path / "lines.jsonl", 60)
    setup_office(pg_url)
    before = event_count(pg_url)
    go = tmp_path / "barrier" / "go"
    go.parent.mkdir()
    processes = [
        start_at_barrier(pg_url, go, "post", str(generated.path), "--chunk-size", "40")
        for _ in range(3)
    ]
    results = release(go, processes)
    totals = [0, 0, 0, 0]
    for result in results:
        assert result.code == 3, result
        words = result.stdout.replace(",", "").split()
        counts = [int(words[i]) for i in (1, 3, 5, 7)]  # posted, skipped, refused, invalid
        assert sum(counts) == generated.lines, result
        # Each run names every refused line: refused by it, or already by another.
        assert counts[2] == len(generated.refused), result
        named = [int(x.split(":")[0].removeprefix("line ")) for x in result.stderr.splitlines()]
        assert named == generated.refused, result
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
    posted, _, _, invalid = totals
    assert (posted, invalid) == (generated.posted, 0)

    assert event_count(pg_url) == before + generated.events
    versions = versions_by_originator(pg_url)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    records = {str(o): v for o, v in versions.items() if str(o) in set(generated.records)}
    assert len(records) == len(generated.records)
    assert all(len(v) == 7 for v in records.values())  # seven lifecycle lines each
    topics = [t for _, _, t in stored_events(pg_url)]
    assert topics.count(REFUSAL) == len(generated.refused)
