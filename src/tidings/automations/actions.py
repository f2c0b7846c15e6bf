"""Contact actions, run set-wise for every enrolment at the same step of the same version.

Tags, lists, fields, status and score are written by the contacts write API
(tidings.contacts.service) for the whole group at once, with their activity rows (cause
"automation"), so a tag added here can start another automation in the same worker pass; a
per-contact refusal (rejoining a list one left, leaving a sticky status, a deleted contact)
fails that run alone. Outbound effects (email, webhook, notify) are written to an outbox keyed
by (enrolment, step, hop): the transaction that advances the enrolment is the one that
records the effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.automations import definition as d
from tidings.automations.enrolments import (
    ACTIVE,
    ACTIVE_SLOT,
    EXITED,
    Entered,
    enrol,
    exit_active,
    run_slot,
    start_runs,
)
from tidings.automations.journal import Journal
from tidings.automations.models import Effect
from tidings.automations.registry import Loaded, Registry
from tidings.contacts import repository as contacts_repository
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.coupons import service as coupons
from tidings.db.bulk import dialect_insert, in_values
from tidings.errors import TidingsError
from tidings.messaging.outbox import queue_each

CAUSE = Cause.AUTOMATION.value
PASSED, FAILED, REFUSED, EMPTY = "passed", "failed", "refused", "empty"


class RunLike(Protocol):
    id: int
    contact_id: int
    hops: int


class StartedRun(RunLike, Protocol):
    """The engine's run of an enrolment started in this transaction (an exit looks at it)."""

    state: str
    step: str


class EmailSender(Protocol):
    """Queues the emails of one send_email step for a whole batch, set-wise: `messages` are
    (contact id, idempotency key) pairs. Returns the refusals: the reason per key refused
    (now, or when the key was queued before); every other key is queued."""

    def __call__(
        self,
        session: Session,
        messages: Sequence[tuple[int, str]],
        *,
        template: str,
        message_class: str,
        now: datetime,
        context: dict[str, Any] | None = None,
    ) -> Mapping[str, str]: ...


