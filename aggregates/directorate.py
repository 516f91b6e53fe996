"""The office's directorate (R19): one aggregate that every loss of an active director
writes to.

The ledger always keeps an active director: revoking the role from, or deactivating, the
last one is refused. That check reads every actor, but each change writes only its own
actor, so two directors removing each other at the same moment would both pass it. Each
such change also appends to this aggregate, at the version its command read: the later
of two concurrent ones collides on the event store's key, is checked again (see
``Ledger.execute``), and is refused once the other has committed. Its id is derived
from a fixed name, as the seal chain's is.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import NAMESPACE_URL, uuid5

from aggregates.base import ChainedAggregate, LedgerCreated, LedgerEvent, check_not_in_future
from aggregates.values import ActorId

DIRECTORATE_ID = uuid5(NAMESPACE_URL, "records-custody-ledger/directorate")

Change = Literal["role-revoked", "deactivated"]


class DirectorLeft(LedgerEvent):
    """An active director stopped being one: ``change`` says how."""

    TOPIC: ClassVar[str] = "ledger/Directorate/DirectorLeft"
    NAME: ClassVar[str] = "director-left"
    director: ActorId
    change: Change


class FirstDirectorLeft(DirectorLeft, LedgerCreated):
    """The first loss of a director in a store: it starts the aggregate."""

    TOPIC: ClassVar[str] = "ledger/Directorate/FirstDirectorLeft"


class Directorate(ChainedAggregate):
    TOPIC = "ledger/Directorate"

    def __init__(self) -> None:
        """No state of its own: its version is what concurrent losses collide on."""

    @classmethod
    def first_loss(
        cls, *, director: str, change: Change, by: str, occurred_at: datetime
    ) -> Directorate:
        return cls._start(
            FirstDirectorLeft,
            id=DIRECTORATE_ID,
            director=director,
            change=change,
            actor=by,
            occurred_at=occurred_at,
        )

    def lose(self, *, director: str, change: Change, by: str, occurred_at: datetime) -> None:
        self.trigger_event(
            DirectorLeft, director=director, change=change, actor=by, occurred_at=occurred_at
        )

    def check_occurred_at(self, occurred_at: datetime) -> None:
        """R14 holds for the directors' own events; here only the future is refused: the
        losses of two directors may be posted out of the order they happened in."""
        check_not_in_future(occurred_at)
