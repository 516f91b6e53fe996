"""`ledger init --director` registers the first director while the ledger has no actor.

A refused attempt by someone not registered is kept as an event (R19), so a new store's
log may hold events before any actor. `init` used to refuse whenever the log held any
event: one refused `ledger --actor wang.zr seal` locked the office out for good. Two
first directors registered at once must still leave one: each save checks, under the
write lock, that no other actor is registered (ledger.recorders: ``sole``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from aggregates.errors import RuleViolation
from ledger.application import open_ledger
from tests.cli import (
    BACKENDS,
    event_count,
    fresh_store,
    last_event,
    one_line,
    refusal_count,
    release,
    run,
    start_at_barrier,
)

TAKEN = "refused (R19): the ledger already has actors; a director adds actors"


def refused_first(url: str) -> None:
    """A new store whose log holds one refused attempt, and no actor."""
    assert run(url, "init").code == 0
    refused = run(url, "seal", actor="wang.zr")
    assert refused.code == 3, refused
    assert refused.stderr.startswith("refused (R19): actor 'wang.zr' is not registered")
    assert (event_count(url), refusal_count(url)) == (1, 1)


def actor_ids(url: str) -> list[str]:
    listed = run(url, "actor", "list", "--json")
    assert listed.code == 0, listed
    return [a["id"] for a in listed.json()]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_refused_attempt_does_not_block_the_first_director(backend: str, tmp_path: Path) -> None:
    with fresh_store(backend, tmp_path) as url:
        refused_first(url)
        done = run(url, "init", "--director", "wang.zr", "--name", "王主任")
        assert done.code == 0, done
        assert done.stdout.endswith("; director wang.zr registered\n"), done
        assert actor_ids(url) == ["wang.zr"]
        sealed = run(url, "seal", actor="wang.zr")
        assert sealed.code == 0, sealed
        again = run(url, "init", "--director", "wang.zr", "--name", "王主任")  # safe twice
        assert (again.code, again.stdout) == (0, f"ledger ready at {url}\n"), again
        before = event_count(url)
        other = run(url, "init", "--director", "li.zr", "--name", "李主任")
        assert (other.code, one_line(other.stderr)) == (3, TAKEN), other
        # Refused under R19, and kept as R19's refusals are: someone tried to make
        # themself a director (it was refused and left no trace).
        assert (event_count(url), refusal_count(url)) == (before + 1, 2)
        topic, body = last_event(url)
        assert topic == "ledger/Refusal/AttemptRefused"
        assert (body["action"], body["rule"], body["actor"], body["reason"]) == (
            "init", "R19", "li.zr",
            TAKEN.removeprefix("refused (R19): ") + "; attempted: init --director li.zr "
            "--name '李主任'",
        )  # fmt: skip
        # The director again under another name: init changes no actor, and says so.
        renamed = run(url, "init", "--director", "wang.zr", "--name", "王")
        assert (renamed.code, one_line(renamed.stderr)) == (
            2, "error: actor wang.zr is registered already, named '王主任'; init changes no actor"
        ), renamed  # fmt: skip
        assert (event_count(url), actor_ids(url)) == (before + 1, ["wang.zr"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_of_two_first_directors_checked_at_once_the_later_save_fails(
    backend: str, tmp_path: Path
) -> None:
    """Both are checked before either is saved (deterministic): the second save sees
    the first director under the write lock, and the command run again is refused."""
    with fresh_store(backend, tmp_path) as url:
        refused_first(url)
        mine, theirs = open_ledger(url), open_ledger(url)
        try:
            first = mine.first_director("wang.zr", "王主任")
            second = theirs.first_director("li.zr", "李主任")
            assert first is not None and second is not None
            mine.save_first_director(first)
            with pytest.raises(IntegrityError):
                theirs.save_first_director(second)
            with pytest.raises(RuleViolation) as refused:
                theirs.initialise("li.zr", "李主任")
            assert refused.value.rule == "R19"
            assert theirs.initialise("wang.zr", "王主任") is None  # registered: safe twice
        finally:
            mine.close()
            theirs.close()
        assert actor_ids(url) == ["wang.zr"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_init_processes_at_once_register_one_director(backend: str, tmp_path: Path) -> None:
    with fresh_store(backend, tmp_path) as url:
        refused_first(url)
        go = tmp_path / "go"
        names = {"wang.zr": "王主任", "li.zr": "李主任"}
        held = [
            start_at_barrier(url, go, "init", "--director", who, "--name", name)
            for who, name in names.items()
        ]
        results = release(go, held)
        assert sorted(r.code for r in results) == [0, 3], [str(r) for r in results]
        loser = next(r for r in results if r.code == 3)
        assert one_line(loser.stderr) == TAKEN
        assert refusal_count(url) == 2  # the first store's, and the loser's (R19), once
        winner = [who for who, r in zip(names, results, strict=True) if r.code == 0]
        assert actor_ids(url) == winner
