"""The topic column of a stored event is data, covered by no hash; the body records the
event's own topic, which its hash covers. Each section below is a way a rewritten column
got through, found with the tamper scenario (tests/tamper.py) on both backends."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import pytest

from aggregates.chain import canonical, envelope
from aggregates.errors import IntegrityFailure
from ledger.application import Ledger
from ledger.config import store_from_url
from tests.cli import Result, one_line, run
from tests.tamper import CODE_A, CODE_B, RawStore, Scenario

TAIL = (
    "its bytes were changed, or it was written with another key; "
    "`ledger verify` names every such event"
)


def unreadable(reason: str) -> str:
    return f"error: a stored event could not be read ({reason}): {TAIL}"


def set_topic(raw: RawStore, originator: UUID, version: int, topic: str) -> int:
    position = raw.row(originator, version)[0]
    raw.tamper(f"UPDATE {raw.table} SET topic = ? WHERE {raw.position} = ?", (topic, position))
    return position


def refused(done: Result, line: str) -> None:
    assert "Traceback" not in done.stdout + done.stderr, done
    assert (done.code, done.stdout) == (6, ""), done
    assert one_line(done.stderr) == line, done


def verify_lines(url: str) -> list[str]:
    done = run(url, "verify")
    assert "Traceback" not in done.stdout + done.stderr, done
    assert done.code == 6, done
    return done.stdout.split("\nchecked ")[0].splitlines()


# -- reading: no stored topic is resolved unless it is the ledger's own ------------------
# `show` and `custody` resolved the column as an import path: 'this' imported (and ran) that
# module, printing "The Zen of Python", then exited 1 with an unexpected AttributeError;
# 'aggregates.record_events:Received' resolved to the receipt's class and the rewritten row
# was read as intact (exit 0). A body's originator_topic was resolved the same way.

# (topic column, the reason the line gives)
IMPORTABLE = [
    ("this", "unknown topic 'this'"),
    ("aggregates.record_events:Received", "unknown topic 'aggregates.record_events:Received'"),
    (
        "ledger/Seal/Started",
        "stored as ledger/Seal/Started, but its body is ledger/Record/Received",
    ),
]


@pytest.mark.parametrize(("topic", "reason"), IMPORTABLE, ids=["module", "class path", "known"])
def test_show_and_custody_never_resolve_a_stored_topic(
    golden: tuple[Scenario, Callable[[], str]], topic: str, reason: str
) -> None:
    """Record C's receipt stored under ``topic``: exit 6, one line, nothing imported or
    printed (with 'this', "The Zen of Python" went to stdout and `show` exited 1; with a
    class path `show` exited 0 on the rewritten row)."""
    scenario, make = golden
    url = make()
    set_topic(RawStore(url), scenario.c, 1, topic)
    for command in ("show", "custody"):
        refused(run(url, command, str(scenario.c)), unreadable(reason))
    # The repository's many-at-once read (lists of actors, bulk posting) goes the same way.
    ledger = Ledger(store_from_url(url))
    try:
        with pytest.raises(IntegrityFailure) as caught:
            ledger.repository.get_many([scenario.c])
        assert f"error: {caught.value}" == unreadable(reason)
    finally:
        ledger.close()


def test_a_body_naming_a_module_as_its_aggregate_is_never_resolved(
    golden: tuple[Scenario, Callable[[], str]],
) -> None:
    """A receipt's body rewritten (with a right hash) to be created by the aggregate
    'this': `show` imported the module (stdout) and exited 1 with an unexpected error."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    raw.rewrite(scenario.c, 1, originator_topic="this")
    for command in ("show", "custody"):
        done = run(url, command, str(scenario.c))
        assert "Traceback" not in done.stdout + done.stderr, done
        assert (done.code, done.stdout) == (6, ""), done
        assert one_line(done.stderr).startswith("error: a stored event could not be read ("), done


# -- seal: verify's checks of a row over the rows it is about to seal --------------------
# Its digest covers recorded hashes, not the topic column nor the bodies: a row after the
# last seal stored under another of the ledger's topics, or whose body no longer matched
# its hash, was sealed (exit 0).


