"""The canonical encoding an auditor re-implements, the seal's sketch, and `ledger seal`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregates.chain import GENESIS, canonical, digest, open_envelope
from aggregates.record_events import Received
from ledger.sketch import Sketch
from tests.cli import last_event, one_line, refusal_count, run
from tests.tamper import CODE_B, RawStore, Scenario

README = Path(__file__).resolve().parent.parent / "README.md"
SCALARS = st.one_of(
    st.text(), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none(), st.lists(st.text())
)


def standard_json(fields: object) -> bytes:
    """What an auditor's own code writes: Python's json module, nothing of ours."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@settings(max_examples=300)
@given(st.dictionaries(st.text(), SCALARS, max_size=8))
def test_canonical_is_standard_sorted_compact_json(fields: dict[str, object]) -> None:
    assert canonical(fields) == standard_json(fields)


@settings(max_examples=200, deadline=None)
@given(title=st.text(min_size=1, max_size=200), department=st.text(min_size=1, max_size=50))
def test_an_event_body_is_what_standard_json_makes_of_its_fields(
    title: str, department: str
) -> None:
    event = Received(
        originator_id=uuid4(),
        originator_version=1,
        timestamp=datetime.now(tz=UTC),
        occurred_at=datetime(2020, 3, 1, 9, 0, tzinfo=UTC),
        actor="li.day",
        prev_hash=GENESIS,
        originator_topic="ledger/Record",
        title=title,
        department=department,
        year=2020,
        carrier="paper",
        pages=3,
        secrecy="secret",
        transferred_by="zhang.ll",
        late=False,
    )
    body = event.body()
    assert body == standard_json(json.loads(body))
    assert event.event_hash == digest(body)
    fields = json.loads(body)
    assert (fields["title"], fields["topic"], fields["prev_hash"]) == (
        title,
        "ledger/Record/Received",
        GENESIS,
    )


ENTRY = st.tuples(
    st.integers(-5, 10_000),
    st.uuids().map(lambda u: u.hex),
    st.integers(1, 50),
    st.sampled_from(["ledger/Record/Lent", "ledger/Actor/Registered"]),
    st.binary(min_size=32, max_size=32),
)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(ENTRY, max_size=60, unique_by=lambda e: e[:3]),
    st.lists(ENTRY, max_size=10, unique_by=lambda e: e[:3]),
    st.data(),
)
def test_the_sketch_names_what_differs(
    common: list[tuple[int, str, int, str, bytes]],
    extra: list[tuple[int, str, int, str, bytes]],
    data: st.DataObject,
) -> None:
    extra = [e for e in extra if e[:3] not in {c[:3] for c in common}]
    gone = data.draw(st.sets(st.sampled_from(range(len(common))), max_size=10)) if common else set()
    sealed, now = Sketch(), Sketch()
    for entry in common:
        sealed.add(*entry)
    for index, entry in enumerate(common):
        if index not in gone:
            now.add(*entry)
    for entry in extra:
        now.add(*entry)
    decoded = Sketch.decode(sealed.encode())
    added, removed, complete = now.minus(decoded).peel()
    assert complete
    assert sorted((e.position, e.key, e.version) for e in added) == sorted(e[:3] for e in extra)
    assert sorted((e.position, e.key, e.version) for e in removed) == sorted(
        common[i][:3] for i in gone
    )
    hashes = {entry[:3]: entry[4][:16].hex() for entry in extra}
    assert all(e.hash == hashes[(e.position, e.key, e.version)] for e in added)


def test_a_sketch_of_too_many_differences_says_so() -> None:
    sealed, now = Sketch(), Sketch()
    for position in range(1, 200):
        now.add(position, uuid4().hex, 1, "ledger/Record/Received", bytes(32))
    _, _, complete = now.minus(sealed).peel()
    assert not complete


# -- the seal command and the auditor's own script -----------------------------------


@pytest.fixture
def url(golden: tuple[Scenario, Callable[[], str]]) -> str:
    return golden[1]()


def test_seal_prints_what_to_write_down_and_chains_to_the_last_seal(
    url: str, golden: tuple[Scenario, Callable[[], str]]
) -> None:
    first = golden[0]
    done = run(url, "seal", actor="arch")
    assert done.code == 0, done
    lines = done.stdout.splitlines()
    digest_line = next(line for line in lines if line.startswith("digest    "))
    sealed = digest_line.removeprefix("digest    ")
    assert lines[:3] == ["seal      2", "position  19", "events    19"]
    assert re.fullmatch(r"[0-9a-f]{64}", sealed)
    assert lines[4].startswith("sealed at 20")
    assert lines[-1] == f"  ledger verify --digest {sealed} --position 19"
    topic, body = last_event(url)
    assert topic == "ledger/Seal/Sealed"
    assert (body["number"], body["position"], body["events"], body["digest"]) == (2, 19, 19, sealed)
    assert (body["previous_position"], body["previous_digest"]) == (
        first.seal_position,
        first.seal_digest,
    )
    third = run(url, "seal", "--json", actor="dir")
    assert third.code == 0, third
    report = third.json()
    assert set(report) == {"seal", "position", "events", "digest", "sealed_at", "previous_position"}
    assert (report["seal"], report["position"], report["previous_position"]) == (3, 20, 19)
    for position, value in ((19, sealed), (first.seal_position, first.seal_digest)):
        checked = run(url, "verify", "--digest", value, "--position", str(position))
        assert checked.code == 0, checked
        assert f"given digest at position {position}: matches" in checked.stdout


