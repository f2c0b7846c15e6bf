"""The sender's side of the outbox table: claim due rows with a lease, take leases back,
record the outcome of each delivery (sent, deferred with backoff, failed) with its activity.

Each function is one transaction of its own (the database steps of the pipeline, run in a
thread). A row in `sending` was never handed over; a row in `delivering` was (its final dot
was about to be written): a stopped sender's `delivering` rows count as sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session

from tidings.activities.service import ActivityRow, Cause, record_many
from tidings.contacts.models import Contact
from tidings.contacts.repository import suppressed_condition
from tidings.db.bulk import in_values
from tidings.db.engine import Database
from tidings.messaging.models import EmailTemplate, OutboxMessage
from tidings.messaging.outbox import EmailActivity, OutboxStatus
from tidings.messaging.policy_sql import refusal_of
from tidings.messaging.templates import CONTACT_FIELDS, context_of
from tidings.messaging.transport import SmtpResult
from tidings.retry import backoff

ST = OutboxStatus
DUE_STATUSES = (ST.QUEUED, ST.DEFERRED, ST.SENDING)


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    contact_id: int
    email: str
    contact: dict[str, Any]
    template_id: int
    message_class: str
    context: dict[str, Any]
    token: str
    attempts: int
    broadcast_id: int | None


@dataclass(slots=True)
class Outcome:
    job: Job
    result: SmtpResult


# Called with the outcomes of hard failures at RCPT, in record_outcomes' transaction (the
# bounce handling, wired in where the sender is assembled).
OnHardFailure = Callable[[Session, Sequence[Outcome], datetime], None]


@dataclass(slots=True)
class RunStats:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    refused: int = 0
    aborted: int = 0
    recovered: int = 0

    def add(self, other: RunStats) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def refuse(session: Session, rows: Sequence[tuple[int, int, str]], now: datetime) -> None:
    """rows: (outbox id, contact id, reason)."""
    if not rows:
        return
    session.execute(
        update(OutboxMessage),
        [
            {
                "id": oid,
                "status": ST.REFUSED,
                "reason": f"at send time: {reason}",
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
            }
            for oid, _, reason in rows
        ],
    )
    record_many(
        session,
        [
            ActivityRow(
                cid, EmailActivity.REFUSED, Cause.SYSTEM, now, {"outbox_id": oid, "reason": reason}
            )
            for oid, cid, reason in rows
        ],
    )


def release_own_leases(db: Database, worker_id: str, now: datetime) -> int:
    """At start: rows this worker id held when it last stopped are taken back at once."""
    with db.session() as session:
        recovered = _recover_delivering(session, now, OutboxMessage.lease_owner == worker_id)
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.lease_owner == worker_id, OutboxMessage.status == ST.SENDING)
            .values(lease_owner=None, lease_until=None, updated_at=now)
        )
    return recovered


def _recover_delivering(session: Session, now: datetime, which: Any) -> int:
    """`delivering` rows whose sender stopped: the final dot was (about to be) written."""
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.contact_id, OutboxMessage.broadcast_id).where(
            OutboxMessage.status == ST.DELIVERING, which
        )
    ).all()
    if not rows:
        return 0
    session.execute(
        update(OutboxMessage),
        [
            {
                "id": r.id,
                "status": ST.SENT,
                "sent_at": now,
                "reason": "handed over; the sender stopped before reading the reply",
                "lease_owner": None,
                "lease_until": None,
                "updated_at": now,
            }
            for r in rows
        ],
    )
    record_many(
        session,
        [
            ActivityRow(
                r.contact_id,
                EmailActivity.SENT,
                Cause.SYSTEM,
                now,
                {"outbox_id": r.id, "broadcast_id": r.broadcast_id, "unconfirmed": True},
            )
            for r in rows
        ],
    )
    return len(rows)


def claim(
    db: Database, *, now: datetime, worker_id: str, limit: int, lease: timedelta
) -> tuple[list[Job], dict[int, EmailTemplate], RunStats]:
    stats = RunStats()
    with db.session() as session:
        stats.recovered = _recover_delivering(session, now, OutboxMessage.lease_until < now)
        due = (
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status.in_(DUE_STATUSES),
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
        due = db.dialect.claim(due)
        ids = list(session.scalars(due))
        if not ids:
            return [], {}, stats
        # Columns, not Contact entities: loading a thousand ORM objects cost more than the
        # rest of the claim.
        contact_columns = [getattr(Contact, key).label(f"c_{key}") for key in CONTACT_FIELDS]
        rows = session.execute(
            select(
                OutboxMessage.id,
                OutboxMessage.contact_id,
                OutboxMessage.template_id,
                OutboxMessage.message_class,
                OutboxMessage.context,
                OutboxMessage.message_id,
                OutboxMessage.attempts,
                OutboxMessage.broadcast_id,
                *contact_columns,
                Contact.fields.label("c_fields"),
                suppressed_condition(Contact.email).label("suppressed"),
            )
            .outerjoin(Contact, Contact.id == OutboxMessage.contact_id)
            .where(in_values(session, OutboxMessage.id, ids))
            .order_by(OutboxMessage.id)
        ).all()
        jobs: list[Job] = []
        refused: list[tuple[int, int, str]] = []
        # Unpacked by position: per row, access by name cost more than the query.
        for (
            oid,
            contact_id,
            template_id,
            message_class,
            context,
            message_id,
            attempts,
            broadcast_id,
            *standard,
            custom,
            suppressed,
        ) in rows:
            contact = dict(zip(CONTACT_FIELDS, standard, strict=True))
            reason = refusal_of(contact["status"], message_class, bool(suppressed))
            if reason is not None:
                refused.append((oid, contact_id, reason))
                continue
            jobs.append(
                Job(
                    id=oid,
                    contact_id=contact_id,
                    email=contact["email"],
                    contact=context_of(contact, custom),
                    template_id=template_id,
                    message_class=message_class,
                    context=context or {},
                    token=message_id,
                    attempts=attempts + 1,
                    broadcast_id=broadcast_id,
                )
            )
        refuse(session, refused, now)
        stats.refused = len(refused)
        if jobs:
            session.execute(
                update(OutboxMessage)
                .where(in_values(session, OutboxMessage.id, [j.id for j in jobs]))
                .values(
                    status=ST.SENDING,
                    lease_owner=worker_id,
                    lease_until=now + lease,
                    attempts=OutboxMessage.attempts + 1,
                    updated_at=now,
                )
            )
        template_ids = {j.template_id for j in jobs}
        templates = {
            t.id: t
            for t in session.scalars(
                select(EmailTemplate).where(EmailTemplate.id.in_(template_ids))
            )
        }
        session.expunge_all()
    return jobs, templates, stats


def record_outcomes(
    db: Database,
    outcomes: Sequence[Outcome],
    *,
    now: datetime,
    max_attempts: int,
    retry_base: timedelta,
    on_hard_failure: OnHardFailure | None = None,
) -> RunStats:
    stats = RunStats()
    updates: list[dict[str, Any]] = []
    activities: list[ActivityRow] = []
    hard: list[Outcome] = []
    for outcome in outcomes:
        job, result = outcome.job, outcome.result
        data: dict[str, Any] = {"outbox_id": job.id, "broadcast_id": job.broadcast_id}
        if result.ok:
            stats.sent += 1
            updates.append(
                {
                    "id": job.id,
                    "status": ST.SENT,
                    "sent_at": now,
                    "reason": None,
                    "recipient": job.email,
                }
            )
            activities.append(
                ActivityRow(job.contact_id, EmailActivity.SENT, Cause.SYSTEM, now, data)
            )
            continue
        reason = f"{result.stage}: {result.code} {result.message}".strip()
        data["reason"] = reason
        if result.permanent or job.attempts >= max_attempts:
            stats.failed += 1
            if not result.permanent:
                reason = f"gave up after {job.attempts} attempts; last: {reason}"
                data["reason"] = reason
            updates.append({"id": job.id, "status": ST.FAILED, "reason": reason})
            activities.append(
                ActivityRow(job.contact_id, EmailActivity.FAILED, Cause.SYSTEM, now, data)
            )
            if result.permanent and result.stage == "rcpt":
                hard.append(outcome)
        else:
            stats.deferred += 1
            retry_at = now + backoff(job.attempts, retry_base)
            data["retry_at"] = retry_at.isoformat()
            updates.append(
                {"id": job.id, "status": ST.DEFERRED, "reason": reason, "next_attempt_at": retry_at}
            )
            activities.append(
                ActivityRow(job.contact_id, EmailActivity.DEFERRED, Cause.SYSTEM, now, data)
            )
    if not updates:
        return stats
    with db.session() as session:
        # executemany groups rows by their key set: keep one key set per status.
        for row in updates:
            row.setdefault("lease_owner", None)
            row.setdefault("lease_until", None)
            row["updated_at"] = now
        by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in updates:
            by_keys.setdefault(tuple(sorted(row)), []).append(row)
        for keys, rows in by_keys.items():
            _update_by_id(session, keys, rows)
        record_many(session, activities)
        if hard and on_hard_failure is not None:
            on_hard_failure(session, hard, now)
    return stats


def _update_by_id(session: Session, keys: Sequence[str], rows: list[dict[str, Any]]) -> None:
    """UPDATE outbox ... WHERE id = :id for rows of the same keys, as one Core executemany
    (the ORM's bulk update by primary key spent more on bookkeeping than SQLite on the rows)."""
    table = OutboxMessage.__table__
    values: dict[str, Any] = {key: bindparam(f"v_{key}") for key in keys if key != "id"}
    statement = update(table).where(table.c.id == bindparam("v_id")).values(values)  # type: ignore[arg-type]
    session.execute(statement, [{f"v_{key}": value for key, value in r.items()} for r in rows])
