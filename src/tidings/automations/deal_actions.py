"""Deal actions, run set-wise for every run at the same step: add a deal, update a deal,
adjust a deal's score, add or complete a task, add a note.

They write through the deals package (tidings.deals: service, scoring, bulk_work), the one
writer of deals, tasks and notes, with its activities (cause "automation"), so a stage an
automation sets can start another automation in the same worker pass. A step acts on each
run's deal — "the triggered deal", or the deal an earlier add_deal of the run created —
unless it names another with `deal:` (the contact's newest deal that matches); a run with no
deal acts on its contact's newest open deal. A run with no deal to act on fails, with the
reason; the others pass.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.automations.actions import CAUSE, FAILED, Context, Outcomes
from tidings.automations.definition.deal_steps import (
    AddDealAction,
    AddNoteAction,
    AddTaskAction,
    AdjustDealScoreAction,
    CompleteTaskAction,
    DealSelector,
    Ref,
    RoundRobin,
    UpdateDealAction,
)
from tidings.automations.models import EngineState
from tidings.automations.registry import Loaded
from tidings.contacts.models import Contact
from tidings.db.bulk import dialect_insert, in_values
from tidings.deals import bulk_work, scoring
from tidings.deals.models import Deal, DealContact, User
from tidings.deals.refs import pipeline_is, stage_is
from tidings.deals.service import DealChange, create_deals, further_contacts, update_deals
from tidings.deals.validation import DealInput, DealState, Lookups, resolve
from tidings.errors import TidingsError

NO_DEAL = "no deal to act on"
OPEN_DEAL = DealSelector(status="open")


class DealRun(Protocol):
    id: int
    contact_id: int
    hops: int
    deal_id: int | None
    deal_set: bool


# ---- which deal a run acts on ---------------------------------------------------------------


def targets(ctx: Context, selector: DealSelector | None, runs: Sequence[DealRun]) -> dict[int, int]:
    """Run id -> the deal the step acts on (runs without one are absent)."""
    found: dict[int, int] = {}
    looking: list[DealRun] = []
    for run in runs:
        if selector is None and run.deal_id is not None:
            found[run.id] = run.deal_id
        else:
            looking.append(run)
    if looking:
        newest = newest_deals(ctx.session, [r.contact_id for r in looking], selector or OPEN_DEAL)
        found.update((r.id, newest[r.contact_id]) for r in looking if r.contact_id in newest)
    existing = set(
        ctx.session.scalars(
            select(Deal.id).where(in_values(ctx.session, Deal.id, sorted(set(found.values()))))
        )
    )
    return {run_id: deal for run_id, deal in found.items() if deal in existing}


def newest_deals(
    session: Session, contact_ids: Sequence[int], selector: DealSelector
) -> dict[int, int]:
    """Each contact's newest deal (primary or further contact) that the selector matches."""
    where = [in_values(session, DealContact.contact_id, sorted(set(contact_ids)))]
    if selector.pipeline is not None:
        where.append(pipeline_is(selector.pipeline))
    if selector.stage is not None:
        where.append(stage_is(selector.stage))
    if selector.status is not None:
        where.append(Deal.status == selector.status)
    rows = session.execute(
        select(DealContact.contact_id, func.max(Deal.id))
        .join(Deal, Deal.id == DealContact.deal_id)
        .where(*where)
        .group_by(DealContact.contact_id)
    )
    return {int(c): int(d) for c, d in rows}


def _no_deal(runs: Sequence[DealRun], found: dict[int, int]) -> Outcomes:
    return {r.id: (FAILED, NO_DEAL) for r in runs if r.id not in found}


def _all_failed(runs: Sequence[DealRun], detail: str) -> Outcomes:
    return {r.id: (FAILED, detail) for r in runs}


# ---- personalisation ------------------------------------------------------------------------

PLACEHOLDER = re.compile(r"\{\{\s*contact\.([a-z_][a-z0-9_]*)\s*\}\}")
PROFILE = ("email", "first_name", "last_name", "phone")


def personaliser(session: Session, text: str, contact_ids: Sequence[int]) -> Callable[[int], str]:
    """`{{ contact.first_name }}` (email, last_name, phone, a custom field) per contact: the
    contacts read once, only when the text has placeholders. Unknown or empty: nothing."""
    if not PLACEHOLDER.search(text):
        return lambda contact_id: text
    rows = session.execute(
        select(Contact.id, *(getattr(Contact, p) for p in PROFILE), Contact.fields).where(
            in_values(session, Contact.id, sorted(set(contact_ids)))
        )
    )
    values: dict[int, dict[str, Any]] = {}
    for row in rows:
        values[row[0]] = {**(row[-1] or {}), **dict(zip(PROFILE, row[1:-1], strict=True))}

    def render(contact_id: int) -> str:
        known = values.get(contact_id, {})
        return PLACEHOLDER.sub(lambda m: str(known.get(m.group(1)) or ""), text)

    return render