def seal_refused(url: str, raw: RawStore, position: int, problem: str) -> None:
    rows = raw.snapshot()
    refused(
        run(url, "seal", actor="audit"),
        f"error: the event at position {position} is not as the ledger wrote it ({problem}); "
        "run `ledger verify`; nothing was sealed",
    )
    assert raw.snapshot() == rows


@pytest.mark.parametrize("topic", ["ledger/Seal/Started", "ledger/Record/Relocated"])
def test_seal_refuses_a_row_stored_under_another_known_topic(
    golden: tuple[Scenario, Callable[[], str]], topic: str
) -> None:
    """Record C's receipt (after seal 1) stored under another topic the ledger writes:
    `seal` sealed the log with it (exit 0)."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    position = set_topic(raw, scenario.c, 1, topic)
    seal_refused(
        url,
        raw,
        position,
        f"record {scenario.c} version 1: stored as {topic}, but its body is "
        "ledger/Record/Received (swapped or moved)",
    )


def test_seal_refuses_a_row_whose_body_no_longer_matches_its_hash(
    golden: tuple[Scenario, Callable[[], str]],
) -> None:
    """Record A's version 6 (after seal 1) with its body changed and its recorded hash
    kept: the seal's digest covers recorded hashes only, so it was sealed (exit 0)."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    position, _, state = raw.row(scenario.a, 6)
    body = {**raw.body(scenario.a, 6), "location": "Z9-99-9-9"}
    recorded = state[-66:-2].decode()
    raw.set_state(scenario.a, 6, envelope(canonical(body), recorded))
    seal_refused(
        url, raw, position, f"record {scenario.a} (code {CODE_A}) version 6: payload changed "
        "(hash mismatch)"
    )  # fmt: skip


def test_seal_of_an_intact_log_after_an_earlier_seal(
    golden: tuple[Scenario, Callable[[], str]],
) -> None:
    """The segment's links to events before it (record A's version 6 to its version 5,
    the seal chain's next seal to the one before) are looked up and pass: sealed twice."""
    _, make = golden
    url = make()
    for _ in range(2):
        done = run(url, "seal", actor="audit")
        assert done.code == 0, done
    assert run(url, "verify").code == 0


# -- seal: and over the segments earlier seals cover -------------------------------------
# A seal's digest covers recorded hashes: two events' topic columns swapped in a segment an
# earlier seal covers left the digest (and so the last seal) matching, and `seal` sealed the
# log with them (exit 0), while `verify` reported both rows. `seal` runs verify's checks.


def swap_topics(raw: RawStore, first: tuple[UUID, int], second: tuple[UUID, int]) -> int:
    """Swap two events' topic columns; the first one's position."""
    (at, was, _), (other, is_, _) = raw.row(*first), raw.row(*second)
    statement = f"UPDATE {raw.table} SET topic = ? WHERE {raw.position} = ?"
    raw.tamper_all([(statement, [(is_, at), (was, other)])])
    return at


# (the seal covering the swap, whether seal 2 is made first, the two events swapped)
SWAPS = [
    (1, False, ("a", 2), ("a", 3)),
    (1, True, ("a", 2), ("b", 1)),
    (2, True, ("a", 6), ("c", 1)),
]


@pytest.mark.parametrize(
    ("seal", "twice", "first", "second"),
    SWAPS,
    ids=["seal 1, the last", "seal 1, before seal 2", "seal 2, the last"],
)
def test_seal_refuses_a_topic_swap_in_a_sealed_segment(
    golden: tuple[Scenario, Callable[[], str]],
    seal: int,
    twice: bool,
    first: tuple[str, int],
    second: tuple[str, int],
) -> None:
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    if twice:
        assert run(url, "seal", actor="audit").code == 0
    one, two = (getattr(scenario, first[0]), first[1]), (getattr(scenario, second[0]), second[1])
    body, other = raw.body(*one)["topic"], raw.row(*two)[1]
    position = swap_topics(raw, one, two)
    subject = f"record {one[0]}" + (f" (code {CODE_A})" if one[0] == scenario.a else "")
    problem = (
        f"{subject} version {one[1]}: stored as {other}, but its body is {body} (swapped or moved)"
    )
    assert problem in verify_lines(url)
    rows = raw.snapshot()
    refused(
        run(url, "seal", actor="audit"),
        f"error: the event at position {position} is not as the ledger wrote it and seal {seal} "
        f"recorded it ({problem}); run `ledger verify`; nothing was sealed",
    )
    assert raw.snapshot() == rows


