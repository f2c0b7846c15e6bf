"""The outbox sender: claims due rows with a lease, checks the policy again, renders, signs and
delivers them over a few long-lived SMTP connections, and records the outcome as activities.

Exactly once, step by step:
1. claim (one transaction): due rows -> `sending`, leased to this worker (PostgreSQL:
   FOR UPDATE SKIP LOCKED, so several senders share the work; SQLite: one writer at a time).
2. per message, over SMTP: MAIL, RCPT, DATA (354); then ONE transaction, shared by the
   connections that reach this point together (a group waits a couple of milliseconds for the
   messages already on their way), runs one UPDATE that checks the lease and the contact's
   status and suppression once more and moves the row to `delivering`; right after its
   commit, in the same synchronous stretch, the body and the final dot go out in one write.
   The policy is thus checked per message at its last moment, not per batch.
3. the server's reply moves the row to `sent` / `deferred` / `failed` (batched).
A sender killed at any point leaves rows in `sending` (never handed over: sent again) or
`delivering` (handed over: counted as sent); see transport.py for the reasoning.

Throughput: messages are composed a few chunks ahead of the connections (rendering in the
loop's thread, the RSA steps of a whole chunk in one pool call), the SMTP transaction skips
aiosmtplib's per-command overhead, and the pre-dot statement runs on a kept DBAPI connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import multiprocessing
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import (
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from tidings.activities.service import ActivityRow, Cause, record_many
from tidings.auth.signing import signing_keys
from tidings.clock import Clock
from tidings.config import Settings
from tidings.contacts.models import Contact
from tidings.contacts.policy import MessageClass, may_send
from tidings.contacts.repository import suppressed_condition
from tidings.db.bulk import in_values
from tidings.db.engine import Database
from tidings.errors import ValidationFailed
from tidings.messaging.compose import Headers, build_message
from tidings.messaging.dkim import DkimSigner, signer_from_settings
from tidings.messaging.links import LinkSigner
from tidings.messaging.models import EmailTemplate, OutboxMessage
from tidings.messaging.outbox import EmailActivity, OutboxStatus
from tidings.messaging.service import source_of
from tidings.messaging.templates import CONTACT_FIELDS, CompiledTemplate, context_of
from tidings.messaging.tracking import TokenMaker, Tracker
from tidings.messaging.transport import (
    SmtpConfig,
    SmtpConnection,
    SmtpResult,
    WriteDot,
    parse_smtp_url,
)

ST = OutboxStatus
# Messages are composed in chunks (eight per connection: one pool call signs a chunk), a few
# chunks ahead of the connections. Each pool call wakes a worker thread and each result wakes
# the event loop, and on a busy machine those hand-offs cost the loop's thread more than the
# composing itself: with two messages per connection they took a tenth of its time.
_CHUNK_PER_CONNECTION = 8
_CHUNKS_AHEAD = 3
log = logging.getLogger(__name__)
MARKETING = frozenset({MessageClass.CAMPAIGN, MessageClass.AUTOMATION})
DUE_STATUSES = (ST.QUEUED, ST.DEFERRED, ST.SENDING)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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


@dataclass
class SenderOptions:
    mail_from: str
    base_url: str
    secret: str | Sequence[str]  # one key, or the keys oldest first (the last signs)
    smtp: SmtpConfig
    bounce_domain: str | None = None
    unsubscribe_mailto: str | None = None
    dkim: DkimSigner | None = None
    dkim_domain_selector: tuple[str, str] | None = None  # internal: rebuilds dkim in workers
    connections: int = 4
    batch_size: int = 500
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 8
    retry_base: timedelta = timedelta(seconds=60)
    rate_per_second: float | None = None
    domain_rate_per_second: float | None = None
    worker_id: str = field(default_factory=default_worker_id)
    # 0: render and sign in a thread pool; N: in N worker processes (for machines with spare
    # cores; the workers make their own tracking tokens with the system clock).
    compose_processes: int = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, database: Database, **overrides: Any
    ) -> SenderOptions:
        if not settings.smtp_url:
            raise ValueError("TIDINGS_SMTP_URL is not set")
        from_domain = parseaddr(settings.mail_from)[1].rpartition("@")[2]
        values: dict[str, Any] = {
            "mail_from": settings.mail_from,
            "base_url": settings.base_url,
            "secret": signing_keys(settings, database),
            "smtp": parse_smtp_url(settings.smtp_url, timeout=settings.smtp_timeout_seconds),
            "bounce_domain": settings.bounce_domain,
            "unsubscribe_mailto": settings.unsubscribe_mailto,
            "dkim": signer_from_settings(
                domain=settings.dkim_domain or from_domain,
                selector=settings.dkim_selector,
                pem=settings.dkim_private_key,
                pem_file=settings.dkim_private_key_file,
            ),
            "connections": settings.smtp_connections,
            "max_attempts": settings.smtp_max_attempts,
            "retry_base": timedelta(seconds=settings.smtp_retry_base_seconds),
            "rate_per_second": settings.smtp_rate_per_second,
            "domain_rate_per_second": settings.smtp_domain_rate_per_second,
            "compose_processes": settings.smtp_compose_processes,
        }
        values.update(overrides)
        return cls(**values)


class TokenBucket:
    """A rate limit; time and sleep are injectable."""

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.monotonic = monotonic
        self.sleep = sleep
        self.last = monotonic()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            while True:
                now = self.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
                self.last = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await self.sleep((1 - self.tokens) / self.rate)


def allowed_statuses(message_class: str) -> list[str]:
    from tidings.contacts.policy import ContactStatus

    return [s.value for s in ContactStatus if may_send(s, message_class)]


def backoff(attempts: int, base: timedelta) -> timedelta:
    """Exponential: base, 2 x base, 4 x base, ... capped at one day."""
    delay: timedelta = base * (2 ** max(0, attempts - 1))
    return min(delay, timedelta(days=1))


# --- database steps (synchronous; each is one transaction) ---------------------------------


def _refuse(session: Session, rows: Sequence[tuple[int, int, str]], now: datetime) -> None:
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
        if not db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
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
            reason = _refusal(contact["status"], message_class, suppressed)
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
        _refuse(session, refused, now)
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


def _refusal(contact_status: str | None, message_class: str, suppressed: Any) -> str | None:
    """Why a message may not go to its contact now, or None: the contact is gone (its status,
    from an outer join, is None), or may_send's reason."""
    return _refusal_of(contact_status, message_class, bool(suppressed))


