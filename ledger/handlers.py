"""One handler per command: load through the batch, call the aggregate, add what is new.

A handler's result holds record ids as UUIDs: bulk posting discards results, and
``Ledger.execute`` turns ids into text for the commands that print them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial, singledispatch
from typing import Any
from uuid import uuid4

from aggregates.actor import Actor, ActorView
from aggregates.directorate import Change
from aggregates.errors import InvalidInput, NotFound, RuleViolation
from aggregates.record import Record
from aggregates.values import Role
from ledger import requests as rq
from ledger.batch import Batch


def when(request: rq.Request) -> datetime:
    """When the command's event happened: the time it gives, or now in the machine's
    local offset, the office's (its calendar day is what R2, R10 and R11 judge: a receipt
    at 07:00 on 1 April in Beijing is late, though it is still 31 March in UTC)."""
    return request.occurred_at or datetime.now().astimezone()


def handle(request: rq.Request, batch: Batch, actor: str | None) -> dict[str, Any]:
    """Run the command's handler. Handlers are found once per request type: the
    registry's own look-up (a weak-keyed dictionary) cost more per bulk line than the
    rest of the dispatch."""
    found = _BY_TYPE.get(type(request))
    if found is None:
        found = _BY_TYPE[type(request)] = _handler.dispatch(type(request))
    return found(request, batch, actor)


@singledispatch
def _handler(request: rq.Request, batch: Batch, actor: str | None) -> dict[str, Any]:
    raise InvalidInput(f"unknown command {type(request).__name__}")  # pragma: no cover


_BY_TYPE: dict[type[Any], Callable[..., dict[str, Any]]] = {}


@_handler.register
def _(request: rq.Receive, batch: Batch, actor: str | None) -> dict[str, Any]:
    acting = _acting(batch, actor, "receive", request)  # R19: a refused receipt is kept too
    record_id = request.record or uuid4()

    def id_free() -> None:
        if batch.record_exists(record_id):
            raise InvalidInput(f"record {record_id} already exists")

    record = Record.receive(
        id=record_id,
        actor=acting,
        liaison=batch.actor(request.transferred_by),
        occurred_at=when(request),
        title=request.title,
        department=request.department,
        year=request.year,
        carrier=request.carrier,
        pages=request.pages,
        secrecy=request.secrecy,
        id_free=id_free,
    )
    batch.add(record)
    return {"record": record.id, "late": record.late}


def _on_record(
    action: str,
    request: rq.RecordRequest,
    batch: Batch,
    actor: str | None,
    act: Callable[[Record, Any], None],
    details: Callable[[], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Check who acts (R19), resolve the record, run the command; record refusals (R18)
    with the attempt's ``details``. R19 comes before the record is looked for: an
    attempt by an actor who may not act is kept whether or not the record it names
    exists (someone probing for records), and says the same either way."""
    acting = _acting_on(action, request, batch, actor, details)
    record = batch.record(request.record)
    try:
        # R14 before the rules that read the record's state: an attempt dated before the
        # record's previous event (or its receipt) is refused as such, not judged against
        # today's state and kept in the audit trail at a time the record did not have it.
        record.check_occurred_at(when(request))
        act(record, acting)
    except RuleViolation as error:
        _refuse(error, action, request, batch, actor, record, details)
        raise
    return {"record": record.id, "code": record.code, "version": record.version}


def _acting_on(
    action: str,
    request: rq.RecordRequest,
    batch: Batch,
    actor: str | None,
    details: Callable[[], dict[str, Any]] | None,
) -> ActorView:
    """R19 for a command that names a record. A refusal is kept with the record if it
    exists; if not, with no record, and the text given in its reason (an auditor sees
    what was tried); the one refused is told the same in either case."""
    try:
        return batch.acting(actor, action)
    except RuleViolation as error:
        try:
            record: Record | None = batch.record(request.record)
            kept = error
        except NotFound:
            record = None
            kept = RuleViolation(
                error.rule,
                f"{error.message}; attempted on record {request.record!r}, which does not exist",
            )
        _refuse(kept, action, request, batch, actor, record, details)
        raise error from None


def _refuse(
    error: RuleViolation,
    action: str,
    request: rq.RecordRequest,
    batch: Batch,
    actor: str | None,
    record: Record | None,
    details: Callable[[], dict[str, Any]] | None,
) -> None:
    """Keep a refused attempt on ``record`` (none: it does not exist), if its rule is kept."""
    batch.refuse(
        error,
        action=action,
        actor=actor or "",
        record=record,
        details=details() if details else {},
        occurred_at=when(request),
    )


