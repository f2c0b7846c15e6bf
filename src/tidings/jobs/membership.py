"""The membership job: add a segment's contacts to a list, remove them from it, or
unsubscribe them (their status) - what `tidings lists add-segment` does, as a job.

Set-based through the contacts write API (one statement per kind of change, however many
contacts), in ONE transaction with the run's checkpoint: done once, or not at all.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.config import Settings
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.jobs.common import list_id, segment_where
from tidings.jobs.context import JobContext, Outcome
from tidings.jobs.specs import MembershipSpec
from tidings.segments.lists import add_segment_to_list, remove_segment_from_list


def check(session: Session, spec: MembershipSpec, settings: Settings, now: datetime) -> None:
    segment_where(session, spec.segment, now)
    if spec.list:
        list_id(session, spec.list)


def run(ctx: JobContext) -> Outcome:
    spec = ctx.spec
    assert isinstance(spec, MembershipSpec)
    if ctx.state.get("done"):
        return _summary(spec, ctx)
    now = ctx.now()
    with ctx.database.session() as session:
        where = segment_where(session, spec.segment, now)
        matched = int(session.scalar(select(func.count()).select_from(Contact).where(where)) or 0)
        if spec.action == "unsubscribe":
            changes = contacts.set_status(
                session,
                select(Contact.id).where(where),
                "unsubscribed",
                cause=Cause.SYSTEM,
                now=now,
                reason=f"job run {ctx.run_id}",
            )
            changed = len(changes.changed)
        else:
            target = list_id(session, spec.list or "")
            change = add_segment_to_list if spec.action == "add" else remove_segment_from_list
            changed = change(session, target, where, now=now, cause=Cause.SYSTEM).changed
        ctx.read, ctx.written, ctx.skipped = matched, changed, matched - changed
        ctx.progress(matched, matched)
        ctx.checkpoint(session, done=True)
    return _summary(spec, ctx)


def _summary(spec: MembershipSpec, ctx: JobContext) -> Outcome:
    what = {
        "add": f"subscribed to {spec.list}",
        "remove": f"unsubscribed from {spec.list}",
        "unsubscribe": "unsubscribed",
    }[spec.action]
    return Outcome(f"{ctx.written} of {ctx.read} contacts {what}")
