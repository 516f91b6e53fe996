"""The topic column of a stored event is data, covered by no hash; the body records the
event's own topic, which its hash covers. Each section below is a way a rewritten column
got through, found with the tamper scenario (tests/tamper.py) on both backends."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import pytest

from aggregates.errors import IntegrityFailure
from ledger.application import Ledger
from ledger.config import store_from_url
from tests.cli import Result, one_line, run
from tests.tamper import CODE_A, RawStore, Scenario

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