@_handler.register
def _(request: rq.Arrange, batch: Batch, actor: str | None) -> dict[str, Any]:
    def act(record: Record, acting: Any) -> None:
        record.arrange(
            actor=acting,
            occurred_at=when(request),
            category=request.category,
            retention=request.retention,
            code=request.code,
            unit=request.unit,
            code_free=partial(batch.check_code_free, request.code, record),
        )
        batch.claim_code(request.code, record, acting.id, when(request))

    return _on_record("arrange", request, batch, actor, act)


@_handler.register
def _(request: rq.Shelve, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "shelve",
        request,
        batch,
        actor,
        lambda r, a: r.shelve(actor=a, occurred_at=when(request), location=request.location),
    )


@_handler.register
def _(request: rq.Relocate, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "relocate",
        request,
        batch,
        actor,
        lambda r, a: r.relocate(actor=a, occurred_at=when(request), location=request.location),
    )


def _use_details(request: rq.Consult | rq.Copy | rq.Lend, reader: str) -> dict[str, Any]:
    return {
        "reader": reader,
        "approved_by": request.approved_by,
        "letter": request.letter,
        "purpose": request.purpose,
    }


def _approver(batch: Batch, approver_id: str | None) -> Any:
    return batch.actor(approver_id) if approver_id else None


@_handler.register
def _(request: rq.Consult, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "consult",
        request,
        batch,
        actor,
        lambda r, a: r.consult(
            actor=a,
            occurred_at=when(request),
            reader=batch.actor(request.reader),
            purpose=request.purpose,
            approver=_approver(batch, request.approved_by),
            letter=request.letter,
        ),
        lambda: _use_details(request, request.reader),
    )


@_handler.register
def _(request: rq.Copy, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "copy",
        request,
        batch,
        actor,
        lambda r, a: r.copy(
            actor=a,
            occurred_at=when(request),
            reader=batch.actor(request.reader),
            pages=request.pages,
            purpose=request.purpose,
            approver=_approver(batch, request.approved_by),
            letter=request.letter,
        ),
        lambda: _use_details(request, request.reader),
    )


@_handler.register
def _(request: rq.Lend, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "lend",
        request,
        batch,
        actor,
        lambda r, a: r.lend(
            actor=a,
            occurred_at=when(request),
            reader=batch.actor(request.to),
            due=request.due,
            purpose=request.purpose,
            approver=_approver(batch, request.approved_by),
            letter=request.letter,
        ),
        lambda: _use_details(request, request.to),
    )


@_handler.register
def _(request: rq.Return, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "return",
        request,
        batch,
        actor,
        lambda r, a: r.return_(
            actor=a,
            occurred_at=when(request),
            pages=request.pages,
            condition=request.condition,
            note=request.note,
        ),
    )


@_handler.register
def _(request: rq.Repair, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "repair",
        request,
        batch,
        actor,
        lambda r, a: r.repair(actor=a, occurred_at=when(request), note=request.note),
    )


@_handler.register
def _(request: rq.ReportLoss, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "report-loss",
        request,
        batch,
        actor,
        lambda r, a: r.report_loss(
            actor=a, occurred_at=when(request), pages=request.pages, note=request.note
        ),
    )


@_handler.register
def _(request: rq.Appraise, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "appraise",
        request,
        batch,
        actor,
        lambda r, a: r.appraise(
            actor=a,
            occurred_at=when(request),
            decision=request.decision,
            appraisers=[batch.actor(i) for i in request.appraiser],
            basis=request.basis,
            review_on=request.review_on,
            secrecy_to=request.secrecy,
        ),
        lambda: {"decision": request.decision, "appraisers": request.appraiser},
    )


@_handler.register
def _(request: rq.Destroy, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "destroy",
        request,
        batch,
        actor,
        lambda r, a: r.destroy(
            actor=a,
            occurred_at=when(request),
            approver=batch.actor(request.approved_by),
            witnesses=[batch.actor(i) for i in request.witness],
            register_no=request.register_no,
            method=request.method,
        ),
        lambda: {"approved_by": request.approved_by},  # a refusal names whose approval
    )


