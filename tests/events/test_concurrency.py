"""Concurrent batches for the same contacts keep the summary exact (threads, separate
connections, on SQLite and PostgreSQL), and a key sent by two batches at once is stored once."""

from __future__ import annotations

import random
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from tidings.activities.models import Activity
from tidings.clock import FakeClock
from tidings.contacts import service
from tidings.contacts.models import Contact
from tidings.db.engine import Database
from tidings.events.service import ingest_events

THREADS = 4
BATCHES = 5


def test_concurrent_batches_give_exact_summaries(database: Database, clock: FakeClock) -> None:
    now = clock.now()
    with database.session() as session:
        ids = service.upsert_contacts(
            session,
            [service.ContactInput(email=f"c{i}@example.com") for i in range(3)],
            now=now,
            cause="api",
        ).contact_ids
    rng = random.Random(7)
    batches: list[list[dict[str, Any]]] = []
    for t in range(THREADS):
        for b in range(BATCHES):
            batch = []
            for i in range(40):
                kind = rng.choice(["email_opened", "link_clicked", "purchase"])
                event: dict[str, Any] = {
                    "type": kind,
                    "contact_id": rng.choice(ids),
                    "occurred_at": (now - timedelta(minutes=rng.randint(0, 10_000))).isoformat(),
                }
                if kind == "link_clicked":
                    event["url"] = "https://x.test"
                if kind == "purchase":
                    event["amount"] = rng.choice([1, 2.5, 10])
                if i % 10 == 0:
                    event["event_id"] = f"shared-{b}-{i}"  # every thread sends these keys
                else:
                    event["event_id"] = f"t{t}-b{b}-{i}"
                batch.append(event)
            batches.append(batch)

    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def worker(mine: list[list[dict[str, Any]]]) -> None:
        try:
            barrier.wait()
            for batch in mine:
                with database.session() as session:
                    ingest_events(session, batch, now=now, cause="api")
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(batches[t * BATCHES : (t + 1) * BATCHES],))
        for t in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    # The expected summary: each distinct event_id once (the first copy of a shared key wins,
    # and all copies of a shared key are identical only in key — so compare with what was stored).
    with database.session() as session:
        stored = session.execute(
            select(
                Activity.contact_id,
                Activity.type,
                Activity.occurred_at,
                Activity.data,
                Activity.event_id,
            ).where(Activity.event_id.is_not(None))
        ).all()
        keys = [row.event_id for row in stored]
        assert len(keys) == len(set(keys)) == THREADS * BATCHES * 36 + BATCHES * 4
        for cid in ids:
            mine = [row for row in stored if row.contact_id == cid]
            contact = session.get(Contact, cid)
            assert contact is not None
            opens = [r.occurred_at for r in mine if r.type == "email_opened"]
            clicks = [r.occurred_at for r in mine if r.type == "link_clicked"]
            buys = [r for r in mine if r.type == "purchase"]
            assert contact.open_count == len(opens) and contact.click_count == len(clicks)
            assert contact.purchase_count == len(buys)
            assert contact.purchase_total_minor == sum(r.data["amount_minor"] for r in buys)
            assert contact.last_open_at == max(opens, default=None)
            assert contact.last_click_at == max(clicks, default=None)
            assert contact.last_purchase_at == max((r.occurred_at for r in buys), default=None)
            assert contact.last_engaged_at == max([*opens, *clicks, *(r.occurred_at for r in buys)])
        assert (
            session.scalar(
                select(func.count()).select_from(Activity).where(Activity.event_id.like("shared-%"))
            )
            == BATCHES * 4
        )


def _ingest_in_process(url: str, batches: list[list[dict[str, Any]]], now_iso: str) -> int:
    from datetime import datetime

    from tidings.db.engine import create_database

    database = create_database(url)
    now = datetime.fromisoformat(now_iso)
    stored = 0
    try:
        for batch in batches:
            with database.session() as session:
                stored += ingest_events(session, batch, now=now, cause="api").stored
    finally:
        database.dispose()
    return stored


def test_two_processes_ingesting_for_the_same_contact(
    database: Database, database_url: str, clock: FakeClock
) -> None:
    import multiprocessing

    now = clock.now()
    with database.session() as session:
        cid = service.upsert_contacts(
            session, [service.ContactInput(email="p@example.com")], now=now, cause="api"
        ).contact_ids[0]
    per_process = [
        [
            [
                {
                    "type": "purchase",
                    "contact_id": cid,
                    "amount": 1.25,
                    "occurred_at": (now - timedelta(minutes=p * 100 + b * 10 + i)).isoformat(),
                }
                for i in range(10)
            ]
            for b in range(5)
        ]
        for p in range(2)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        stored = pool.starmap(
            _ingest_in_process,
            [(database_url, batches, now.isoformat()) for batches in per_process],
        )
    assert stored == [50, 50]
    with database.session() as session:
        contact = session.get(Contact, cid)
        assert contact is not None
        assert contact.purchase_count == 100 and contact.purchase_total_minor == 100 * 125
        assert contact.last_purchase_at == now  # p=0, b=0, i=0
