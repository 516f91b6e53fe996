"""A body rewritten with a correct hash but not well-formed: verify reads every byte of it.

The rewritten event is record A's last one, after the seal: no later event links to it and
no seal covers it, so only the body's own reading can tell (verify decodes just the fields
it compares, but the whole body must still be valid UTF-8 JSON).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aggregates.chain import digest, envelope
from tests.cli import one_line, run
from tests.tamper import CODE_A, RawStore, Scenario

LOCATION = b'"location":"A1-01-1-3"'

MALFORMED = {
    "invalid UTF-8 in a string": b'"location":"A1-01-1-\xff"',
    "a truncated UTF-8 sequence": b'"location":"A1-01-1-\xe6\x9f"',
    "invalid UTF-8 in a key": b'"locati\xffon":"A1-01-1-3"',
    "a control character in a string": b'"location":"A1-01-1-\x013"',
    "a bad escape": b'"location":"A1-01-1-\\q"',
    "a number with a leading zero": b'"location":03',
    "a bare word": b'"location":A1',
    "an unclosed array": b'"location":[1,2',
}


@pytest.mark.parametrize("change", list(MALFORMED), ids=list(MALFORMED))
def test_a_malformed_body_with_a_correct_hash_is_found(
    golden: tuple[Scenario, Callable[[], str]], change: str
) -> None:
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    state = raw.row(scenario.a, 6)[2]
    body = state[len(b'{"body":') : -len(b',"hash":"') - 64 - len(b'"}')]
    assert body.count(LOCATION) == 1
    body = body.replace(LOCATION, MALFORMED[change])
    raw.set_state(scenario.a, 6, envelope(body, digest(body)))
    done = run(url, "verify")
    assert done.code == 6, done
    assert one_line(done.stderr).startswith("error: verification failed: "), done
    assert done.stdout.split("\nchecked ")[0].splitlines() == [
        f"record {scenario.a} (code {CODE_A}) version 6: unreadable (its body is not a JSON object)"
    ]


def test_the_same_body_well_formed_is_intact(
    golden: tuple[Scenario, Callable[[], str]],
) -> None:
    """The rewrite itself is not what is caught: a well-formed one passes (no seal, no
    later link covers that event)."""
    scenario, make = golden
    url = make()
    raw = RawStore(url)
    state = raw.row(scenario.a, 6)[2]
    body = state[len(b'{"body":') : -len(b',"hash":"') - 64 - len(b'"}')]
    body = body.replace(LOCATION, b'"location":"A1-01-1-\xe6\x9f\xa5"')
    raw.set_state(scenario.a, 6, envelope(body, digest(body)))
    done = run(url, "verify")
    assert done.code == 0, done
    assert done.stdout.splitlines()[-1] == "intact", done