def test_only_archivists_directors_and_auditors_seal(url: str) -> None:
    before = refusal_count(url)
    done = run(url, "seal", actor="reader")
    assert done.code == 3, done
    assert one_line(done.stderr) == (
        "refused (R19): actor reader may not seal: it needs the role archivist or director or "
        "auditor"
    )
    assert refusal_count(url) == before + 1
    topic, body = last_event(url)
    assert (topic, body["action"], body["actor"]) == (
        "ledger/Refusal/AttemptRefused",
        "seal",
        "reader",
    )


def test_a_log_that_no_longer_matches_its_seal_is_not_sealed_again(
    url: str, golden: tuple[Scenario, Callable[[], str]]
) -> None:
    """The line names what differs, as `verify` does from the seal's sketch."""
    raw = RawStore(url)
    b = golden[0].b
    was = raw.row(b, 3)[2][-66:-2].decode()
    now = raw.rewrite(b, 3, location="B9-09-9-9")
    before = raw.positions()
    done = run(url, "seal", actor="audit")
    assert done.code == 6, done
    assert one_line(done.stderr) == (
        f"error: the log no longer matches seal 1 at position 15 (record {b} (code {CODE_B}) "
        f"version 3: changed since seal 1: its hash was {was[:16]}…, is now {now[:16]}… "
        "(rewritten)); run `ledger verify`; nothing was sealed"
    )
    assert raw.positions() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--digest", "abc", "--position", "3"], "error: --digest is 64 hexadecimal digits"),
        (["--digest", "0" * 64], "error: --digest and --position go together"),
        (["--position", "3"], "error: --digest and --position go together"),
        (["--digest", "0" * 64, "--position", "-1"], "error: --position is a log position"),
    ],
)
def test_a_malformed_digest_is_invalid_input(url: str, args: list[str], message: str) -> None:
    done = run(url, "verify", *args)
    assert done.code == 2, done
    assert one_line(done.stderr).startswith(message)


def test_a_digest_given_for_a_position_past_the_head_is_not_reached(url: str) -> None:
    """The log's own digest given for a later position: the log ends before it (a
    truncated tail), and the digest there cannot match."""
    whole = run(url, "verify", "--json")
    head, digest = whole.json()["head"], whole.json()["digest"]
    done = run(url, "verify", "--digest", digest, "--position", str(head + 5))
    assert done.code == 6, done
    assert f"given digest at position {head + 5}: not reached" in done.stdout.splitlines()
    assert "matches" not in done.stdout
    report = run(url, "verify", "--json", "--digest", digest, "--position", str(head + 5)).json()
    assert report["given"]["matches"] is None and not report["intact"], report


def test_a_digest_that_differs_fails(url: str) -> None:
    done = run(url, "verify", "--digest", "ab" * 32, "--position", "15")
    assert done.code == 6, done
    assert done.stdout.splitlines()[0] == (
        "log: digest at position 15 differs from the given digest (an event up to that "
        "position was changed, inserted, deleted or reordered); seal 1 stored for that "
        f"position records {RawStore(url).body(_seal_id(url), 2)['digest'][:16]}…: the stored "
        "seals were rewritten too"
    )


def _seal_id(url: str) -> object:
    from aggregates.seal import SEAL_ID

    return SEAL_ID


def test_the_readme_script_computes_the_seal_digest(
    tmp_path: Path, golden: tuple[Scenario, Callable[[], str]]
) -> None:
    """The README's few lines, with nothing of ours, give the digest a seal recorded."""
    url = golden[1]()
    if not url.startswith("sqlite:"):
        pytest.skip("the README's script reads SQLite")
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### The format, to check it without this code") :]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    script = tmp_path / "audit.py"
    script.write_text(block.group(1), encoding="utf-8")
    path = url.removeprefix("sqlite:///")
    scenario = golden[0]

    def audit() -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-I", str(script), path, str(scenario.seal_position)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)

    done = audit()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == scenario.seal_digest
    RawStore(url).delete(scenario.a, 3)
    broken = audit()
    assert broken.returncode != 0 and "AssertionError" in broken.stderr


def test_the_envelope_splits_without_re_encoding() -> None:
    body = canonical({"a": "档案", "b": 1})
    state = b'{"body":' + body + b',"hash":"' + digest(body).encode() + b'"}'
    assert open_envelope(state) == (body, digest(body))
    assert json.loads(state)["hash"] == digest(body)
    with pytest.raises(ValueError):
        open_envelope(state[:-1])
