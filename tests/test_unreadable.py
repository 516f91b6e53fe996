"""A stored event that cannot be read (its bytes or its topic changed behind the ledger's
back): every command that reads it exits 6 with one line, as the README promises, never
"unexpected ..." with exit 1; `ledger verify` names the event."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.cli import one_line, run
from tests.tamper import CODE_A, RawStore, Scenario

UNREADABLE = "error: a stored event could not be read ("


@pytest.mark.parametrize("change", ["not JSON", "a field of the wrong type", "unknown topic"])
def test_a_changed_event_is_exit_6_for_every_reader(
    golden: tuple[Scenario, Callable[[], str]], change: str
) -> None:
    """Found by exploratory testing: show and custody exited 1 with an unexpected
    JSONDecodeError or TopicError, a rebuild with an unexpected DecodeError."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    position, _, state = raw.row(scenario.a, 3)
    if change == "not JSON":
        raw.set_state(scenario.a, 3, state.replace(b'"body":{', b'"body":{{', 1))
    elif change == "a field of the wrong type":
        raw.set_state(
            scenario.a, 3, state.replace(b'"originator_version":3', b'"originator_version":"x"', 1)
        )
    else:
        raw.tamper(f"UPDATE {raw.table} SET topic = ? WHERE {raw.position} = ?",
                   ("ledger/Record/Bogus", position))  # fmt: skip
    readers = [["show", CODE_A], ["custody", CODE_A]]
    # (A rebuild decodes only the fields it reads; an unknown topic it refuses unread.)
    if change != "a field of the wrong type":
        readers += [["projections", "rebuild"], ["projections", "check"]]
    for command in readers:
        done = run(url, *command)
        assert "Traceback" not in done.stderr, done
        assert (done.code, done.stdout) == (6, ""), (command, done)
        assert one_line(done.stderr).startswith(UNREADABLE), (command, done)
    assert run(url, "verify").code == 6