@functools.lru_cache(maxsize=256)  # a claim asks the same few questions a thousand times
def _refusal_of(contact_status: str | None, message_class: str, suppressed: bool) -> str | None:
    if contact_status is None:
        return "the contact no longer exists"
    decision = may_send(contact_status, message_class, suppressed=suppressed)
    return None if decision else decision.reason


def _policy_allows() -> Any:
    """SQL for `may_send(Contact.status, OutboxMessage.message_class)` (unsuppressed), built
    from may_send itself (through allowed_statuses) so that the policy stays in one place.
    Plain comparisons, no IN list: PreDotUpdate runs the statement compiled to a string."""
    return or_(
        *(
            and_(Contact.status == status, OutboxMessage.message_class == klass.value)
            for klass in MessageClass
            for status in allowed_statuses(klass)
        )
    )


def _ours(ids: Any) -> Any:
    """Rows `ids` that are still `sending` under our lease.

    The status is compared through coalesce() so that no index on it can be used: SQLite's
    planner otherwise walks every `sending` row of the batch (a thousand) through
    ix_outbox_status_next_attempt_at instead of looking the few ids up by primary key.
    """
    return and_(
        OutboxMessage.id.in_(ids),
        OutboxMessage.lease_owner == bindparam("owner"),
        func.coalesce(OutboxMessage.status, "") == ST.SENDING.value,
    )


