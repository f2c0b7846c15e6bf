"""The pre-dot check: the last look at a message before the final dot of DATA is written.

One statement does the whole check for a group of messages: the row is still ours and
`sending`, the contact exists, its status allows this class of mail and its address is not
suppressed -> `delivering` (committed; the pipeline writes the dots right after). It runs on
every message's path, so it is compiled once per group size and run straight on a DBAPI
connection kept for the purpose, with parameters converted here (public SQLAlchemy API only:
the compiled string, its parameter order and each parameter type's bind processor).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, func, select, update

from tidings.contacts.models import Contact
from tidings.contacts.repository import suppressed_condition
from tidings.db.engine import Database
from tidings.messaging.models import OutboxMessage
from tidings.messaging.outbox import OutboxStatus
from tidings.messaging.outbox_store import refuse
from tidings.messaging.policy_sql import refusal_of, status_allows

ST = OutboxStatus


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
    see how few they are. The policy is `status_allows` and the suppression list, both built
    from may_send (policy_sql.py).
    """
    allowed = (
        select(Contact.id)
        .where(
            Contact.id == OutboxMessage.contact_id,
            status_allows(Contact.status, OutboxMessage.message_class),
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


@dataclass(frozen=True, slots=True)
class _Compiled:
    """`_mark_statement` for one group size, ready for the driver."""

    sql: str
    positions: Sequence[str] | None  # parameter names in order; None: named parameters
    constants: dict[str, Any]  # every parameter, with the statement's constant values
    processors: dict[str, Callable[[Any], Any]]  # parameter -> conversion to the driver's form


class PreDotUpdate:
    """`_mark_statement`, compiled once per group size for the engine's dialect and run
    straight on one DBAPI connection kept for the purpose: through SQLAlchemy's execution
    layer (a pool checkout, begin events, parameter processing, result wrapping) this step
    cost several times the statement itself, and it runs once or twice for every message."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.connection: Any = None
        self._compiled: dict[int, _Compiled] = {}

    def _statement(self, size: int) -> _Compiled:
        found = self._compiled.get(size)
        if found is None:
            dialect = self.db.engine.dialect
            compiled = _mark_statement(size).compile(dialect=dialect)
            blanks = {"owner": None, "now": None} | {f"id{i}": None for i in range(size)}
            # The conversions SQLAlchemy would apply to each parameter (the timestamp's),
            # asked of each parameter's type.
            processors = {
                name: process
                for name, bind in compiled.binds.items()
                if (process := bind.type.dialect_impl(dialect).bind_processor(dialect))
            }
            found = self._compiled[size] = _Compiled(
                compiled.string,
                compiled.positiontup,  # None: named parameters
                compiled.construct_params(blanks),  # with the statement's constants
                processors,
            )
        return found

    def run(self, ids: Sequence[int], *, now: datetime, worker_id: str) -> list[int]:
        """One transaction: the ids moved to `delivering`."""
        if not ids:
            return []
        compiled = self._statement(len(ids))
        values = dict(compiled.constants)
        values.update({f"id{i}": oid for i, oid in enumerate(ids)})
        values["owner"] = worker_id
        values["now"] = now
        for name, process in compiled.processors.items():
            values[name] = process(values[name])
        positions = compiled.positions
        args = values if positions is None else tuple(values[n] for n in positions)
        if self.connection is None:
            self.connection = self.db.engine.raw_connection()
        connection = self.connection
        try:
            cursor = connection.cursor()
            self.db.dialect.begin_raw(cursor)
            cursor.execute(compiled.sql, args)
            moved = [row[0] for row in cursor.fetchall()]
            self.db.dialect.commit_raw(connection, cursor)
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
    query = db.dialect.lock(query, of=OutboxMessage)
    refused: list[tuple[int, int, str]] = []
    with db.session() as session:
        for row in session.execute(query, {"owner": worker_id}):
            reason = refusal_of(row.status, row.message_class, bool(row.suppressed))
            if reason is not None:
                refused.append((row.id, row.contact_id, reason))
        refuse(session, refused, now)
    return refused


class PreDotCheck(Protocol):
    """The signature of mark_delivering (the pipeline is given its check)."""

    def __call__(
        self,
        db: Database,
        ids: Sequence[int],
        *,
        now: datetime,
        worker_id: str,
        update: PreDotUpdate | None = None,
    ) -> dict[int, str]: ...
