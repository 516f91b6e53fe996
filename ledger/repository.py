"""Loading aggregates: the library's repository, replaying events without its per-event
protocol check, and loading many aggregates at once.

The library's projector (``eventsourcing.application.project_aggregate``) asserts that each
event is an instance of a runtime-checkable Protocol before it calls ``mutate``; on Python
3.11 every such check computes the protocol's members again, which took a third of the
time of loading a stored record. Every event the ledger stores mutates (LedgerEvent), and
one that did not would fail on ``mutate`` all the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import ProjectorFunction, Repository


def replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """Apply each event to the aggregate it returned before (None at first)."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class LedgerRepository(Repository[Any]):
    def get(
        self,
        aggregate_id: UUID | str,
        *,
        version: int | None = None,
        projector_func: ProjectorFunction[Any, Any] = replay,
        fastforward_skipping: bool = False,
        deepcopy_from_cache: bool = True,
    ) -> Any:
        return super().get(
            aggregate_id,
            version=version,
            projector_func=projector_func,
            fastforward_skipping=fastforward_skipping,
            deepcopy_from_cache=deepcopy_from_cache,
        )

    def get_many(self, aggregate_ids: Sequence[UUID]) -> dict[UUID, Any]:
        """The aggregates with these ids that are stored, read in a few queries (the
        recorders' ``event_rows_of``) instead of one each; ids with no events are left out."""
        if not aggregate_ids:
            return {}
        mapper: Any = self.event_store.mapper
        recorder: Any = self.event_store.recorder
        event_from = mapper.event_from
        events: dict[UUID, list[Any]] = {}
        for originator_id, topic, state in recorder.event_rows_of(aggregate_ids):
            events.setdefault(originator_id, []).append(event_from(topic, state))
        return {aggregate_id: replay(None, found) for aggregate_id, found in events.items()}
