"""Loading an aggregate replays its events as the library's own projector does
(ledger.repository: the same loop, without the library's per-event Protocol check)."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from eventsourcing.application import project_aggregate

from ledger.application import open_ledger
from ledger.repository import LedgerRepository
from tests.cli import fresh_store, generate, run, setup_office


def test_a_loaded_record_is_the_one_the_librarys_projector_builds(tmp_path: Path) -> None:
    generated = generate(tmp_path / "gen.jsonl", 12)
    with fresh_store("sqlite", tmp_path) as url:
        setup_office(url)
        assert run(url, "post", str(generated.path), "--jobs", "1").code == 3  # R6 refusals
        ledger = open_ledger(url)
        assert isinstance(ledger.repository, LedgerRepository)
        versions = []
        for record_id in map(UUID, generated.records):
            ours = ledger.repository.get(record_id)
            theirs = ledger.repository.get(record_id, projector_func=project_aggregate)
            assert vars(ours) == vars(theirs)
            versions.append(ours.version)
            older = ledger.repository.get(record_id, version=2)
            assert older.version == 2
            assert vars(older) == vars(
                ledger.repository.get(record_id, version=2, projector_func=project_aggregate)
            )
        assert min(versions) >= 5  # whole lifecycles were replayed