# ---- references by id or name ---------------------------------------------------------------


def _pipeline_id(lookups: Lookups, ref: Ref) -> int:
    for pipeline in lookups.pipelines.values():
        if pipeline.id == ref or (isinstance(ref, str) and _same(pipeline.name, ref)):
            return pipeline.id
    raise TidingsError(f"pipeline {ref!r} does not exist")


def _stage_id(lookups: Lookups, ref: Ref, pipeline_id: int | None) -> int:
    for stage in lookups.stages.values():
        if isinstance(ref, int):
            if stage.id == ref:
                return stage.id
        elif _same(stage.title, ref) and stage.pipeline_id == pipeline_id:
            return stage.id
    where = "" if isinstance(ref, int) else f" in pipeline {pipeline_id}"
    raise TidingsError(f"stage {ref!r} does not exist{where}")


def _user_id(lookups: Lookups, ref: Ref) -> int:
    for user in lookups.users.values():
        if user.id == ref or (isinstance(ref, str) and _same(user.email, ref)):
            return user.id
    raise TidingsError(f"user {ref!r} does not exist")


def _same(name: str, ref: str) -> bool:
    return name.casefold() == ref.strip().casefold()


# ---- the actions ----------------------------------------------------------------------------


def _add_deal(
    ctx: Context, loaded: Loaded, step: AddDealAction, runs: Sequence[DealRun]
) -> Outcomes:
    session, now = ctx.session, ctx.now
    contact_ids = [r.contact_id for r in runs]
    lookups = Lookups.load(session, contact_ids)
    try:
        pipeline_id = _pipeline_id(lookups, step.pipeline)
        stage_id = None if step.stage is None else _stage_id(lookups, step.stage, pipeline_id)
        owners = _owners(ctx, loaded, step, lookups, len(runs))
    except TidingsError as exc:
        return _all_failed(runs, exc.detail)
    title = personaliser(session, step.title, contact_ids)
    outcomes: Outcomes = {}
    states: list[tuple[DealRun, DealState]] = []
    for run, owner in zip(runs, owners, strict=True):
        item = DealInput(
            {"title", "value", "contact_id", "pipeline_id", "owner_id", "description"},
            title=title(run.contact_id) or step.title,
            value=step.value,
            contact_id=run.contact_id,
            pipeline_id=pipeline_id,
            owner_id=owner,
            description=step.description,
        )
        if stage_id is not None:
            item.given.add("stage_id")
            item.stage_id = stage_id
        if step.currency is not None:
            item.given.add("currency")
            item.currency = step.currency
        try:
            states.append((run, resolve(item, None, lookups, now=now)))
        except TidingsError as exc:
            outcomes[run.id] = (FAILED, exc.detail)
    ids = create_deals(session, [s for _, s in states], now=now, cause=CAUSE)
    ctx.activities += len(ids)
    for (run, _), deal_id in zip(states, ids, strict=True):
        if run.deal_id is None:  # the run's later deal steps act on the deal it created
            run.deal_id, run.deal_set = deal_id, True
    return outcomes


def _owners(
    ctx: Context, loaded: Loaded, step: AddDealAction, lookups: Lookups, count: int
) -> list[int | None]:
    owner = step.owner
    if owner == "round_robin":
        owner = RoundRobin()
    if not isinstance(owner, RoundRobin):
        return [None if owner is None else _user_id(lookups, owner)] * count
    named = [_user_id(lookups, ref) for ref in owner.round_robin]
    users = named or sorted(u.id for u in lookups.users.values() if u.active)
    if not users:
        raise TidingsError("no active user to give the deals to")
    start = _take_turns(ctx.session, f"round_robin:{loaded.automation_id}:{step.id}", count)
    return [users[(start + i) % len(users)] for i in range(count)]


def _take_turns(session: Session, key: str, count: int) -> int:
    """The next turn of a round robin, and `count` turns taken (kept in the engine's state,
    in the batch's transaction: a rolled-back batch takes no turns)."""
    current = session.scalar(select(EngineState.value).where(EngineState.key == key))
    start = int((current or {}).get("next", 0))
    value = {"next": start + count}
    session.execute(
        dialect_insert(session, EngineState)
        .values(key=key, value=value)
        .on_conflict_do_update(index_elements=["key"], set_={"value": value})
    )
    return start


def _update_deal(
    ctx: Context, loaded: Loaded, step: UpdateDealAction, runs: Sequence[DealRun]
) -> Outcomes:
    session, now = ctx.session, ctx.now
    found = targets(ctx, step.deal, runs)
    outcomes = _no_deal(runs, found)
    deal_ids = sorted(set(found.values()))
    deals = list(session.scalars(select(Deal).where(in_values(session, Deal.id, deal_ids))))
    further = further_contacts(session, deal_ids)
    lookups = Lookups.load(session, [])
    failed: dict[int, str] = {}
    changes: list[DealChange] = []
    for deal in deals:
        old = DealState.of(deal, further.get(deal.id, []))
        try:
            new = resolve(_deal_input(step, deal, lookups), old, lookups, now=now)
        except TidingsError as exc:
            failed[deal.id] = exc.detail
            continue
        changes.append(DealChange(deal, old, new))
    ctx.activities += update_deals(session, changes, now=now, cause=CAUSE)
    outcomes.update((r, (FAILED, failed[d])) for r, d in found.items() if d in failed)
    return outcomes


