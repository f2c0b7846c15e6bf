"""Issue 16: the coupon race on PostgreSQL (TIDINGS_BENCH_POSTGRES_URL; skipped if unreachable).

BENCH_COUPONS_CONTACTS contacts (default 20,000; BENCH_SCALE / --quick shrink it) ask a pool of
half as many codes for one, on 4 worker threads with a connection each, 100 contacts per
transaction, the way the assign_coupon action does (coupons.service.assign, then the contact
field through the contacts write API). Prints assignments/s and checks that each code went out
exactly once and that the other half of the contacts found the pool empty. Baseline, same run:
the bare `UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING` on a second pool.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from _common import report, scale, scratch_postgres
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from tidings.clock import SystemClock
from tidings.contacts import service as contacts
from tidings.contacts.models import Contact
from tidings.contacts.upsert import ContactInput, upsert_contacts
from tidings.coupons import service as coupons
from tidings.coupons.models import CouponCode, CouponPool
from tidings.db.engine import Database, create_database
from tidings.db.migrate import upgrade

WORKERS, BATCH = 4, 100
BARE = (
    "UPDATE coupon_codes SET contact_id = :contact, assigned_at = now() WHERE id = ("
    " SELECT id FROM coupon_codes WHERE pool_id = :pool AND contact_id IS NULL"
    " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING code"
)


def _seed(database: Database, contacts_count: int) -> list[int]:
    now = SystemClock().now()
    with database.session() as session:
        for start in range(0, contacts_count, 5000):
            items = [
                ContactInput(email=f"c{i}@example.com")
                for i in range(start, min(contacts_count, start + 5000))
            ]
            upsert_contacts(session, items, now=now, cause="import")
        for name in ("race", "bare"):
            pool = coupons.create_pool(
                session, name, now=now, low_stock=10, notify="ops@example.com"
            )
            coupons.import_csv(
                session, pool, "\n".join(f"{name}-{i}" for i in range(contacts_count // 2))
            )
        return list(session.scalars(select(Contact.id).order_by(Contact.id)))


def _race(
    url: str, ids: list[int], take: Callable[[Session, int], str | None]
) -> tuple[float, list[str | None]]:
    results: list[str | None] = []
    lock = threading.Lock()

    def worker(part: list[int]) -> None:
        database = create_database(url)
        try:
            for start in range(0, len(part), BATCH):
                with database.session() as session:
                    got = [take(session, cid) for cid in part[start : start + BATCH]]
                with lock:
                    results.extend(got)
        finally:
            database.dispose()

    threads = [threading.Thread(target=worker, args=(ids[i::WORKERS],)) for i in range(WORKERS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, results


def main() -> None:
    size = max(8, int(int(os.environ.get("BENCH_COUPONS_CONTACTS", "20000")) * scale()))
    with scratch_postgres("coupons") as url:
        if url is None:
            return
        database = create_database(url)
        upgrade(database)
        ids = _seed(database, size)
        with database.session() as session:
            race_id = coupons.get_pool(session, "race").id
            bare_id = coupons.get_pool(session, "bare").id

        def ours(session: Session, contact_id: int) -> str | None:
            pool = session.get(CouponPool, race_id)
            assert pool is not None
            now = SystemClock().now()
            code = coupons.assign(session, pool, contact_id, now)
            if code is not None:  # what the assign_coupon action does next
                contacts.set_fields(
                    session, [contact_id], {"coupon_race": code}, cause="automation", now=now
                )
            return code

        def baseline(session: Session, contact_id: int) -> str | None:
            row = session.execute(text(BARE), {"contact": contact_id, "pool": bare_id}).scalar()
            return None if row is None else str(row)

        bare_seconds, _ = _race(url, ids, baseline)
        seconds, results = _race(url, ids, ours)
        taken = [code for code in results if code is not None]
        with database.session() as session:
            assigned = session.scalar(
                select(func.count()).where(
                    CouponCode.pool_id == race_id, CouponCode.contact_id.is_not(None)
                )
            )
            pool = session.get(CouponPool, race_id)
            assert pool is not None
            shortage, low_at = pool.shortage, pool.low_stock_at
        half = size // 2
        assert len(taken) == len(set(taken)) == assigned == half, (len(taken), assigned)
        assert results.count(None) == shortage == size - half, (results.count(None), shortage)
        assert low_at is not None
        print(
            f"{size:,} contacts, {half:,} codes, {WORKERS} workers: "
            f"{half:,} assigned once each, {size - half:,} found the pool empty"
        )
        report(
            "PostgreSQL: assign_coupon race",
            size / seconds,
            "assignments/s",
            baseline=size / bare_seconds,
        )
        report("PostgreSQL: bare SKIP LOCKED UPDATE baseline", size / bare_seconds, "assignments/s")
        database.dispose()


if __name__ == "__main__":
    main()
