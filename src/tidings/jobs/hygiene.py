"""The hygiene job: delete a segment's contacts (with their tags, memberships, automation
runs and events), suppress their addresses or domains, or erase one contact on request.

Deleting goes in batches of TIDINGS_JOB_BATCH_SIZE contacts, each ONE transaction with the
run's checkpoint: a run killed mid-way has deleted whole batches and resumes with the
contacts still in the segment. Every hygiene run writes one audit row (who asked, when,
why, what and how many - no address, no name, no contact id) in the transaction of its last
effect. A segment that matches every contact is refused unless the spec says
`confirm_all: true`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause, delete_of_contacts
from tidings.automations.forget import forget_contacts as forget_runs
from tidings.config import Settings
from tidings.contacts import service as contacts
from tidings.contacts.erasure import contact_to_erase, erase_contact
from tidings.contacts.models import Contact
from tidings.contacts.suppressions import suppress_contacts
from tidings.errors import field_error
from tidings.jobs.common import segment_where
from tidings.jobs.context import JobContext, Outcome
from tidings.jobs.models import HygieneAudit
from tidings.jobs.specs import HygieneSpec
from tidings.messaging.forget import forget_contacts as forget_mail


def _count(session: Session, where: ColumnElement[bool] | None) -> int:
    query = select(func.count()).select_from(Contact)
    if where is not None:
        query = query.where(where)
    return int(session.scalar(query) or 0)


def check(session: Session, spec: HygieneSpec, settings: Settings, now: datetime) -> None:
    if spec.action == "erase":
        contact_to_erase(session, spec.email or "")
        return
    where = segment_where(session, spec.segment, now)
    if spec.action != "delete" or spec.confirm_all:
        return
    matched = _count(session, where)
    if matched and matched == _count(session, None):
        raise field_error(
            "confirm_all",
            f"the segment matches every contact ({matched}); set confirm_all: true to "
            "delete them all",
        )


def run(ctx: JobContext) -> Outcome:
    spec = ctx.spec
    assert isinstance(spec, HygieneSpec)
    if not ctx.state.get("audited"):
        if spec.action == "delete":
            _delete(ctx, spec)
        elif spec.action == "erase":
            _erase(ctx, spec)
        else:
            _suppress(ctx, spec)
    return Outcome(_summary(spec, ctx.written))


def _summary(spec: HygieneSpec, count: int) -> str:
    return {
        "delete": f"{count} contacts deleted",
        "erase": f"{count} contact erased, its address suppressed by hash",
        "suppress_addresses": f"{count} addresses suppressed",
        "suppress_domains": f"{count} domains suppressed",
    }[spec.action]


def _audit(ctx: JobContext, session: Session, spec: HygieneSpec, count: int) -> None:
    session.add(
        HygieneAudit(
            run_id=ctx.run_id,
            action=spec.action,
            requested_by=ctx.requested_by,
            reason=spec.reason,
            contacts=count,
            at=ctx.now(),
        )
    )
    ctx.checkpoint(session, audited=True)


def _delete(ctx: JobContext, spec: HygieneSpec) -> None:
    if not ctx.state.get("checked"):
        with ctx.database.session() as session:
            check(session, spec, ctx.settings, ctx.now())
            where = segment_where(session, spec.segment, ctx.now())
            ctx.progress(0, _count(session, where))
            ctx.checkpoint(session, checked=True)
    batch = ctx.settings.job_batch_size
    while True:
        with ctx.database.session() as session:
            where = segment_where(session, spec.segment, ctx.now())
            ids = list(
                session.scalars(select(Contact.id).where(where).order_by(Contact.id).limit(batch))
            )
            if ids:
                forget_runs(session, ids)
                delete_of_contacts(session, ids)
                gone = contacts.delete_contacts(
                    session, ids, cause=Cause.SYSTEM, now=ctx.now(), anonymous=True
                )
                ctx.read += len(ids)
                ctx.written += len(gone)
                ctx.progress(ctx.written)
                ctx.checkpoint(session)
            else:
                _audit(ctx, session, spec, ctx.written)
                return


def _suppress(ctx: JobContext, spec: HygieneSpec) -> None:
    with ctx.database.session() as session:
        where = segment_where(session, spec.segment, ctx.now())
        ctx.read = _count(session, where)
        ctx.written = suppress_contacts(
            session,
            select(Contact.id).where(where),
            domains=spec.action == "suppress_domains",
            now=ctx.now(),
            reason=spec.reason,
        )
        ctx.skipped = max(ctx.read - ctx.written, 0) if spec.action == "suppress_addresses" else 0
        ctx.progress(ctx.read, ctx.read)
        _audit(ctx, session, spec, ctx.read)


def _erase(ctx: JobContext, spec: HygieneSpec) -> None:
    with ctx.database.session() as session:
        _, contact_id = contact_to_erase(session, spec.email or "")
        if contact_id is not None:
            forget_runs(session, [contact_id])
            forget_mail(session, [contact_id])
        ctx.read = 1
        ctx.written = erase_contact(session, spec.email or "", now=ctx.now(), cause=Cause.SYSTEM)
        ctx.progress(1, 1)
        _audit(ctx, session, spec, ctx.written)
