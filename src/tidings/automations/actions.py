"""Contact actions, run set-wise for every enrolment at the same step of the same version.

Every action writes the same activity rows as tidings.contacts.service (cause "automation"),
so a tag added here can start another automation in the same worker pass. Outbound effects
(email, webhook, notify) are written to an outbox keyed by (enrolment, step, hop): the
transaction that advances the enrolment is the one that records the effect.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import BigInteger, delete, literal, select, true, update
from sqlalchemy.orm import Session

from tidings.activities.service import (
    ActivityRow,
    ActivityType,
    Cause,
    record_many,
    record_tuples,
)
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
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact, ContactTag, MailingList, Tag
from tidings.db.bulk import dialect_insert, in_values, values_select
from tidings.db.types import UTCDateTime
from tidings.errors import TidingsError
from tidings.messaging.outbox import queue_each

CAUSE = Cause.AUTOMATION.value
CONTACT_TAGS: Any = ContactTag.__table__
PASSED, FAILED, REFUSED = "passed", "failed", "refused"


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
    # enrolment id, and the engine's run of each id once it has taken it up.
    started: dict[tuple[int, int], int] = field(default_factory=dict)
    started_runs: dict[int, StartedRun] = field(default_factory=dict)


Outcomes = dict[int, tuple[str, str | None]]  # enrolment id -> (outcome, detail); absent: passed


def effect_key(loaded: Loaded, run: RunLike, step_id: str) -> str:
    return f"automation:{loaded.automation_id}:{run.id}:{step_id}:{run.hops}"


def run_action(ctx: Context, loaded: Loaded, step: Any, runs: Sequence[RunLike]) -> Outcomes:
    handler = HANDLERS[type(step)]
    return handler(ctx, loaded, step, runs)


def _record(ctx: Context, rows: list[ActivityRow]) -> None:
    if rows:
        record_many(ctx.session, rows)
        ctx.activities += len(rows)


def _tags(ctx: Context, loaded: Loaded, step: d.TagAction, runs: Sequence[RunLike]) -> Outcomes:
    session, now = ctx.session, ctx.now
    ids = sorted({r.contact_id for r in runs})
    if step.action == "add_tag":
        tag_ids = contacts.ensure_tags(session, step.tags, now)
    else:
        tag_ids = dict(
            session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(step.tags))).all()
        )
    rows: list[tuple[Any, ...]] = []
    for name in step.tags:
        tag_id = tag_ids.get(name)
        if tag_id is None:
            continue  # removing a tag nobody has ever had
        if step.action == "add_tag":
            changed, kind = _add_tag(session, tag_id, ids, now), ActivityType.TAG_ADDED.value
        else:
            changed, kind = _remove_tag(session, tag_id, ids), ActivityType.TAG_REMOVED.value
        data = {"tag": name, "tag_id": tag_id}
        rows.extend((cid, kind, CAUSE, now, data) for cid in sorted(changed))
    if rows:
        record_tuples(session, rows)
        ctx.activities += len(rows)
    return {}


def _add_tag(session: Session, tag_id: int, ids: list[int], now: datetime) -> list[int]:
    """One INSERT ... SELECT; returns the contacts that did not have the tag (a request adding
    it concurrently is no conflict: only rows really added come back)."""
    source = values_select(session, ids, BigInteger()).subquery()
    statement = (
        dialect_insert(session, CONTACT_TAGS)
        .from_select(
            ["contact_id", "tag_id", "created_at"],
            select(source.c.value, literal(tag_id), literal(now, UTCDateTime())).where(true()),
        )
        .on_conflict_do_nothing()
        .returning(ContactTag.contact_id)
    )
    # The table, not the class: a Core statement, without the ORM's bulk-insert bookkeeping.
    return list(session.scalars(statement))


def _remove_tag(session: Session, tag_id: int, ids: list[int]) -> list[int]:
    return list(
        session.scalars(
            delete(ContactTag)
            .where(ContactTag.tag_id == tag_id, in_values(session, ContactTag.contact_id, ids))
            .returning(ContactTag.contact_id)
            .execution_options(synchronize_session=False)  # no ContactTag objects are loaded
        )
    )


def _score(ctx: Context, loaded: Loaded, step: d.ScoreAction, runs: Sequence[RunLike]) -> Outcomes:
    session = ctx.session
    ids = sorted({r.contact_id for r in runs})
    changed = session.execute(
        update(Contact)
        .where(in_values(session, Contact.id, ids))
        .values(score=Contact.score + step.by, updated_at=ctx.now)
        .returning(Contact.id, Contact.score)
        .execution_options(synchronize_session=False)
    ).all()
    _record(
        ctx,
        [
            ActivityRow(
                cid,
                ActivityType.SCORE_CHANGED.value,
                CAUSE,
                ctx.now,
                {"old": score - step.by, "new": score, "by": step.by},
            )
            for cid, score in changed
        ],
    )
    return {}


def _per_contact(
    ctx: Context,
    runs: Sequence[RunLike],
    apply: Callable[[Contact], None],
) -> Outcomes:
    """Actions with per-contact rules (list rejoin, status stickiness, field types)."""
    session = ctx.session
    ids = sorted({r.contact_id for r in runs})
    by_id = {
        c.id: c for c in session.scalars(select(Contact).where(in_values(session, Contact.id, ids)))
    }
    outcomes: Outcomes = {}
    for run in runs:
        contact = by_id.get(run.contact_id)
        if contact is None:
            outcomes[run.id] = (FAILED, "contact no longer exists")
            continue
        try:
            with session.begin_nested():
                apply(contact)
        except TidingsError as exc:
            outcomes[run.id] = (FAILED, exc.detail)
    ctx.activities += 1  # these services record their own activities
    return outcomes


def _list(ctx: Context, loaded: Loaded, step: d.ListAction, runs: Sequence[RunLike]) -> Outcomes:
    session, now = ctx.session, ctx.now
    if step.action == "subscribe_list":
        list_id = contacts.ensure_lists(session, [step.list], now)[step.list]
    else:
        found = session.scalar(select(MailingList.id).where(MailingList.name == step.list))
        if found is None:
            return {}
        list_id = found
    mailing_list = session.get(MailingList, list_id)
    assert mailing_list is not None
    if step.action == "subscribe_list":

        def apply(c: Contact) -> None:
            contacts.subscribe_list(session, c, mailing_list, now=now, cause=CAUSE)
    else:

        def apply(c: Contact) -> None:
            contacts.unsubscribe_list(session, c, mailing_list, now=now, cause=CAUSE)

    return _per_contact(ctx, runs, apply)


def _set_field(
    ctx: Context, loaded: Loaded, step: d.SetFieldAction, runs: Sequence[RunLike]
) -> Outcomes:
    now = ctx.now
    if step.field in contacts.PROFILE_ATTRIBUTES:

        def apply(c: Contact) -> None:
            contacts.update_contact(
                ctx.session, c, now=now, cause=CAUSE, profile={step.field: step.value}
            )
    else:

        def apply(c: Contact) -> None:
            contacts.update_contact(
                ctx.session, c, now=now, cause=CAUSE, fields={step.field: step.value}
            )

    return _per_contact(ctx, runs, apply)


def _set_status(
    ctx: Context, loaded: Loaded, step: d.SetStatusAction, runs: Sequence[RunLike]
) -> Outcomes:
    def apply(c: Contact) -> None:
        contacts.change_status(
            ctx.session, c, step.status.value, now=ctx.now, cause=CAUSE, reason=step.reason
        )

    return _per_contact(ctx, runs, apply)


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
    for contact_id in contact_ids:
        enrolment_id = ctx.started.get((automation_id, contact_id))
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
            del ctx.started[(automation_id, contact_id)]
        ctx.journal.count(automation_id, step, EXITED)
        ended.add(contact_id)
    return ended


HANDLERS: dict[type, Callable[..., Outcomes]] = {
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
