"""The Actor aggregate: a person who acts, approves, reads or witnesses (人员)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from aggregates.base import ChainedAggregate, LedgerCreated, LedgerEvent
from aggregates.errors import InvalidInput, RuleViolation
from aggregates.values import ActorId, Moment, Role, Secrecy

ACTOR_NAMESPACE = uuid5(NAMESPACE_URL, "records-custody-ledger/actor")


def actor_uuid(actor_id: str) -> UUID:
    """Actors are found by their id: the aggregate id is derived from it."""
    return uuid5(ACTOR_NAMESPACE, actor_id)


@dataclass(frozen=True)
class ActorView:
    """What the rules need to know of an actor."""

    id: str
    name: str
    roles: frozenset[Role]
    clearance: Secrecy
    external: bool
    unit: str | None
    active: bool
    db_role: str | None

    def has(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)


class ActorRegistered(LedgerCreated):
    NAME: ClassVar[str] = "registered"
    TOPIC: ClassVar[str] = "ledger/Actor/Registered"
    actor_id: ActorId
    name: str
    roles: list[Role]
    clearance: Secrecy
    external: bool = False
    unit: str | None = None
    db_role: str | None = None


class RolesGranted(LedgerEvent):
    NAME: ClassVar[str] = "roles-granted"
    TOPIC: ClassVar[str] = "ledger/Actor/RolesGranted"
    roles: list[Role]

    def apply(self, actor: Any) -> None:
        actor.roles |= set(self.roles)


class RolesRevoked(LedgerEvent):
    NAME: ClassVar[str] = "roles-revoked"
    TOPIC: ClassVar[str] = "ledger/Actor/RolesRevoked"
    roles: list[Role]

    def apply(self, actor: Any) -> None:
        actor.roles -= set(self.roles)


class ClearanceChanged(LedgerEvent):
    NAME: ClassVar[str] = "clearance-changed"
    TOPIC: ClassVar[str] = "ledger/Actor/ClearanceChanged"
    clearance: Secrecy

    def apply(self, actor: Any) -> None:
        actor.clearance = self.clearance


class ActorDeactivated(LedgerEvent):
    NAME: ClassVar[str] = "deactivated"
    TOPIC: ClassVar[str] = "ledger/Actor/Deactivated"
    reason: str

    def apply(self, actor: Any) -> None:
        actor.active = False


class Actor(ChainedAggregate):
    TOPIC = "ledger/Actor"

    def __init__(
        self,
        actor_id: str,
        name: str,
        roles: list[Role],
        clearance: Secrecy,
        external: bool,
        unit: str | None,
        db_role: str | None,
    ) -> None:
        self.actor_id = actor_id
        self.name = name
        self.roles = set(roles)
        self.clearance = clearance
        self.external = external
        self.unit = unit
        self.db_role = db_role
        self.active = True

    @classmethod
    def register(cls, *, actor_id: str, by: str, occurred_at: Moment, **fields: Any) -> Actor:
        if fields.get("external") and not fields.get("unit"):
            raise RuleViolation("R7", f"external actor {actor_id} needs the unit it comes from")
        return cls._start(
            ActorRegistered,
            id=actor_uuid(actor_id),
            actor_id=actor_id,
            actor=by,
            occurred_at=occurred_at,
            **fields,
        )

    # A change that changes nothing is refused as invalid input: it would only add an event.

    def grant(self, roles: list[Role], *, by: str, occurred_at: Moment) -> None:
        self._check_active("no role is granted to it")
        if held := sorted(set(roles) & self.roles):
            raise InvalidInput(f"actor {self.actor_id} already has {_names(held)}")
        self.trigger_event(RolesGranted, roles=roles, actor=by, occurred_at=occurred_at)

    def revoke(
        self,
        roles: list[Role],
        *,
        by: str,
        occurred_at: Moment,
        another_director: Callable[[], bool] | None = None,
    ) -> None:
        """``another_director`` (the ledger's: whether another active director is
        registered) is asked only when the director role is revoked from an active actor."""
        self._check_active("its roles stay as they were")
        if missing := sorted(set(roles) - self.roles):
            raise InvalidInput(f"actor {self.actor_id} does not have {_names(missing)}")
        if Role.DIRECTOR in roles:
            self._check_not_last_director("revoke its director role", another_director)
        if not self.roles - set(roles):
            raise InvalidInput(
                f"actor {self.actor_id} would have no role left; deactivate it instead"
            )
        self.trigger_event(RolesRevoked, roles=roles, actor=by, occurred_at=occurred_at)

    def change_clearance(self, clearance: Secrecy, *, by: str, occurred_at: Moment) -> None:
        self._check_active("its clearance stays as it was")
        if clearance == self.clearance:
            raise InvalidInput(f"actor {self.actor_id} already has clearance {clearance}")
        self.trigger_event(ClearanceChanged, clearance=clearance, actor=by, occurred_at=occurred_at)

    def deactivate(
        self,
        reason: str,
        *,
        by: str,
        occurred_at: Moment,
        another_director: Callable[[], bool] | None = None,
    ) -> None:
        """``another_director`` as for ``revoke``."""
        if not self.active:
            raise RuleViolation("R19", f"actor {self.actor_id} is already deactivated")
        self._check_not_last_director("deactivate it", another_director)
        self.trigger_event(ActorDeactivated, reason=reason, actor=by, occurred_at=occurred_at)

    def _check_active(self, so: str) -> None:
        """A deactivated actor acts no more: a change to its roles or clearance would
        change nothing that counts, and only add an event."""
        if not self.active:
            raise InvalidInput(f"actor {self.actor_id} is deactivated; {so}")

    def _check_not_last_director(
        self, doing: str, another_director: Callable[[], bool] | None
    ) -> None:
        """R19: the director manages actors; the ledger always keeps an active one."""
        if not (self.active and Role.DIRECTOR in self.roles) or another_director is None:
            return
        if not another_director():
            raise RuleViolation(
                "R19",
                f"actor {self.actor_id} is the only active director; register or grant "
                f"another director before you {doing}",
            )

    def view(self) -> ActorView:
        return ActorView(
            id=self.actor_id,
            name=self.name,
            roles=frozenset(self.roles),
            clearance=self.clearance,
            external=self.external,
            unit=self.unit,
            active=self.active,
            db_role=self.db_role,
        )


def _names(roles: list[Role]) -> str:
    return ("the role " if len(roles) == 1 else "the roles ") + ", ".join(r.value for r in roles)