def _deal_input(step: UpdateDealAction, deal: Deal, lookups: Lookups) -> DealInput:
    item = DealInput()
    pipeline_id = deal.pipeline_id
    if step.pipeline is not None:
        pipeline_id = _pipeline_id(lookups, step.pipeline)
        item.given.add("pipeline_id")
        item.pipeline_id = pipeline_id
    if step.stage is not None:
        item.given.add("stage_id")
        item.stage_id = _stage_id(lookups, step.stage, pipeline_id)
    if step.status is not None:
        item.given.add("status")
        item.status = step.status
        if step.lost_reason is not None:
            item.given.add("lost_reason")
            item.lost_reason = step.lost_reason
    if step.owner is not None:
        item.given.add("owner_id")
        item.owner_id = _user_id(lookups, step.owner)
    for name in ("value", "title", "fields"):
        if getattr(step, name) is not None:
            item.given.add(name)
            setattr(item, name, getattr(step, name))
    return item


def _adjust_score(
    ctx: Context, loaded: Loaded, step: AdjustDealScoreAction, runs: Sequence[DealRun]
) -> Outcomes:
    found = targets(ctx, step.deal, runs)
    # Each run adjusts once: a deal two runs act on (two of its contacts) moves twice.
    times = Counter(found.values())
    by_times: dict[int, list[int]] = defaultdict(list)
    for deal_id, n in times.items():
        by_times[n].append(deal_id)
    for n, deal_ids in sorted(by_times.items()):
        scoring.adjust_scores(ctx.session, sorted(deal_ids), step.by * n, now=ctx.now, cause=CAUSE)
        ctx.activities += len(deal_ids)
    return _no_deal(runs, found)


def _add_task(
    ctx: Context, loaded: Loaded, step: AddTaskAction, runs: Sequence[DealRun]
) -> Outcomes:
    session, now = ctx.session, ctx.now
    found = targets(ctx, step.deal, runs)
    outcomes = _no_deal(runs, found)
    acting = [r for r in runs if r.id in found]
    owners = dict(
        session.execute(
            select(Deal.id, Deal.owner_id)
            .join(User, User.id == Deal.owner_id)
            .where(in_values(session, Deal.id, sorted(set(found.values()))), User.active)
        ).all()
    )
    title = personaliser(session, step.title, [r.contact_id for r in acting])
    due = None if step.due_in_days is None else now + timedelta(days=step.due_in_days)
    try:
        assignee = None
        if step.assignee is not None and step.assignee != "owner":
            assignee = _user_id(Lookups.load(session, []), step.assignee)
        tasks = [
            bulk_work.NewTask(
                found[r.id],
                title(r.contact_id) or step.title,
                due,
                owners.get(found[r.id]) if step.assignee == "owner" else assignee,
            )
            for r in acting
        ]
        ids = bulk_work.add_tasks(
            session, tasks, type_name=step.type, note=step.note, now=now, cause=CAUSE
        )
    except TidingsError as exc:
        return _all_failed(runs, exc.detail)
    ctx.activities += len(ids)
    return outcomes


def _complete_task(
    ctx: Context, loaded: Loaded, step: CompleteTaskAction, runs: Sequence[DealRun]
) -> Outcomes:
    found = targets(ctx, step.deal, runs)
    done = bulk_work.complete_tasks(
        ctx.session,
        sorted(set(found.values())),
        type_name=step.type,
        title=step.title,
        now=ctx.now,
        cause=CAUSE,
    )
    ctx.activities += len(done)
    return _no_deal(runs, found)


def _add_note(
    ctx: Context, loaded: Loaded, step: AddNoteAction, runs: Sequence[DealRun]
) -> Outcomes:
    found = targets(ctx, step.deal, runs)
    acting = [r for r in runs if r.id in found]
    body = personaliser(ctx.session, step.body, [r.contact_id for r in acting])
    notes = [(found[r.id], body(r.contact_id) or step.body) for r in acting]
    ctx.activities += len(bulk_work.add_notes(ctx.session, notes, now=ctx.now, cause=CAUSE))
    return _no_deal(runs, found)


HANDLERS: dict[type, Callable[..., Outcomes]] = {
    AddDealAction: _add_deal,
    UpdateDealAction: _update_deal,
    AdjustDealScoreAction: _adjust_score,
    AddTaskAction: _add_task,
    CompleteTaskAction: _complete_task,
    AddNoteAction: _add_note,
}
