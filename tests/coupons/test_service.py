"""Coupon pools: CSV import refusing duplicates by row, generated codes, one code per contact
(the same when asked twice), never twice under 4 racing workers, shortage and low stock."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from tidings.automations.models import Effect
from tidings.clock import FakeClock
from tidings.coupons import service
from tidings.db.engine import Database
from tidings.errors import ValidationFailed


def _pool(database: Database, clock: FakeClock, codes: int, low: int = 0) -> None:
    with database.session() as session:
        pool = service.create_pool(session, "SPRING", now=clock.now(), low_stock=low)
        service.import_csv(session, pool, "code\n" + "\n".join(f"C{i}" for i in range(codes)))


def test_an_import_refuses_a_duplicate_code_with_its_row(
    database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        pool = service.create_pool(session, "P", now=clock.now())
        with pytest.raises(ValidationFailed, match="row 4: duplicate code 'B'"):
            service.import_csv(session, pool, "code\nA\nB\nB\n")
        assert service.import_csv(session, pool, "A\nB\n") == 2
        with pytest.raises(ValidationFailed, match="row 2: code 'B' is already in the pool"):
            service.import_csv(session, pool, "Z\nB\n")
        assert service.stock(session, pool)["free"] == 2


def test_generated_codes_follow_the_pattern(database: Database, clock: FakeClock) -> None:
    with database.session() as session:
        pool = service.create_pool(session, "G", now=clock.now())
        assert service.generate(session, pool, 50, "SPRING-####-####") == 50
        codes = [code for code, _, _ in service.usage(session, pool)]
    assert len(set(codes)) == 50 and all(c.startswith("SPRING-") and len(c) == 16 for c in codes)


def test_one_code_per_contact_then_empty_with_the_shortage(
    database: Database, clock: FakeClock
) -> None:
    _pool(database, clock, 2, low=1)
    with database.session() as session:
        pool = service.get_pool(session, "SPRING")
        first = service.assign(session, pool, 1, clock.now())
        assert service.assign(session, pool, 1, clock.now()) == first
        assert service.stock(session, pool)["low"] == 1
        assert service.assign(session, pool, 2, clock.now()) not in (None, first)
        assert service.assign(session, pool, 3, clock.now()) is None
    with database.session() as session:
        stock = service.stock(session, service.get_pool(session, "SPRING"))
    assert stock == {"free": 0, "assigned": 2, "shortage": 1, "low": 1}


def test_four_racing_workers_never_hand_out_a_code_twice(
    database: Database, clock: FakeClock
) -> None:
    _pool(database, clock, 60)
    results: dict[int, str | None] = {}
    lock = threading.Lock()

    def worker(contacts: range) -> None:
        for contact in contacts:
            code: str | None = None
            for _ in range(20):  # SQLite: a busy writer is retried
                try:
                    with database.session() as session:
                        pool = service.get_pool(session, "SPRING")
                        code = service.assign(session, pool, contact, clock.now())
                    break
                except Exception:
                    continue
            with lock:
                results[contact] = code

    threads = [threading.Thread(target=worker, args=(range(w, 100, 4),)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = [c for c in results.values() if c is not None]
    assert len(codes) == 60 and len(set(codes)) == 60
    assert sum(c is None for c in results.values()) == 40


def test_low_stock_is_notified_once_through_a_notify_effect(
    database: Database, clock: FakeClock
) -> None:

    with database.session() as session:
        pool = service.create_pool(
            session, "LOW", now=clock.now(), low_stock=2, notify="ops@example.com"
        )
        service.import_csv(session, pool, "A\nB\nC\nD\n")
        ids = [101, 102, 103]  # contact ids (the pool does not read the contacts)
        service.assign(session, pool, ids[0], clock.now())
        assert pool.low_stock_at is None  # 3 left
        service.assign(session, pool, ids[1], clock.now())  # 2 left: at the mark
        service.assign(session, pool, ids[2], clock.now())
        session.refresh(pool)
        assert pool.low_stock_at is not None
        effects = session.execute(select(Effect.kind, Effect.target, Effect.payload)).all()
    assert [(kind, target) for kind, target, _ in effects] == [("notify", "ops@example.com")]
    assert "LOW is low: 2 codes left" in effects[0][2]["subject"]


def test_a_bad_notify_address_is_refused(database: Database, clock: FakeClock) -> None:
    with database.session() as session, pytest.raises(ValidationFailed, match="low_stock_notify"):
        service.create_pool(session, "N", now=clock.now(), notify="nobody")