def _mark_statement(size: int) -> Any:
    """The whole pre-dot check in one statement, for `size` ids: the row is still ours and
    `sending`, the contact exists, its status allows this class of mail and its address is not
    suppressed -> `delivering`; it returns the ids it moved.

    The ids are separate parameters (`id IN (:id0, :id1, ...)`), which lets SQLite's planner
    see how few they are.
    """
    allowed = (
        select(Contact.id)
        .where(
            Contact.id == OutboxMessage.contact_id,
            _policy_allows(),
            ~suppressed_condition(Contact.email),
        )
        .exists()
    )
    return (
        update(OutboxMessage)
        .where(_ours([bindparam(f"id{i}") for i in range(size)]), allowed)
        .values(status=ST.DELIVERING.value, updated_at=bindparam("now"))
        .returning(OutboxMessage.id)
    )


class PreDotUpdate:
    """`_mark_statement`, compiled once per group size for the engine's dialect and run
    straight on one DBAPI connection kept for the purpose: through SQLAlchemy's execution
    layer (a pool checkout, begin events, parameter processing, result wrapping) this step
    cost several times the statement itself, and it runs once or twice for every message."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.connection: Any = None
        # size -> (SQL, positional parameter names or None, constant values, converters)
        self._compiled: dict[int, tuple[str, Any, dict[str, Any], dict[str, Any]]] = {}

    def _statement(self, size: int) -> tuple[str, Any, dict[str, Any], dict[str, Any]]:
        found = self._compiled.get(size)
        if found is None:
            compiled = _mark_statement(size).compile(dialect=self.db.engine.dialect)
            blanks = {"owner": None, "now": None} | {f"id{i}": None for i in range(size)}
            found = self._compiled[size] = (
                compiled.string,
                compiled.positiontup,  # None: named parameters
                compiled.construct_params(blanks),  # with the statement's constants
                # The type conversions SQLAlchemy would apply (the timestamp's).
                dict(compiled._bind_processors),
            )
        return found

    def run(self, ids: Sequence[int], *, now: datetime, worker_id: str) -> list[int]:
        """One transaction: the ids moved to `delivering`."""
        if not ids:
            return []
        sql, positions, constants, processors = self._statement(len(ids))
        values = dict(constants)
        values.update({f"id{i}": oid for i, oid in enumerate(ids)})
        values["owner"] = worker_id
        values["now"] = now
        for name, process in processors.items():
            values[name] = process(values[name])
        args = values if positions is None else tuple(values[n] for n in positions)
        if self.connection is None:
            self.connection = self.db.engine.raw_connection()
        connection = self.connection
        try:
            cursor = connection.cursor()
            if self.db.is_sqlite:
                cursor.execute("BEGIN IMMEDIATE")  # what the engine's begin event does
            cursor.execute(sql, args)
            moved = [row[0] for row in cursor.fetchall()]
            if self.db.is_sqlite:
                cursor.execute("COMMIT")
            else:
                connection.commit()
            cursor.close()
        except BaseException:
            self.close(broken=True)
            raise
        return moved

    def close(self, *, broken: bool = False) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        with contextlib.suppress(Exception):
            connection.rollback()
        if broken:
            connection.invalidate()
        else:
            connection.close()  # back to the pool


def mark_delivering(
    db: Database,
    ids: Sequence[int],
    *,
    now: datetime,
    worker_id: str,
    update: PreDotUpdate | None = None,
) -> dict[int, str]:
    """The last check before the final dot. Returns per id: 'ok', 'lease' (lost) or 'refused'.

    One statement does the whole check (see `_mark_statement`); only when it leaves some ids
    out, a second transaction tells a lost lease from a refusal and records the refusal. What
    changes between the two is harmless: a row left out stays `sending` under our lease and
    is not sent now; if it is no longer refused it counts as 'lease' and goes out after the
    lease expires.
    """
    verdict: dict[int, str] = dict.fromkeys(ids, "lease")
    if update is None:
        update = PreDotUpdate(db)
        try:
            ok = update.run(ids, now=now, worker_id=worker_id)
        finally:
            update.close()
    else:
        ok = update.run(ids, now=now, worker_id=worker_id)
    verdict.update(dict.fromkeys(ok, "ok"))
    if len(ok) < len(ids):
        others = [i for i in ids if verdict[i] != "ok"]
        for oid, _, _ in _refuse_left_out(db, others, now=now, worker_id=worker_id):
            verdict[oid] = "refused"
    return verdict


def _refuse_left_out(
    db: Database, ids: Sequence[int], *, now: datetime, worker_id: str
) -> list[tuple[int, int, str]]:
    """Of the ids the pre-dot update left out, those still ours that the policy refuses: they
    are recorded as refused (the rest lost their lease)."""
    query = (
        select(
            OutboxMessage.id,
            OutboxMessage.contact_id,
            OutboxMessage.message_class,
            Contact.status,
            suppressed_condition(Contact.email).label("suppressed"),
        )
        .outerjoin(Contact, Contact.id == OutboxMessage.contact_id)
        .where(_ours(list(ids)))
    )
    if not db.is_sqlite:
        query = query.with_for_update(of=OutboxMessage)
    refused: list[tuple[int, int, str]] = []
    with db.session() as session:
        for row in session.execute(query, {"owner": worker_id}):
            reason = _refusal(row.status, row.message_class, row.suppressed)
            if reason is not None:
                refused.append((row.id, row.contact_id, reason))
        _refuse(session, refused, now)
    return refused


def record_outcomes(
    db: Database,
    outcomes: Sequence[Outcome],
    *,
    now: datetime,
    max_attempts: int,
    retry_base: timedelta,
    on_hard_failure: Callable[[Session, Sequence[Outcome], datetime], None] | None = None,
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


# --- composing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateSpec:
    """A picklable copy of what composing needs from a template (for worker processes)."""

    id: int
    updated_at: datetime
    subject: str
    html: str
    text: str | None
    variables: dict[str, Any]
    track_opens: bool
    track_clicks: bool

    @classmethod
    def of(cls, t: EmailTemplate) -> TemplateSpec:
        return cls(
            t.id,
            t.updated_at,
            t.subject,
            t.html,
            t.text,
            dict(t.variables or {}),
            t.track_opens,
            t.track_clicks,
        )


_PROCESS_COMPOSER: Composer | None = None


def _init_process_composer(options: SenderOptions, dkim_pem: bytes | None, tracking: bool) -> None:
    """Runs once in each compose process."""
    global _PROCESS_COMPOSER
    from tidings.clock import SystemClock
    from tidings.events.tokens import TrackingTokens

    if dkim_pem is not None and options.dkim_domain_selector is not None:
        domain, selector = options.dkim_domain_selector
        options = dataclasses.replace(options, dkim=DkimSigner.from_pem(domain, selector, dkim_pem))
    tokens = TrackingTokens(options.secret, clock=SystemClock()) if tracking else None
    _PROCESS_COMPOSER = Composer(options, tokens)


def _compose_in_process(
    jobs: Sequence[Job], templates: dict[int, TemplateSpec], now: datetime
) -> list[bytes | str]:
    """A chunk of messages, each signed, or the reason it cannot be rendered."""
    assert _PROCESS_COMPOSER is not None
    return [_composed(_PROCESS_COMPOSER.compose, job, templates, now) for job in jobs]


def _composed(
    compose: Callable[[Job, Any, datetime], bytes],
    job: Job,
    templates: Mapping[int, Any],
    now: datetime,
) -> bytes | str:
    """The message `compose` makes for `job`, or the reason it cannot be rendered."""
    try:
        return compose(job, templates[job.template_id], now)
    except (ValidationFailed, KeyError) as exc:
        return str(exc)


def _rsa_sign_all(dkim: DkimSigner, to_sign: Sequence[bytes]) -> list[bytes]:
    """One pool call signs a whole chunk: the RSA steps release the GIL; a call per message
    cost more in thread hand-offs than the signing itself."""
    return [dkim.rsa_sign(blob) for blob in to_sign]


def _process_pool(options: SenderOptions, tracking: bool) -> ProcessPoolExecutor:
    dkim = options.dkim
    pem = None
    picklable = dataclasses.replace(options, dkim=None, dkim_domain_selector=None)
    if dkim is not None:
        pem = dkim.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        picklable = dataclasses.replace(
            picklable, dkim_domain_selector=(dkim.domain, dkim.selector)
        )
    return ProcessPoolExecutor(
        max_workers=options.compose_processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_process_composer,
        initargs=(picklable, pem, tracking),
    )


class Composer:
    def __init__(self, options: SenderOptions, tokens: TokenMaker | None) -> None:
        self.options = options
        self.links = LinkSigner(options.secret, options.base_url)
        self.tracker = Tracker(tokens, options.base_url) if tokens is not None else None
        self.from_address = parseaddr(options.mail_from)[1]
        self.from_domain = self.from_address.rpartition("@")[2] or "localhost"
        self._compiled: dict[tuple[int, datetime], CompiledTemplate] = {}

    def compiled(self, template: EmailTemplate | TemplateSpec) -> CompiledTemplate:
        key = (template.id, template.updated_at)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = CompiledTemplate(source_of(template))  # type: ignore[arg-type]
        return found

    def return_path(self, job: Job) -> str:
        if self.options.bounce_domain:
            return f"bounce+{job.token}@{self.options.bounce_domain}"
        return self.from_address

    def compose(self, job: Job, template: EmailTemplate | TemplateSpec, now: datetime) -> bytes:
        data = self.compose_unsigned(job, template, now)
        if self.options.dkim is not None:
            data = self.options.dkim.sign(data, timestamp=int(now.timestamp()))
        return data

    def compose_unsigned(
        self, job: Job, template: EmailTemplate | TemplateSpec, now: datetime
    ) -> bytes:
        marketing = job.message_class in MARKETING
        compiled = self.compiled(template)
        unsubscribe = self.links.unsubscribe_url(job.contact_id, job.token)  # the header's
        links = {"unsubscribe_url": unsubscribe}
        if "preferences_url" in compiled.names:  # a signed token: only when it is shown
            links["preferences_url"] = self.links.preferences_url(job.contact_id)
        context = {**job.context, **links, "contact": job.contact}
        rendered = compiled.render(context)
        html = rendered.html
        if self.tracker is not None:
            html = self.tracker.apply(
                html,
                contact_id=job.contact_id,
                message_id=job.token,
                opens=template.track_opens,
                clicks=template.track_clicks,
                keep=set(links.values()) | {job.context.get("confirm_url", "")},
            )
        list_unsubscribe: list[str] = []
        if marketing:
            list_unsubscribe.append(unsubscribe)
            if self.options.unsubscribe_mailto:
                list_unsubscribe.append(
                    f"mailto:{self.options.unsubscribe_mailto}?subject=unsubscribe-{job.token}"
                )
        headers = Headers(
            from_=self.options.mail_from,
            to=job.email,
            subject=rendered.subject,
            date=now,
            message_id=f"{job.token}@{self.from_domain}",
            list_unsubscribe=list_unsubscribe,
            one_click=marketing,
        )
        return build_message(headers, html, rendered.text)


# --- the async delivery loop --------------------------------------------------------------


class _DeliveringMarker:
    """Groups the pre-dot checks of connections that reach the dot together: one commit.

    Right after the commit, still in the same synchronous stretch of code, it writes the final
    dot of every approved message: nothing else runs in between, so the window in which a
    killed sender leaves a `delivering` row whose dot was never written is one function call.

    A group waits (at most GROUP_WAIT seconds) for the messages already on their way to the
    dot, so that the connections fall into step and a commit covers one message per
    connection instead of one or two: the commit is the costliest step of the check.
    """

    GROUP_WAIT = 0.002

    def __init__(self, db: Database, clock: Clock, worker_id: str) -> None:
        self.db, self.clock, self.worker_id = db, clock, worker_id
        self.update = PreDotUpdate(db)
        self.pending: list[tuple[int, WriteDot, asyncio.Future[str]]] = []
        self.flushing: asyncio.Task[None] | None = None
        self.on_the_way = 0  # messages being sent that have not reached their check yet
        self.wake: asyncio.Future[None] | None = None  # resolved on an arrival

    def _wake(self) -> None:
        if self.wake is not None and not self.wake.done():
            self.wake.set_result(None)

    @contextlib.contextmanager
    def sending(self) -> Iterator[Callable[[], None]]:
        """Counts one message on its way to the check; call the function it gives when the
        message reaches the check (or leave the block: it did not get there)."""
        self.on_the_way += 1
        counted = [True]

        def arrived() -> None:
            if counted[0]:
                counted[0] = False
                self.on_the_way -= 1
                self._wake()

        try:
            yield arrived
        finally:
            arrived()

    async def check(self, outbox_id: int, write_dot: WriteDot) -> str:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.pending.append((outbox_id, write_dot, future))
        if self.flushing is None:
            self.flushing = asyncio.create_task(self._flush())
        return await future

    async def _gather(self) -> None:
        """Until every message on its way has arrived, or GROUP_WAIT has passed."""
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self._wake()

        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.GROUP_WAIT, expire)
        try:
            while self.on_the_way > 0 and not expired:
                self.wake = loop.create_future()
                await self.wake
        finally:
            timer.cancel()
            self.wake = None

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the other connections join this group
            while self.pending:
                await self._gather()
                group, self.pending = self.pending, []
                try:
                    # In the loop's thread on purpose: a hop to a worker thread waits for the
                    # GIL (up to the 5 ms switch interval) while composing threads run, and
                    # this short transaction is on every message's path.
                    verdict = mark_delivering(
                        self.db,
                        [i for i, _, _ in group],
                        now=self.clock.now(),
                        worker_id=self.worker_id,
                        update=self.update,
                    )
                except Exception as exc:  # the database is away: nothing goes out
                    for _, _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for outbox_id, write_dot, future in group:
                    result = verdict[outbox_id]
                    if result == "ok":
                        try:
                            write_dot()
                        except Exception as exc:  # connection gone: the reply read reports it
                            log.debug("final dot not written: %s", exc)
                    if not future.done():
                        future.set_result(result)
        finally:
            self.flushing = None


def _then(
    future: asyncio.Future[list[bytes]], then: Callable[[list[bytes]], list[bytes | str]]
) -> asyncio.Future[list[bytes | str]]:
    """A future of `then(result)`, without a task."""
    after: asyncio.Future[list[bytes | str]] = asyncio.get_running_loop().create_future()

    def done(source: asyncio.Future[list[bytes]]) -> None:
        if after.cancelled():
            return
        if source.cancelled():
            after.cancel()
        elif (error := source.exception()) is not None:
            after.set_exception(error)
        else:
            try:
                after.set_result(then(source.result()))
            except Exception as exc:
                after.set_exception(exc)

    future.add_done_callback(done)
    return after


async def _hand_over(
    jobs: Sequence[Job],
    composing: asyncio.Future[list[bytes | str]],
    ready: asyncio.Queue[tuple[Job, bytes | str] | None],
) -> None:
    for job, data in zip(jobs, await composing, strict=True):
        ready.put_nowait((job, data))


class Sender:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        options: SenderOptions,
        *,
        tokens: TokenMaker | None = None,
        on_hard_failure: Callable[[Session, Sequence[Outcome], datetime], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.db, self.clock, self.options = db, clock, options
        # Rate limits wait on these (injectable, so tests never sleep).
        self._monotonic, self._sleep = monotonic, sleep
        self.composer = Composer(options, tokens)
        self.connections = [SmtpConnection(options.smtp) for _ in range(options.connections)]
        self.marker = _DeliveringMarker(db, clock, options.worker_id)
        self.global_rate = (
            self._bucket(options.rate_per_second) if options.rate_per_second else None
        )
        self.domain_rates: dict[str, TokenBucket] = {}
        self.on_hard_failure = on_hard_failure
        if on_hard_failure is None:
            from tidings.messaging.bounces import hard_failures_bounce

            self.on_hard_failure = hard_failures_bounce
        self.started = False
        self.pool: Executor
        if options.compose_processes > 0:
            self.pool = _process_pool(options, tracking=tokens is not None)
        else:
            self.pool = ThreadPoolExecutor(
                max_workers=max(2, min(options.connections, os.cpu_count() or 2)),
                thread_name_prefix="tidings-compose",
            )

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.connections))
        self.pool.shutdown(wait=False)
        self.marker.update.close()

    def _bucket(self, rate: float) -> TokenBucket:
        return TokenBucket(rate, monotonic=self._monotonic, sleep=self._sleep)

    async def _throttle(self, email: str) -> None:
        if self.global_rate is not None:
            await self.global_rate.take()
        rate = self.options.domain_rate_per_second
        if rate:
            domain = email.rpartition("@")[2]
            bucket = self.domain_rates.get(domain)
            if bucket is None:
                bucket = self.domain_rates[domain] = self._bucket(rate)
            await bucket.take()

    async def run_once(self) -> RunStats:
        """Send everything that is due now, then return."""
        total = RunStats()
        if not self.started:
            total.recovered += await asyncio.to_thread(
                release_own_leases, self.db, self.options.worker_id, self.clock.now()
            )
            self.started = True
        await asyncio.to_thread(self._queue_due_broadcasts)
        while True:
            stats, claimed = await self.run_batch()
            total.add(stats)
            if not claimed:
                return total

    def _queue_due_broadcasts(self) -> None:
        from tidings.messaging.broadcasts import queue_due_broadcasts

        with self.db.session() as session:
            queue_due_broadcasts(session, now=self.clock.now())

    async def run_forever(
        self, poll_seconds: float = 1.0, stop: asyncio.Event | None = None
    ) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # the database or a bug: leased rows are retried after the lease
                log.exception("sending failed; retrying in %s s", poll_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), poll_seconds)

    async def run_batch(self) -> tuple[RunStats, int]:
        now = self.clock.now()
        jobs, templates, stats = await asyncio.to_thread(
            claim,
            self.db,
            now=now,
            worker_id=self.options.worker_id,
            limit=self.options.batch_size,
            lease=self.options.lease,
        )
        claimed = len(jobs) + stats.refused
        if not jobs:
            return stats, claimed
        ready: asyncio.Queue[tuple[Job, bytes | str] | None] = asyncio.Queue()
        room = asyncio.Semaphore(_CHUNKS_AHEAD * _CHUNK_PER_CONNECTION * len(self.connections))
        outcomes: list[Outcome] = []
        producer = asyncio.create_task(self._produce(jobs, templates, ready, room))
        try:
            await asyncio.gather(
                *(self._worker(conn, ready, room, outcomes, stats) for conn in self.connections)
            )
            await producer  # its failure, if any
        finally:
            producer.cancel()
        recorded = await asyncio.to_thread(
            record_outcomes,
            self.db,
            outcomes,
            now=self.clock.now(),
            max_attempts=self.options.max_attempts,
            retry_base=self.options.retry_base,
            on_hard_failure=self.on_hard_failure,
        )
        stats.add(recorded)
        return stats, claimed

    async def _compose_chunk(
        self, jobs: Sequence[Job], templates: dict[int, EmailTemplate]
    ) -> asyncio.Future[list[bytes | str]]:
        """Compose a chunk but for its signatures; the future's result is each message, or why
        it cannot be rendered.

        Threads: rendering runs here in the loop's thread (a hop to a thread would wait for
        the GIL), and only the RSA steps, which release the GIL, go to the pool, one call per
        chunk. Processes: the whole chunk is composed in a worker process.
        """
        loop = asyncio.get_running_loop()
        now = self.clock.now()
        if isinstance(self.pool, ProcessPoolExecutor):
            specs = {i: TemplateSpec.of(t) for i, t in templates.items()}
            return loop.run_in_executor(self.pool, _compose_in_process, jobs, specs, now)
        composed: list[bytes | str] = []
        for job in jobs:
            composed.append(_composed(self.composer.compose_unsigned, job, templates, now))
            # Let the replies that came in meanwhile be handled: the server then works on
            # the next command while this loop renders the next message.
            await asyncio.sleep(0)
        dkim = self.options.dkim
        if dkim is None:
            done: asyncio.Future[list[bytes | str]] = loop.create_future()
            done.set_result(composed)
            return done
        timestamp = int(now.timestamp())
        prepared = [
            dkim.prepare(data, timestamp=timestamp) if isinstance(data, bytes) else None
            for data in composed
        ]
        signing = loop.run_in_executor(
            self.pool, _rsa_sign_all, dkim, [p[1] for p in prepared if p is not None]
        )

        def finish(signatures: list[bytes]) -> list[bytes | str]:
            signed = iter(signatures)
            return [
                dkim.finish(data, p[0], next(signed))
                if isinstance(data, bytes) and p is not None
                else data
                for data, p in zip(composed, prepared, strict=True)
            ]

        return _then(signing, finish)

    async def _produce(
        self,
        jobs: Sequence[Job],
        templates: dict[int, EmailTemplate],
        ready: asyncio.Queue[tuple[Job, bytes | str] | None],
        room: asyncio.Semaphore,
    ) -> None:
        """Composes the batch a chunk at a time, a few chunks ahead of the connections, so a
        connection never waits for its next message (and the DKIM time stays current)."""
        size = _CHUNK_PER_CONNECTION * max(1, len(self.connections))
        in_flight: list[tuple[Sequence[Job], asyncio.Future[list[bytes | str]]]] = []
        try:
            for start in range(0, len(jobs), size):
                chunk = jobs[start : start + size]
                for _ in chunk:
                    await room.acquire()
                in_flight.append((chunk, await self._compose_chunk(chunk, templates)))
                if len(in_flight) >= _CHUNKS_AHEAD:
                    await _hand_over(*in_flight.pop(0), ready)
            while in_flight:
                await _hand_over(*in_flight.pop(0), ready)
        finally:
            for _, composing in in_flight:
                composing.cancel()
            for _ in self.connections:  # one stop sign per connection
                ready.put_nowait(None)

    async def _worker(
        self,
        connection: SmtpConnection,
        ready: asyncio.Queue[tuple[Job, bytes | str] | None],
        room: asyncio.Semaphore,
        outcomes: list[Outcome],
        stats: RunStats,
    ) -> None:
        while True:
            item = await ready.get()
            if item is None:
                return
            room.release()
            job, data = item
            if isinstance(data, str):
                outcomes.append(
                    Outcome(job, SmtpResult(False, 554, f"cannot render: {data}", "render"))
                )
                continue
            await self._throttle(job.email)
            verdicts: list[str] = []

            with self.marker.sending() as arrived:

                async def before_dot(
                    write_dot: WriteDot, job: Job = job, verdicts: list[str] = verdicts
                ) -> bool:
                    arrived()
                    verdict = await self.marker.check(job.id, write_dot)
                    verdicts.append(verdict)
                    return verdict == "ok"

                result = await connection.send(
                    self.composer.return_path(job), job.email, data, before_dot
                )
            if verdicts and verdicts[0] != "ok":
                # Lease lost to another sender, or refused at the last check (recorded there).
                if verdicts[0] == "refused":
                    stats.refused += 1
                else:
                    stats.aborted += 1
                continue
            outcomes.append(Outcome(job, result))


def run_sender(
    db: Database,
    clock: Clock,
    options: SenderOptions,
    *,
    tokens: TokenMaker | None = None,
    forever: bool = False,
) -> RunStats:
    """Blocking entry point (CLI, tests)."""

    async def main() -> RunStats:
        sender = Sender(db, clock, options, tokens=tokens)
        try:
            if forever:
                await sender.run_forever()
                return RunStats()
            return await sender.run_once()
        finally:
            await sender.close()

    return asyncio.run(main())


__all__ = ["Outcome", "RunStats", "Sender", "SenderOptions", "allowed_statuses", "run_sender"]