@_handler.register
def _(request: rq.Correct, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_record(
        "correct",
        request,
        batch,
        actor,
        lambda r, a: r.correct(
            actor=a,
            occurred_at=when(request),
            version=request.version,
            reason=request.reason,
            changes=request.set.changes(),
        ),
    )


def _acting(batch: Batch, actor: str | None, action: str, request: Any) -> Any:
    """R19 for a command on no record (a receipt; managing actors, the director's): a
    refusal is recorded as the attempted command, at the attempt's time. An attempt on
    an actor names it and what was asked, in the refusal's reason (an auditor must see
    whom someone tried to deactivate, say)."""
    try:
        return batch.acting(actor, action)
    except RuleViolation as error:
        if hasattr(request, "actor_id"):
            error = RuleViolation(error.rule, f"{error.message}; attempted: {_asked(request)}")
        batch.refuse(
            error,
            action=request.command,
            actor=actor or "",
            record=None,
            details={},
            occurred_at=when(request),
        )
        raise error from None


def _asked(request: Any) -> str:
    """An actor command as asked: its name and the options given, text quoted (a line
    break in a name stays in its quotes, on one line), e.g. ``actor-deactivate dir
    reason='离职'``."""
    fields = request.model_dump(
        mode="json", exclude={"command", "actor_id", "occurred_at"}, exclude_unset=True
    )
    options = [f"{k}={','.join(v) if isinstance(v, list) else repr(v)}" for k, v in fields.items()]
    return " ".join([request.command, request.actor_id, *options])


@_handler.register
def _(request: rq.AddActor, batch: Batch, actor: str | None) -> dict[str, Any]:
    acting = _acting(batch, actor, "manage-actors", request)
    if batch._actor(request.actor_id) is not None:
        raise InvalidInput(f"actor {request.actor_id} is already registered")
    if request.db_role is not None:
        _applicable(batch, request.db_role)
    batch.add(
        Actor.register(
            actor_id=request.actor_id,
            by=acting.id,
            occurred_at=when(request),
            name=request.name,
            roles=request.role,
            clearance=request.clearance,
            external=request.external,
            unit=request.unit,
            db_role=request.db_role,
        )
    )
    return {"actor": request.actor_id}


def _applicable(batch: Batch, role: str) -> None:
    """A binding to a role that can never be the session's is invalid: SQLite has no
    roles, and PostgreSQL's current_user is a role it has, by its exact name."""
    exists = getattr(batch.app.recorder, "role_exists", None)
    if exists is None:
        raise InvalidInput(f"database role {role!r}: database roles exist on PostgreSQL only")
    if not exists(role):
        raise InvalidInput(
            f"database role {role!r}: no such role on this PostgreSQL server "
            "(names are case-sensitive)"
        )


def _on_actor(
    request: Any, batch: Batch, actor: str | None, change: Callable[[Actor, str, datetime], None]
) -> dict[str, Any]:
    """A director's change to a registered actor; returns the actor's state after it."""
    acting = _acting(batch, actor, "manage-actors", request)
    target = batch.actor_aggregate(request.actor_id)
    was_director = _active_director(target)
    change(target, acting.id, when(request))
    if was_director and not _active_director(target):
        how: Change = "deactivated" if not target.active else "role-revoked"
        batch.director_left(target.actor_id, how, acting.id, when(request))
    return {
        "actor": target.actor_id,
        "roles": sorted(r.value for r in target.roles),
        "clearance": target.clearance.value,
        "active": target.active,
    }


def _active_director(actor: Actor) -> bool:
    return actor.active and Role.DIRECTOR in actor.roles


@_handler.register
def _(request: rq.GrantRoles, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_actor(
        request, batch, actor, lambda t, by, at: t.grant(request.role, by=by, occurred_at=at)
    )


@_handler.register
def _(request: rq.RevokeRoles, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_actor(
        request,
        batch,
        actor,
        lambda t, by, at: t.revoke(
            request.role,
            by=by,
            occurred_at=at,
            another_director=partial(batch.another_director, t.actor_id),
        ),
    )


@_handler.register
def _(request: rq.ChangeClearance, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_actor(
        request,
        batch,
        actor,
        lambda t, by, at: t.change_clearance(request.clearance, by=by, occurred_at=at),
    )


@_handler.register
def _(request: rq.DeactivateActor, batch: Batch, actor: str | None) -> dict[str, Any]:
    return _on_actor(
        request,
        batch,
        actor,
        lambda t, by, at: t.deactivate(
            request.reason,
            by=by,
            occurred_at=at,
            another_director=partial(batch.another_director, t.actor_id),
        ),
    )
