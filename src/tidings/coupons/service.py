"""Coupon pools: create, fill (CSV import refusing a duplicate code with its row; or
generated from a pattern), and hand out one code per contact.

`assign` gives a contact the code it already holds, or takes one free code with one
statement: on PostgreSQL the free row is picked `FOR UPDATE SKIP LOCKED` (racing workers take
different rows, none waits), on SQLite a single `UPDATE … RETURNING` (writes are serialized).
The unique (pool, contact) key makes a second code for one contact impossible either way.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
import string
from datetime import datetime

from sqlalchemy import TextClause, func, insert, select, text, update
from sqlalchemy.orm import Session

from tidings.automations.models import Effect
from tidings.contacts import catalog
from tidings.contacts import repository as contacts_repository
from tidings.contacts.schemas import FieldIn
from tidings.coupons.models import CouponCode, CouponPool
from tidings.db.bulk import dialect_insert
from tidings.errors import NotFound, ValidationFailed

ALPHABET = string.ascii_uppercase + string.digits
POOL_NAME = re.compile(r"[A-Za-z0-9_]{1,50}")
MAX_CODE = 200
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}")


def field_key(pool: str) -> str:
    """The contact field holding a contact's code of `pool` (what templates show)."""
    return f"coupon_{pool.lower()}"


def create_pool(
    session: Session, name: str, *, now: datetime, low_stock: int = 0, notify: str | None = None
) -> CouponPool:
    """A pool, and its contact field (a text custom field `coupon_<name>`) if missing.
    `notify`: the address told once when the free codes fall to `low_stock`."""
    if notify is not None and not EMAIL.fullmatch(notify):
        raise ValidationFailed("low_stock_notify: not an email address")
    if not POOL_NAME.fullmatch(name):
        raise ValidationFailed("name: 1-50 letters, digits or _")
    if session.scalar(select(CouponPool.id).where(CouponPool.name == name)) is not None:
        raise ValidationFailed(f"name: a pool named {name!r} exists")
    if contacts_repository.field_id(session, field_key(name)) is None:
        catalog.create_field(session, FieldIn(key=field_key(name), type="text"), now=now)
    pool = CouponPool(
        name=name,
        low_stock=max(0, low_stock),
        shortage=0,
        created_at=now,
        low_stock_notify=notify,
        low_stock_at=None,
    )
    session.add(pool)
    session.flush()
    return pool


def get_pool(session: Session, name: str) -> CouponPool:
    pool = session.scalar(select(CouponPool).where(CouponPool.name == name))
    if pool is None:
        raise NotFound(f"pool: no coupon pool named {name!r}")
    return pool


def pool_by_id(session: Session, pool_id: int) -> CouponPool:
    pool = session.get(CouponPool, pool_id)
    if pool is None:
        raise NotFound(f"pool: no coupon pool {pool_id}")
    return pool


def pools(session: Session) -> list[CouponPool]:
    return list(session.scalars(select(CouponPool).order_by(CouponPool.name)))


def import_csv(session: Session, pool: CouponPool, data: str) -> int:
    """Add the codes of a CSV (first column; a `code` header is skipped). A code that repeats
    in the file or is already in the pool refuses the whole file, naming its row."""
    seen: dict[str, int] = {}
    for row_number, row in enumerate(csv.reader(io.StringIO(data)), start=1):
        code = row[0].strip() if row else ""
        if not code or (row_number == 1 and code.lower() == "code"):
            continue
        if len(code) > MAX_CODE:
            raise ValidationFailed(f"row {row_number}: a code is at most {MAX_CODE} characters")
        if code in seen:
            raise ValidationFailed(
                f"row {row_number}: duplicate code {code!r} (first at row {seen[code]})"
            )
        seen[code] = row_number
    existing = (
        set(
            session.scalars(
                select(CouponCode.code).where(
                    CouponCode.pool_id == pool.id, CouponCode.code.in_(list(seen))
                )
            )
        )
        if seen
        else set()
    )
    if existing:
        code = min(existing, key=lambda c: seen[c])
        raise ValidationFailed(f"row {seen[code]}: code {code!r} is already in the pool")
    _add(session, pool, list(seen))
    return len(seen)


def generate(session: Session, pool: CouponPool, count: int, pattern: str) -> int:
    """Add `count` codes from a pattern where each `#` is a random letter or digit
    (`SPRING-####-####`)."""
    holes = pattern.count("#")
    if holes < 4:
        raise ValidationFailed("pattern: needs at least 4 '#' (random characters)")
    if not 1 <= count <= 1_000_000:
        raise ValidationFailed("count: must be 1-1,000,000")
    codes: set[str] = set()
    while len(codes) < count:
        codes.add("".join(secrets.choice(ALPHABET) if c == "#" else c for c in pattern))
    taken = set(session.scalars(select(CouponCode.code).where(CouponCode.pool_id == pool.id)))
    fresh = sorted(codes - taken)
    _add(session, pool, fresh)
    return len(fresh)


