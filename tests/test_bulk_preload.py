"""Bulk posting loads the stored records a chunk names in a few queries (Batch.preload);
the outcome is the one of loading each record when a line first names it.

The second file names records of the first by archival code and by id, moves each twice
to one place (the second move is refused only when the first one's state is seen), names
a code and an id that no record has, and receives a record that later lines name."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ledger.application import open_ledger
from ledger.batch import Batch
from ledger.bulk import BulkPoster, Problem, _ChunkRun
from tests.cli import BACKENDS, fingerprint, fresh_store, generate, run, setup_office


def second_file(first: Path) -> list[bytes]:
    arranged = [json.loads(t) for t in first.read_text().splitlines() if '"arrange"' in t]
    by = {"actor": "g.arch"}
    lines: list[dict[str, Any]] = []
    for n, line in enumerate(arranged):
        place = f"F{n}-01-1-1"
        for m, ref in enumerate((line["code"], line["record"])):
            lines.append({"command": "relocate", "id": f"p-{n}-{m}", "record": ref,
                          "location": place, **by})  # fmt: skip
    new = str(uuid.UUID(int=7))
    receipt = next(json.loads(t) for t in first.read_text().splitlines() if '"receive"' in t)
    lines += [
        {"command": "relocate", "id": "p-x", "record": "NO-SUCH-CODE", "location": "G1-01-1-1",
         **by},
        {"command": "relocate", "id": "p-y", "record": str(uuid.UUID(int=8)),
         "location": "G1-01-1-1", **by},
        {"command": "consult", "id": "p-z", "record": new, "reader": "g.reader",
         "purpose": "查考", "approved_by": "g.leader", **by},  # not received yet: not found
        {**receipt, "id": "p-r", "record": new},
        {"command": "arrange", "id": "p-a", "record": new, "category": "business",
         "retention": "10y", "code": "NEW-0001", **by},
        {"command": "shelve", "id": "p-s", "record": "NEW-0001", "location": "G2-01-1-1",
         **by},
    ]  # fmt: skip
    return [json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in lines]


def counting_reads(recorder: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The aggregates the recorder is asked for one at a time, from now on."""
    reads: list[Any] = []
    select_events = recorder.select_events

    def counted(originator_id: Any, **kwargs: Any) -> Any:
        reads.append(originator_id)
        return select_events(originator_id, **kwargs)

    monkeypatch.setattr(recorder, "select_events", counted)
    return reads


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_chunk_loads_its_stored_records_at_once_with_the_same_outcome(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generated = generate(tmp_path / "gen.jsonl", 30)
    second = second_file(generated.path)
    outcomes = []
    for preload in (False, True):
        (tmp_path / str(preload)).mkdir()
        with fresh_store(backend, tmp_path / str(preload)) as url:
            setup_office(url)
            assert run(url, "post", str(generated.path), "--jobs", "1").code == 3  # R6
            if not preload:
                monkeypatch.setattr(Batch, "preload", lambda self, refs, new: None)
            ledger = open_ledger(url)
            reads = counting_reads(ledger.recorder, monkeypatch)
            problems: list[Problem] = []
            summary = BulkPoster(ledger, None, chunk_size=25, on_problem=problems.append).post(
                second
            )
            monkeypatch.undo()
            messages = [(p.line, p.message) for p in problems]
            counts = (summary.posted, summary.refused, summary.invalid, summary.events)
            outcomes.append((counts, messages, fingerprint(url), len(reads)))
    (without, with_preload) = outcomes
    assert without[:3] == with_preload[:3]
    counts, messages, _, _ = without
    assert counts[:3] == (33, 0, 33), messages  # posted, refused, invalid
    assert sum("is already at F" in m for _, m in messages) == 30
    assert [n for n, m in messages if "not found" in m] == [61, 62, 63]
    assert without[3] >= 2 * 30  # the code's claim and the record, as each is first named
    assert with_preload[3] <= 10, with_preload[3]  # actors, and the ids no record has


def test_a_chunk_starts_from_what_the_chunk_still_committing_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record on loan in the store is returned by the last line of a chunk and lent
    again by the first of the next, which is checked (and loads its records) while the
    return is still being committed: the loan is allowed, as in order. A load from the
    store would see the record still on loan and refuse it (R8), a refusal that is
    recorded and collides with nothing."""
    generated = generate(tmp_path / "gen.jsonl", 3)
    lines = [json.loads(t) for t in generated.path.read_text().splitlines()]
    first = next(line for line in lines if line["command"] == "arrange")
    lend = next(line for line in lines if line["command"] == "lend" and line["record"] in (
        first["code"], first["record"]))  # fmt: skip
    back = next(line for line in lines if line["command"] == "return" and line["record"] in (
        first["code"], first["record"]))  # fmt: skip
    later = "2026-01-0{}T09:00:00+00:00"
    again = [
        {**lend, "id": "q-1", "occurred_at": later.format(1), "due": "2026-02-01"},
        {**back, "id": "q-2", "occurred_at": later.format(2)},
        {**lend, "id": "q-3", "occurred_at": later.format(3), "due": "2026-02-01"},
    ]
    commit = _ChunkRun._commit_and_check

    def slowly(self: _ChunkRun, job: Any) -> None:
        time.sleep(0.5)  # the next chunk is checked meanwhile
        commit(self, job)

    with fresh_store("sqlite", tmp_path) as url:
        setup_office(url)
        assert run(url, "post", str(generated.path), "--jobs", "1").code in (0, 3)
        ledger = open_ledger(url)
        text = [json.dumps(line, ensure_ascii=False).encode() + b"\n" for line in again]
        BulkPoster(ledger, None).post(text[:1])  # on loan, committed
        monkeypatch.setattr(_ChunkRun, "_commit_and_check", slowly)
        problems: list[Problem] = []
        summary = BulkPoster(ledger, None, chunk_size=1, on_problem=problems.append).post(text[1:])
        monkeypatch.undo()
        assert (summary.posted, problems) == (2, [])
        record: Any = ledger.repository.get(uuid.UUID(first["record"]))
        assert record.custodian == lend["to"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_routing_reads_the_holders_of_codes_as_their_claims_say(
    backend: str, tmp_path: Path
) -> None:
    """Bulk posting's routing reads which record holds a code from the claim's stored body
    (Ledger.code_holders), without building the claim: the same record as the claim."""
    generated = generate(tmp_path / "gen.jsonl", 12)
    arranged = [json.loads(t) for t in generated.path.read_text().splitlines() if "arrange" in t]
    with fresh_store(backend, tmp_path) as url:
        setup_office(url)
        assert run(url, "post", str(generated.path), "--jobs", "1").code == 3  # R6
        ledger = open_ledger(url)
        codes = [line["code"] for line in arranged] + ["NO-SUCH-CODE"]
        holders = ledger.code_holders(codes)
        claims = Batch(ledger).claims_of(codes)
        assert holders == {code: claim.record_id for code, claim in claims.items()}
        assert holders == {line["code"]: uuid.UUID(line["record"]) for line in arranged}
        ledger.close()