def messaging_sender(
    session: Session,
    messages: Sequence[tuple[int, str]],
    *,
    template: str,
    message_class: str,
    now: datetime,
    context: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The outbox's one writer: the sending policy and suppression applied in SQL, refusals
    recorded with their reason, a key queued before left as it is."""
    results = queue_each(
        session,
        messages,
        template=template,
        message_class=message_class,
        now=now,
        context=context,
        cause=CAUSE,
    )
    return {key: result.reason for key, result in results.items() if not result.queued}


@dataclass(slots=True)
class Context:
    session: Session
    now: datetime
    registry: Registry
    journal: Journal  # the history and step counts of this transaction
    send_email: EmailSender = messaging_sender
    # Enrolments ended by exit/start actions in this transaction (they may be in the batch).
    exited: dict[int, str] = field(default_factory=dict)  # enrolment id -> reason
    activities: int = 0
    # Enrolments started by start_automation in this transaction, for the engine to run at
    # once; None: leave them due (they run in a later batch).
    entered: list[Entered] | None = None
    # Runs started in this transaction, not stored until its end: (automation, contact) ->
    # enrolment id ((automation, contact, deal) for deal runs), and the engine's run of each
    # id once it has taken it up.
    started: dict[tuple[int, ...], int] = field(default_factory=dict)
    started_runs: dict[int, StartedRun] = field(default_factory=dict)


Outcomes = dict[int, tuple[str, str | None]]  # enrolment id -> (outcome, detail); absent: passed


def effect_key(loaded: Loaded, run: RunLike, step_id: str) -> str:
    return f"automation:{loaded.automation_id}:{run.id}:{step_id}:{run.hops}"


def run_action(ctx: Context, loaded: Loaded, step: Any, runs: Sequence[RunLike]) -> Outcomes:
    handler = HANDLERS[type(step)]
    return handler(ctx, loaded, step, runs)


def _tags(ctx: Context, loaded: Loaded, step: d.TagAction, runs: Sequence[RunLike]) -> Outcomes:
    session, now = ctx.session, ctx.now
    ids = sorted({r.contact_id for r in runs})
    if step.action == "add_tag":
        found = contacts.ensure_tags(session, step.tags, now)
        write = contacts.add_tags
    else:
        found = contacts_repository.tag_ids(session, step.tags)  # none: nobody has it
        write = contacts.remove_tags
    tags = {name: found[name] for name in step.tags if name in found}  # in the step's order
    ctx.activities += len(write(session, ids, tags, cause=CAUSE, now=now).changed)
    return {}


def _score(ctx: Context, loaded: Loaded, step: d.ScoreAction, runs: Sequence[RunLike]) -> Outcomes:
    ids = sorted({r.contact_id for r in runs})
    scores = contacts.adjust_scores(ctx.session, ids, step.by, cause=CAUSE, now=ctx.now)
    ctx.activities += len(scores)
    return {}


def _refused(ctx: Context, runs: Sequence[RunLike], changes: contacts.Changes) -> Outcomes:
    """Runs whose contact a per-contact rule refused (list rejoin, status stickiness) or that
    no longer exists: failed, with the reason; the others passed."""
    ctx.activities += len(changes.changed)
    refused = changes.refused
    return {r.id: (FAILED, refused[r.contact_id]) for r in runs if r.contact_id in refused}


def _all_failed(ctx: Context, runs: Sequence[RunLike], detail: str) -> Outcomes:
    """A value every contact refuses (a field type): each run failed with it."""
    present = contacts_repository.existing_ids(ctx.session, sorted({r.contact_id for r in runs}))
    return {
        r.id: (FAILED, detail if r.contact_id in present else contacts.NO_CONTACT) for r in runs
    }


def _list(ctx: Context, loaded: Loaded, step: d.ListAction, runs: Sequence[RunLike]) -> Outcomes:
    session, now = ctx.session, ctx.now
    ids = sorted({r.contact_id for r in runs})
    if step.action == "subscribe_list":
        list_id = contacts.ensure_lists(session, [step.list], now)[step.list]
        mailing_list = contacts.get_list(session, list_id)
        changes = contacts.subscribe(session, ids, mailing_list, cause=CAUSE, now=now)
    else:
        found = contacts_repository.list_id_by_name(session, step.list)
        if found is None:
            return {}
        mailing_list = contacts.get_list(session, found)
        changes = contacts.unsubscribe(session, ids, mailing_list, cause=CAUSE, now=now)
    return _refused(ctx, runs, changes)


def _set_field(
    ctx: Context, loaded: Loaded, step: d.SetFieldAction, runs: Sequence[RunLike]
) -> Outcomes:
    ids = sorted({r.contact_id for r in runs})
    values = {step.field: step.value}
    try:
        changes = contacts.set_fields(ctx.session, ids, values, cause=CAUSE, now=ctx.now)
    except TidingsError as exc:
        return _all_failed(ctx, runs, exc.detail)
    return _refused(ctx, runs, changes)


def _set_status(
    ctx: Context, loaded: Loaded, step: d.SetStatusAction, runs: Sequence[RunLike]
) -> Outcomes:
    ids = sorted({r.contact_id for r in runs})
    changes = contacts.set_status(
        ctx.session, ids, step.status.value, cause=CAUSE, now=ctx.now, reason=step.reason
    )
    return _refused(ctx, runs, changes)


def _send_email(
    ctx: Context, loaded: Loaded, step: d.SendEmailAction, runs: Sequence[RunLike]
) -> Outcomes:
    """One set-wise call for the batch: a handful of statements, however many runs."""
    keys = [effect_key(loaded, run, step.id) for run in runs]
    refused = ctx.send_email(
        ctx.session,
        [(run.contact_id, key) for run, key in zip(runs, keys, strict=True)],
        template=step.template,
        message_class=step.message_class,
        now=ctx.now,
        context={"automation": loaded.name, "step": step.id},
    )
    ctx.activities += 1
    return {
        run.id: (REFUSED, refused[key])
        for run, key in zip(runs, keys, strict=True)
        if key in refused
    }


def _effects(
    ctx: Context, loaded: Loaded, step: d.WebhookAction | d.NotifyAction, runs: Sequence[RunLike]
) -> Outcomes:
    session, now = ctx.session, ctx.now
    ids = sorted({r.contact_id for r in runs})
    emails = dict(
        session.execute(
            select(Contact.id, Contact.email).where(in_values(session, Contact.id, ids))
        ).all()
    )
    rows = []
    for run in runs:
        contact = {"id": run.contact_id, "email": emails.get(run.contact_id)}
        if isinstance(step, d.WebhookAction):
            kind, target = "webhook", step.url
            payload: dict[str, Any] = {
                "automation": loaded.name,
                "step": step.id,
                "contact": contact,
                "data": step.body,
            }
        else:
            kind, target = "notify", step.to
            payload = {
                "subject": step.subject,
                "body": step.body,
                "contact": contact,
                "automation": loaded.name,
            }
        rows.append(
            {
                "idempotency_key": effect_key(loaded, run, step.id),
                "kind": kind,
                "enrolment_id": run.id,
                "contact_id": run.contact_id,
                "target": target,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": None,
                "created_at": now,
                "updated_at": now,
            }
        )
    statement = dialect_insert(session, Effect).on_conflict_do_nothing(
        index_elements=["idempotency_key"]
    )
    session.execute(statement, rows)
    return {}


def _start(
    ctx: Context, loaded: Loaded, step: d.StartAutomationAction, runs: Sequence[RunLike]
) -> Outcomes:
    snapshot = ctx.registry.snapshot
    target_id = snapshot.by_name.get(step.automation)
    if target_id is None or target_id not in snapshot.current:
        reason = f"automation {step.automation!r} does not exist or is not active"
        return {r.id: (FAILED, reason) for r in runs}
    target = snapshot.current[target_id]
    ids = sorted({r.contact_id for r in runs})
    freed: set[int] = set()
    if step.restart:
        freed = _exit_contacts(ctx, target_id, ids, f"restarted by {loaded.name}")
    if ctx.entered is None:
        enrol(ctx.session, target, now=ctx.now, contact_ids=ids)
    else:
        ctx.entered.append(
            start_runs(
                ctx.session, target, now=ctx.now, contact_ids=ids, held=ctx.started, freed=freed
            )
        )
    return {}


def _exit(
    ctx: Context, loaded: Loaded, step: d.ExitAutomationAction, runs: Sequence[RunLike]
) -> Outcomes:
    target_id = ctx.registry.snapshot.by_name.get(step.automation)
    if target_id is None:
        return {r.id: (FAILED, f"automation {step.automation!r} does not exist") for r in runs}
    _exit_contacts(ctx, target_id, sorted({r.contact_id for r in runs}), f"exited by {loaded.name}")
    return {}


def _exit_contacts(
    ctx: Context, automation_id: int, contact_ids: list[int], reason: str
) -> set[int]:
    """End these contacts' active runs of an automation (those in this batch stay ended);
    returns the contacts whose run was ended."""
    ended = exit_active(
        ctx.session, automation_id, contact_ids, now=ctx.now, reason=reason, journal=ctx.journal
    )
    ctx.exited.update((eid, reason) for eid, _, _ in ended)
    return {cid for _, cid, _ in ended} | _exit_started(ctx, automation_id, contact_ids, reason)


def _exit_started(
    ctx: Context, automation_id: int, contact_ids: list[int], reason: str
) -> set[int]:
    """Runs started in this transaction are not stored yet: the SQL exit cannot see them, so
    they are ended here (the engine ends every run whose id is in `ctx.exited`); returns
    their contacts."""
    ended: set[int] = set()
    wanted = set(contact_ids)
    # Deal runs are held per (automation, contact, deal): a contact may have several.
    keys = [(automation_id, c) for c in contact_ids] + [
        key for key in ctx.started if len(key) == 3 and key[0] == automation_id and key[1] in wanted
    ]
    for key in keys:
        contact_id = key[1]
        enrolment_id = ctx.started.get(key)
        if enrolment_id is None or enrolment_id in ctx.exited:
            continue
        run = ctx.started_runs.get(enrolment_id)
        loaded = ctx.registry.snapshot.current[automation_id]
        if run is None:  # not taken up yet: still at its first step
            step = loaded.definition.steps[0].id
        elif run.state != ACTIVE:
            continue
        else:
            step = run.step
        ctx.exited[enrolment_id] = reason
        if run_slot(loaded) == ACTIVE_SLOT:  # runs multiple: the contact may enter again
            del ctx.started[key]
        ctx.journal.count(automation_id, step, EXITED)
        ended.add(contact_id)
    return ended


def _assign_coupon(
    ctx: Context, loaded: Loaded, step: d.AssignCouponAction, runs: Sequence[RunLike]
) -> Outcomes:
    """A code per contact from the pool (coupons.service.assign: never one code twice), kept
    in the contact's field through the contacts write API; `empty` when none is left."""
    try:
        pool = coupons.get_pool(ctx.session, step.pool)
    except TidingsError as exc:
        return _all_failed(ctx, runs, exc.detail)
    outcomes: Outcomes = {}
    for run in runs:
        code = coupons.assign(ctx.session, pool, run.contact_id, ctx.now)
        if code is None:
            outcomes[run.id] = (EMPTY, f"coupon pool {step.pool!r} is empty")
            continue
        changes = contacts.set_fields(
            ctx.session, [run.contact_id], {step.field_name: code}, cause=CAUSE, now=ctx.now
        )
        outcomes.update(_refused(ctx, [run], changes))
    return outcomes


HANDLERS: dict[type, Callable[..., Outcomes]] = {
    d.AssignCouponAction: _assign_coupon,
    d.TagAction: _tags,
    d.ScoreAction: _score,
    d.ListAction: _list,
    d.SetFieldAction: _set_field,
    d.SetStatusAction: _set_status,
    d.SendEmailAction: _send_email,
    d.WebhookAction: _effects,
    d.NotifyAction: _effects,
    d.StartAutomationAction: _start,
    d.ExitAutomationAction: _exit,
}