def _add(session: Session, pool: CouponPool, codes: list[str]) -> None:
    rows = [{"pool_id": pool.id, "code": c, "contact_id": None, "assigned_at": None} for c in codes]
    for start in range(0, len(rows), 5000):
        session.execute(insert(CouponCode), rows[start : start + 5000])


def assign(session: Session, pool: CouponPool, contact_id: int, now: datetime) -> str | None:
    """The contact's code in the pool (the same one if asked again); None when the pool is
    empty (the shortage is counted)."""
    held = session.scalar(
        select(CouponCode.code).where(
            CouponCode.pool_id == pool.id, CouponCode.contact_id == contact_id
        )
    )
    if held is not None:
        return held
    code = session.execute(_take(session), {"pool": pool.id, "contact": contact_id, "now": now})
    taken: str | None = code.scalar()
    if taken is None:
        session.execute(
            update(CouponPool)
            .where(CouponPool.id == pool.id)
            .values(shortage=CouponPool.shortage + 1)
        )
    # Checked on empty too: racing workers' uncommitted takes still look free to the count,
    # so the last taker may see more than the mark; the first to find none notifies then.
    if pool.low_stock_notify and pool.low_stock_at is None:
        _check_low_stock(session, pool, now)
    return taken


def _check_low_stock(session: Session, pool: CouponPool, now: datetime) -> None:
    """When the free codes are at most `low_stock`: mark the pool (the first transaction to
    set low_stock_at wins, so racing workers notify once) and queue one notify effect (sent by
    the automation effect worker, retried like any other)."""
    # At most low_stock + 1 free codes are counted (through the free-code index): a full
    # count at each assignment would read the whole pool.
    free = (
        select(CouponCode.id)
        .where(CouponCode.pool_id == pool.id, CouponCode.contact_id.is_(None))
        .limit(pool.low_stock + 1)
        .subquery()
    )
    left = session.scalar(select(func.count()).select_from(free)) or 0
    if left > pool.low_stock:
        return
    marked = session.execute(
        update(CouponPool)
        .where(CouponPool.id == pool.id, CouponPool.low_stock_at.is_(None))
        .values(low_stock_at=now)
        .execution_options(synchronize_session=False)
    )
    if not marked.rowcount:  # type: ignore[attr-defined]
        return
    session.execute(
        dialect_insert(session, Effect)
        .values(
            idempotency_key=f"coupon-low:{pool.id}",
            kind="notify",
            enrolment_id=None,
            contact_id=None,
            target=pool.low_stock_notify,
            payload={
                "subject": f"Coupon pool {pool.name} is low: {left} codes left",
                "body": f"The coupon pool {pool.name} has {left} free codes left "
                f"(low-stock mark {pool.low_stock}). Add codes: tidings coupons import "
                f"{pool.name} FILE, or tidings coupons generate {pool.name} --count N.",
            },
            status="pending",
            attempts=0,
            next_attempt_at=now,
            last_error=None,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )


def _take(session: Session) -> TextClause:
    lock = " FOR UPDATE SKIP LOCKED" if session.get_bind().dialect.name == "postgresql" else ""
    return text(
        "UPDATE coupon_codes SET contact_id = :contact, assigned_at = :now WHERE id = ("
        "SELECT id FROM coupon_codes WHERE pool_id = :pool AND contact_id IS NULL "
        f"ORDER BY id LIMIT 1{lock}) RETURNING code"
    )


def stock(session: Session, pool: CouponPool) -> dict[str, int]:
    """Free and assigned codes, the shortage, and whether the pool is at its low-stock mark."""
    total, assigned = session.execute(
        select(func.count(), func.count(CouponCode.contact_id)).where(CouponCode.pool_id == pool.id)
    ).one()
    free = int(total) - int(assigned)
    return {
        "free": free,
        "assigned": int(assigned),
        "shortage": pool.shortage,
        "low": int(free <= pool.low_stock),
    }


def usage(session: Session, pool: CouponPool) -> list[tuple[str, int | None, datetime | None]]:
    """Every code with the contact holding it and when (the usage export)."""
    return [
        (code, contact, at)
        for code, contact, at in session.execute(
            select(CouponCode.code, CouponCode.contact_id, CouponCode.assigned_at)
            .where(CouponCode.pool_id == pool.id)
            .order_by(CouponCode.id)
        )
    ]
