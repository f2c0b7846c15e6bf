"""The step interpreter: where each run of a batch goes next, decided set-wise.

Runs are grouped by (automation, version, step) and each group is handed to its step's handler
at once: a wait sets the wake time, if/else and goals ask the condition's SQL once for the
whole group, a split hashes each contact, goto and end move the group, and an action is one
set-wise call of its handler in tidings.automations.actions. Moving a run records the step's
outcome in the transaction's journal (history and counts). A group keeps moving until every
run waits, ends or has taken MAX_HOPS steps in this batch.

Step kinds plug in at one place each: control steps in `STEPS` below, actions in
`actions.HANDLERS` and `deal_actions.HANDLERS` (everything that is not a control step is an
action).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, select

from tidings.automations import actions, deal_actions
from tidings.automations import definition as d
from tidings.automations.actions import FAILED, PASSED, Context, Outcomes
from tidings.automations.enrolments import ACTIVE, COMPLETED, EXITED
from tidings.automations.registry import Loaded
from tidings.automations.runs import Run, end, started
from tidings.contacts.models import Contact
from tidings.db.bulk import in_values, rows_select
from tidings.db.types import UTCDateTime
from tidings.segments import condition_sql, has_events
from tidings.segments.sql import asks_about_triggered_deal

MAX_HOPS = 200  # steps one enrolment may run in one batch before yielding (no wait in a loop)

# A step's handler moves (some of) the group on and returns how many step executions it ran.
StepHandler = Callable[[Context, Loaded, Any, list[Run]], int]


def advance(ctx: Context, runs: list[Run]) -> int:
    """Goals first, then steps until every run (and every run started on the way, which joins
    `runs`) waits or ends; returns the step executions."""
    check_goals(ctx, runs)
    executed = _run_steps(ctx, runs)
    _settle_exited(ctx, runs)
    return executed


def check_status(ctx: Context, runs: list[Run]) -> None:
    """Runs whose contact was deleted, or whose status the automation does not allow (any
    more), are exited before they run a step."""
    allowed: dict[tuple[int, int], frozenset[str]] = {}
    for run in runs:
        status = run.contact_status
        key = (run.automation_id, run.version)
        if key not in allowed:
            allowed[key] = ctx.registry.version(ctx.session, run.automation_id, run.version).allowed
        if status is None:
            end(run, EXITED, ctx.now, "contact deleted")
        elif status not in allowed[key]:
            reason = f"status {status} is not allowed in this automation"
            end(run, EXITED, ctx.now, reason)
            ctx.journal.count(run.automation_id, run.step, EXITED)


def check_goals(ctx: Context, runs: list[Run]) -> None:
    """A goal that holds takes its run to `jump_to` (once per enrolment)."""
    groups: dict[tuple[int, int], list[Run]] = defaultdict(list)
    for run in runs:
        if run.moving:
            groups[(run.automation_id, run.version)].append(run)
    for (automation_id, version), group in groups.items():
        loaded = ctx.registry.version(ctx.session, automation_id, version)
        for goal in loaded.definition.goals:
            candidates = [r for r in group if r.moving and goal.id not in r.goals_hit]
            hits = holding(ctx, goal.when, candidates, since_entry=goal.since_entry)
            for run in candidates:
                if run.id not in hits:
                    continue
                run.goals_hit = [*run.goals_hit, goal.id]
                move(ctx, automation_id, run.step, [run], goal.jump_to, "goal", goal.id)


def holding(
    ctx: Context, condition: Any, runs: list[Run], *, since_entry: bool = False
) -> set[int]:
    """The runs (their ids) for which the condition holds now: one query.

    `since_entry`: events count only when they occurred after the run entered. Each run's
    entry time goes into the query beside its contact (a VALUES list), and the condition's
    event atoms are bounded by it: still one query for the group, however many entry times.
    A condition about the triggered deal gets each run's deal beside its contact the same
    way. (A run is its contact and deal: a contact has one run per automation version and
    deal.)"""
    if not runs:
        return set()
    session = ctx.session
    ids = sorted({r.contact_id for r in runs})
    bounded = since_entry and has_events(condition)
    if bounded or asks_about_triggered_deal(condition):
        each = rows_select(
            session,
            [
                ("contact_id", BigInteger()),
                ("entered_at", UTCDateTime()),
                ("deal_id", BigInteger()),
            ],
            list(dict.fromkeys((r.contact_id, r.entered_at, r.deal_id) for r in runs)),
        ).subquery("runs")
        query = (
            select(each.c.contact_id, each.c.deal_id)
            .select_from(each.join(Contact, Contact.id == each.c.contact_id))
            .where(
                # The ids again, as a list: PostgreSQL's planner then reads these contacts by
                # their key rather than hashing the table for the join.
                in_values(session, Contact.id, ids),
                condition_sql(
                    condition,
                    ctx.now,
                    after=each.c.entered_at if bounded else None,
                    deal=each.c.deal_id,
                ),
            )
        )
        found = {(c, d) for c, d in session.execute(query)}
        return {r.id for r in runs if (r.contact_id, r.deal_id) in found}
    query = select(Contact.id).where(
        in_values(session, Contact.id, ids), condition_sql(condition, ctx.now)
    )
    contacts = set(session.scalars(query))
    return {r.id for r in runs if r.contact_id in contacts}


def move(
    ctx: Context,
    automation_id: int,
    step_id: str,
    runs: list[Run],
    to: str,
    outcome: str = PASSED,
    detail: str | None = None,
) -> None:
    """These runs leave `step_id` for `to` with the same outcome (recorded for each)."""
    ctx.journal.add_all(runs, automation_id, step_id, outcome, detail)
    for run in runs:
        run.hops += 1
        run.wait_until = None
    if to == d.END:
        for run in runs:
            end(run, COMPLETED, ctx.now, None)
    else:
        for run in runs:
            run.step = to


def move_each(
    ctx: Context,
    automation_id: int,
    step_id: str,
    moves: Sequence[tuple[Run, str, str, str | None]],
) -> None:
    """Runs leaving `step_id` each its own way: (run, to, outcome, detail), grouped."""
    ways: dict[tuple[str, str, str | None], list[Run]] = defaultdict(list)
    for run, to, outcome, detail in moves:
        ways[(to, outcome, detail)].append(run)
    for (to, outcome, detail), runs in ways.items():
        move(ctx, automation_id, step_id, runs, to, outcome, detail)


def _run_steps(ctx: Context, runs: list[Run]) -> int:
    executed = 0
    moving = [run for run in runs if run.moving]  # shrinks as runs stop: waits, ends
    for _ in range(MAX_HOPS):
        moving.extend(_take_entered(ctx, runs))
        groups: dict[tuple[int, int, str], list[Run]] = defaultdict(list)
        for run in moving:
            if run.moving and run.id in ctx.exited:
                end(run, EXITED, ctx.now, ctx.exited[run.id])
            if run.moving:
                groups[(run.automation_id, run.version, run.step)].append(run)
        if not groups:
            return executed
        for (automation_id, version, step_id), group in groups.items():
            group = [r for r in group if r.id not in ctx.exited]
            if not group:
                continue
            loaded = ctx.registry.version(ctx.session, automation_id, version)
            executed += run_step(ctx, loaded, step_id, group)
        moving = [run for group in groups.values() for run in group if run.moving]
    for run in runs:  # a long chain of instant steps: continue in the next batch
        if run.moving:
            run.moving, run.wake_at = False, ctx.now
    return executed


def _take_entered(ctx: Context, runs: list[Run]) -> list[Run]:
    """The enrolments started so far in this transaction join the runs, at their first step
    (their goals checked first, as for a claimed run); returns them."""
    if not ctx.entered:
        return []
    fresh = started(ctx.entered)
    ctx.entered.clear()
    runs.extend(fresh)
    for run in fresh:
        ctx.started_runs[run.id] = run
        if run.id in ctx.exited:  # exited before it ran a step
            end(run, EXITED, ctx.now, ctx.exited[run.id])
    check_goals(ctx, fresh)
    return fresh


def _settle_exited(ctx: Context, runs: list[Run]) -> None:
    """Runs that another automation exited after they moved in this batch stay exited
    (the SQL exit happened in this transaction; the write-back must not undo it)."""
    for run in runs:
        if run.id in ctx.exited and run.state == ACTIVE:
            end(run, EXITED, ctx.now, ctx.exited[run.id])


def run_step(ctx: Context, loaded: Loaded, step_id: str, group: list[Run]) -> int:
    """Run one step for a group of runs standing in it; returns the step executions."""
    definition = loaded.definition
    if step_id == d.END or not definition.has_step(step_id):
        for run in group:
            reason = None if step_id == d.END else f"step {step_id!r} no longer exists"
            end(run, COMPLETED if step_id == d.END else FAILED, ctx.now, reason)
        return 0
    step = definition.step(step_id)
    return STEPS.get(type(step), _action)(ctx, loaded, step, group)


# --- the step kinds ------------------------------------------------------------------------


def _end_step(ctx: Context, loaded: Loaded, step: d.EndStep, group: list[Run]) -> int:
    move(ctx, loaded.automation_id, step.id, group, d.END)
    return len(group)


def _goto(ctx: Context, loaded: Loaded, step: d.GotoStep, group: list[Run]) -> int:
    move(ctx, loaded.automation_id, step.id, group, step.goto)
    return len(group)


def _if(ctx: Context, loaded: Loaded, step: d.IfStep, group: list[Run]) -> int:
    aid, following = loaded.automation_id, loaded.definition.next_of(step.id)
    holds = holding(ctx, step.if_, group)
    yes = [r for r in group if r.id in holds]
    no = [r for r in group if r.id not in holds]
    move(ctx, aid, step.id, yes, step.then or following, PASSED, "then")
    move(ctx, aid, step.id, no, step.else_ or following, PASSED, "else")
    return len(group)


def _split(ctx: Context, loaded: Loaded, step: d.SplitStep, group: list[Run]) -> int:
    aid = loaded.automation_id
    moves = []
    for run in group:
        to = split_branch(aid, run.contact_id, step).to
        moves.append((run, to, PASSED, f"to {to}"))
    move_each(ctx, aid, step.id, moves)
    return len(group)


def _action(ctx: Context, loaded: Loaded, step: Any, group: list[Run]) -> int:
    # A failed action does not stop the run: it is recorded and the run continues, like
    # ActiveCampaign's "skip" policy (a refused send is recorded the same way).
    aid, following = loaded.automation_id, loaded.definition.next_of(step.id)
    outcomes: Outcomes = ACTIONS[type(step)](ctx, loaded, step, group)
    if outcomes:
        move_each(
            ctx,
            aid,
            step.id,
            [
                (
                    run,
                    _target(step, outcomes, run, following),
                    *outcomes.get(run.id, (PASSED, None)),
                )
                for run in group
            ],
        )
    else:
        move(ctx, aid, step.id, group, following)
    return len(group)


def _target(step: Any, outcomes: Outcomes, run: Run, following: str) -> str:
    """An action's branch on its outcome: assign_coupon's `empty` when the pool was empty."""
    empty = getattr(step, "empty", None)
    if empty and outcomes.get(run.id, (PASSED, None))[0] == actions.EMPTY:
        return str(empty)
    return following


def _wait(ctx: Context, loaded: Loaded, step: d.WaitStep, group: list[Run]) -> int:
    now, wait = ctx.now, step.wait
    aid, following = loaded.automation_id, loaded.definition.next_of(step.id)
    deadline = _deadline(wait, now)
    for run in group:
        if run.wait_until is None:
            run.wait_until = deadline(run)
    held: list[Run] = []
    if wait.condition is not None:
        holds = holding(ctx, wait.condition, group, since_entry=wait.since_entry)
        held = [r for r in group if r.id in holds]
        move(ctx, aid, step.id, held, following, PASSED, "condition held")
        group = [r for r in group if r.id not in holds]
    over: list[Run] = []
    for run in group:
        assert run.wait_until is not None
        if now >= run.wait_until:
            over.append(run)
        else:
            run.moving, run.wake_at = False, run.wait_until
    if wait.condition is not None:
        to = wait.on_timeout or following
        move(ctx, aid, step.id, over, to, "timed_out", "time limit reached")
        return len(over) + len(held)
    move(ctx, aid, step.id, over, following)
    return len(over)


def _deadline(wait: d.Wait, now: datetime) -> Callable[[Run], datetime]:
    """When a run that starts this wait now may leave it (worked out once per group)."""
    if wait.until is not None:
        until = wait.until
        return lambda run: until
    if wait.after_entry is not None:
        after = wait.after_entry.delta
        return lambda run: run.entered_at + after
    if wait.condition is not None:
        assert wait.timeout is not None
        limit = now + wait.timeout.delta
        return lambda run: limit
    duration = wait.duration
    assert duration is not None
    end_ = now + duration
    return lambda run: end_


def split_branch(automation_id: int, contact_id: int, step: d.SplitStep) -> d.Branch:
    """Deterministic per (automation, contact, step): stable as long as the percentages are."""
    digest = hashlib.sha256(f"{automation_id}:{contact_id}:{step.id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * 100
    bound = 0.0
    for branch in step.split:
        bound += branch.percent
        if point < bound:
            return branch
    return step.split[-1]


# Every other step is an action: contact actions and deal actions by model.
ACTIONS = {**actions.HANDLERS, **deal_actions.HANDLERS}

# Control steps by model; every other step is an action (ACTIONS above).
STEPS: dict[type[Any], StepHandler] = {
    d.WaitStep: _wait,
    d.EndStep: _end_step,
    d.GotoStep: _goto,
    d.IfStep: _if,
    d.SplitStep: _split,
}