def test_seal_refuses_a_sealed_body_that_no_longer_matches_its_hash(
    golden: tuple[Scenario, Callable[[], str]],
) -> None:
    """Record B's version 3 (sealed by seal 1) with its body changed and its recorded hash
    kept: the digests still matched, and it was sealed again (exit 0)."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    position, _, state = raw.row(scenario.b, 3)
    body = {**raw.body(scenario.b, 3), "location": "Z9-99-9-9"}
    raw.set_state(scenario.b, 3, envelope(canonical(body), state[-66:-2].decode()))
    rows = raw.snapshot()
    refused(
        run(url, "seal", actor="audit"),
        f"error: the event at position {position} is not as the ledger wrote it and seal 1 "
        f"recorded it (record {scenario.b} (code {CODE_B}) version 3: payload changed (hash "
        "mismatch)); run `ledger verify`; nothing was sealed",
    )
    assert raw.snapshot() == rows


# -- rebuild and check: a swap between topics the projections read ----------------------


@pytest.mark.parametrize("topic", ["ledger/Record/Relocated", "ledger/Record/Consulted"])
def test_rebuild_and_check_refuse_a_row_whose_body_is_another_event(
    golden: tuple[Scenario, Callable[[], str]], topic: str
) -> None:
    """Record C's receipt stored under a topic the projections read: it was decoded as that
    event (the fields it lacks as None), the rebuilt catalog lost record C and the check
    passed (exit 0). The body's own topic is compared now (a field the decoder reads
    anyway); a swap to a topic no projection reads stays unread, see the README."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    assert run(url, "projections", "rebuild", "--jobs", "1").code == 0
    position = set_topic(raw, scenario.c, 1, topic)
    line = unreadable(
        f"position {position}: stored as {topic}, but its body is ledger/Record/Received"
    )
    rows = raw.snapshot()
    for command in ("rebuild", "check"):
        refused(run(url, "projections", command, "--jobs", "1"), line)
    assert raw.snapshot() == rows
    catalog = run(url, "catalog", "--no-catch-up", "--json")
    assert str(scenario.c) in {row["id"] for row in catalog.json()}, catalog


# -- verify names a chain by what its bodies say, not by a topic column -----------------


@pytest.mark.parametrize("where", ["after the last seal", "in a sealed segment"])
def test_verify_names_a_record_whose_receipt_is_stored_under_the_seal_chains_topic(
    golden: tuple[Scenario, Callable[[], str]], where: str
) -> None:
    """It said `seal chain <the record's id> version 1: ...` (named by the column)."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    record = scenario.c if where == "after the last seal" else scenario.a
    set_topic(raw, record, 1, "ledger/Seal/Started")
    subject = f"record {record}" + (f" (code {CODE_A})" if record == scenario.a else "")
    found = verify_lines(url)
    assert (
        f"{subject} version 1: stored as ledger/Seal/Started, but its body is "
        "ledger/Record/Received (swapped or moved)"
    ) in found, found
    assert not any(line.startswith("seal chain") for line in found), found


def test_verify_quotes_a_topic_the_ledger_never_writes(
    golden: tuple[Scenario, Callable[[], str]],
) -> None:
    """`stored as this, but ...` read as prose; the value is quoted as SQL writes it."""
    scenario, make = golden
    url = make()
    set_topic(RawStore(url), scenario.c, 1, "this")
    found = verify_lines(url)
    assert found == [
        f"record {scenario.c} version 1: stored as 'this', but its body is "
        "ledger/Record/Received (swapped or moved)"
    ], found
