"""Issue 4: the automation engine.

(a) install engagement tagging over 1,000,000 contacts whose last engagements spread over 60
    days: seeded from their history (tags and waits by phase: a few set-based statements per
    phase), with the ratio to `--all-engaged` (one INSERT ... SELECT) in the same run;
(b) engagement tagging for 100,000 contacts with 1,000,000 events over 60 simulated days:
    step executions per second, with the ratio to raw SQL statements making the same tag
    changes (executemany INSERT/DELETE on contact_tags) in the same run;
(c) event -> action latency through a running `tidings serve` (SQLite, in-process worker):
    an open arrives by the API, part 2 restarts the contact, the tag is visible by the API;
(d) with TIDINGS_BENCH_POSTGRES_URL: 1, 2 and 4 `tidings worker` processes on 100,000 due
    enrolments (speed-up printed, double processing checked);
(e) durability at the issue's size: 10,000 contacts through a 6-step automation while
    `tidings worker` processes are SIGKILLed at random moments; every effect checked once;
(f) the send_email step: 100,000 contacts through one automation whose step is send_email
    (queued emails/s of the engine pass), with the ratio to a broadcast's INSERT ... SELECT
    of the same rows into the outbox in the same run.
`--quick` or BENCH_SCALE=0.05 runs small. SQLite always; PostgreSQL for (a), (b), (d), (e),
(f) when TIDINGS_BENCH_POSTGRES_URL is set. BENCH_ENGINE_PARTS=b (or "ab", ...) runs only
those parts.
"""

from __future__ import annotations

import os
import random
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
from _common import free_port, fresh_sqlite, report, scale, timed
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.automations.engine import Engine
from tidings.automations.models import Enrolment
from tidings.automations.service import create_automation, enrol_contacts, get_automation
from tidings.automations.templates import install_engagement_tagging
from tidings.clock import FakeClock
from tidings.contacts.models import Contact, ContactTag, ListMembership, MailingList
from tidings.db.bulk import insert_tuples
from tidings.db.engine import Database, create_database
from tidings.db.migrate import upgrade
from tidings.events.service import ingest_events
from tidings.messaging.broadcasts import create_broadcast, queue_broadcast
from tidings.messaging.models import OutboxMessage
from tidings.messaging.service import create_template

S = scale()
ENROL_CONTACTS = max(2_000, int(1_000_000 * S))
RUN_CONTACTS = max(1_000, int(100_000 * S))
RUN_EVENTS = max(10_000, int(1_000_000 * S))
DAYS = 60
LATENCY_EVENTS = max(50, int(1_000 * S))
SCALE_OUT = max(2_000, int(100_000 * S))
DURABLE = max(1_000, int(10_000 * S))
EMAIL_CONTACTS = max(2_000, int(100_000 * S))
SIX_STEPS = {
    "name": "Durable",
    "steps": [
        {"id": "tag", "action": "add_tag", "tag": "Started"},
        {"id": "score", "action": "adjust_score", "by": 7},
        {"id": "mail", "action": "send_email", "template": "welcome"},
        {"id": "field", "action": "set_field", "field": "first_name", "value": "Done"},
        {"id": "tag2", "action": "add_tag", "tag": "Finished"},
        {"id": "untag", "action": "remove_tag", "tag": "Started"},
    ],
}
START = datetime(2026, 1, 5, tzinfo=UTC)
PG_URL = os.environ.get("TIDINGS_BENCH_POSTGRES_URL")
PARTS = os.environ.get("BENCH_ENGINE_PARTS", "abcdef")
WORKER_COUNTS = (1, 2, 4)  # (d); the first is the baseline
KINDS = (
    {"type": "email_opened"},
    {"type": "link_clicked", "url": "https://example.com/a"},
    {"type": "purchase", "amount": 10},
    {"type": "site_visit", "url": "https://example.com/"},
)


def database_for(name: str, backend: str) -> Database:
    if backend == "sqlite":
        database = create_database(f"sqlite:///{fresh_sqlite(name)}")
    else:
        assert PG_URL
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        db_name = f"bench_engine_{name.replace('.', '_')}"
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{db_name}"'))
        admin.dispose()
        url = create_engine(PG_URL).url.set(database=db_name).render_as_string(hide_password=False)
        database = create_database(url)
    upgrade(database)
    return database


def add_contacts(database: Database, count: int, *, spread_days: int = 0) -> None:
    """`count` subscribed contacts created at START; with `spread_days`, contact i last
    engaged i % spread_days days before START."""
    columns = ("email", "status", "score", "fields", "created_at", "updated_at", "last_engaged_at")
    with database.session() as session:
        for start in range(0, count, 50_000):
            rows = [
                (
                    f"u{i}@example.com",
                    "subscribed",
                    0,
                    {},
                    START,
                    START,
                    START - timedelta(days=i % spread_days) if spread_days else None,
                )
                for i in range(start, min(count, start + 50_000))
            ]
            insert_tuples(session, Contact.__table__, columns, rows)  # type: ignore[arg-type]


def bench_enrol(backend: str) -> None:
    took: dict[bool, float] = {}
    tagged = 0.0
    for all_engaged in (True, False):
        kind = "all_engaged" if all_engaged else "seeded"
        database = database_for(f"engine_enrol_{kind}_{backend}.db", backend)
        add_contacts(database, ENROL_CONTACTS, spread_days=60)
        with timed() as seconds, database.session() as session:
            _, _, enrolled = install_engagement_tagging(session, now=START, all_engaged=all_engaged)
        assert enrolled == ENROL_CONTACTS
        took[all_engaged] = seconds[0]
        if all_engaged:  # the tags come from the engine's first pass: time it too
            engine = Engine(database, FakeClock(START), batch_size=1000, activity_batch=20_000)
            with timed() as seconds:
                engine.run_until_idle()
            tagged = seconds[0]
        database.dispose()
    report(
        f"(a) {backend}: install over {ENROL_CONTACTS:,}, --all-engaged",
        took[True],
        "s",
        target="<= 15 s for 1,000,000",
    )
    report(
        f"(a) {backend}: --all-engaged, then the engine's pass tagging them",
        took[True] + tagged,
        "s",
    )
    report(
        f"(a) {backend}: install over {ENROL_CONTACTS:,}, seeded from history",
        took[False],
        "s",
        took[True] + tagged,
    )


def bench_run(backend: str) -> None:
    database = database_for(f"engine_run_{backend}.db", backend)
    add_contacts(database, RUN_CONTACTS)
    clock = FakeClock(START)
    engine = Engine(database, clock, batch_size=1000, activity_batch=20_000)
    with database.session() as session:
        ids = list(session.scalars(select(Contact.id)))
        # Everyone engaged at the start: the engine makes every tag change (as before seeding).
        install_engagement_tagging(session, now=START, all_engaged=True)
    rng = random.Random(1)
    per_day = RUN_EVENTS // DAYS
    engine_seconds = 0.0
    steps = 0
    for day in range(DAYS):
        clock.set(START + timedelta(days=day, hours=12))
        events = [{**rng.choice(KINDS), "contact_id": rng.choice(ids)} for _ in range(per_day)]
        with database.session() as session:
            for offset in range(0, len(events), 20_000):
                ingest_events(
                    session, events[offset : offset + 20_000], now=clock.now(), cause="api"
                )
        for moment in (clock.now(), START + timedelta(days=day + 1)):
            clock.set(moment)
            began = time.perf_counter()
            steps += engine.run_until_idle().steps
            engine_seconds += time.perf_counter() - began
    rate = steps / engine_seconds
    baseline = raw_tag_changes(database)
    report(
        f"(b) {backend}: {RUN_CONTACTS:,} contacts, {per_day * DAYS:,} events, {DAYS} days: steps/s",
        rate,
        "steps/s",
        baseline,
        ">= 50,000",
    )
    print(f"    {steps:,} step executions in {engine_seconds:.1f} s of engine time", flush=True)
    database.dispose()


def raw_tag_changes(database: Database) -> float:
    """Statements/s of plain executemany INSERT/DELETE making the same tag changes."""
    with database.session() as session:
        changes = session.execute(
            select(Activity.contact_id, Activity.type, Activity.data)
            .where(Activity.cause == "automation")
            .order_by(Activity.id)
        ).all()
        session.execute(ContactTag.__table__.delete())
        session.execute(text("DELETE FROM contact_tags"))
    began = time.perf_counter()
    with database.engine.begin() as connection:
        batch_add: list[dict[str, object]] = []
        batch_remove: list[dict[str, object]] = []

        def flush() -> None:
            if batch_add:
                connection.execute(
                    text(
                        "INSERT INTO contact_tags (contact_id, tag_id, created_at) "
                        "VALUES (:c, :t, :at) ON CONFLICT DO NOTHING"
                    ),
                    batch_add,
                )
            if batch_remove:
                connection.execute(
                    text("DELETE FROM contact_tags WHERE contact_id = :c AND tag_id = :t"),
                    batch_remove,
                )
            batch_add.clear()
            batch_remove.clear()

        for contact_id, kind, data in changes:
            row = {"c": contact_id, "t": data["tag_id"], "at": START}
            (batch_add if kind == "tag_added" else batch_remove).append(row)
            if len(batch_add) + len(batch_remove) >= 1000:
                flush()
        flush()
    seconds = time.perf_counter() - began
    return len(changes) / seconds if seconds else 0.0


def tidings_process(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """`tidings ARGS...` in a process of its own, quiet."""
    return subprocess.Popen(
        [sys.executable, "-c", "from tidings.cli import main; main()", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bench_latency() -> None:
    path = fresh_sqlite("engine_latency.db")
    url = f"sqlite:///{path}"
    database = create_database(url)
    upgrade(database)
    add_contacts(database, LATENCY_EVENTS)
    from tidings.auth.service import create_api_key

    with database.session() as session:
        _, key = create_api_key(session, "bench", now=datetime.now(UTC))
        # Enrol nobody: each contact's first open starts part 1 through part 2.
        install_engagement_tagging(session, now=datetime.now(UTC), segment={"has_tag": "none"})
    database.dispose()
    port = free_port()
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": url,
        "TIDINGS_SECRET_KEY": secrets.token_hex(16),
        "TIDINGS_PORT": str(port),
    }
    server = tidings_process(env, "serve")
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            for _ in range(200):
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.05)
            for contact_id in range(1, LATENCY_EVENTS + 1):
                began = time.perf_counter()
                response = client.post(
                    "/api/v1/events", json={"type": "email_opened", "contact_id": contact_id}
                )
                response.raise_for_status()
                while "Engaged" not in client.get(f"/api/v1/contacts/{contact_id}").json()["tags"]:
                    if time.perf_counter() - began > 10:
                        raise RuntimeError("the tag never appeared")
                latencies.append(time.perf_counter() - began)
    finally:
        server.terminate()
        server.wait(10)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    report(f"(c) sqlite serve: event -> tag visible, p50 over {len(latencies)}", p50, "ms")
    report(
        f"(c) sqlite serve: event -> tag visible, p99 over {len(latencies)}",
        p99,
        "ms",
        target="<= 500 ms",
    )


def other_connections(database: Database) -> int:
    with database.engine.connect() as connection:
        others = connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    return int(others or 0)


def wait_for_connections(database: Database, count: int, timeout: float = 60.0) -> None:
    """Until `count` other sessions are connected to this PostgreSQL database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if other_connections(database) >= count:
            time.sleep(0.5)  # their first (empty) pass done
            return
        time.sleep(0.1)
    raise RuntimeError(f"{count} workers did not connect within {timeout} s")


def bench_scale_out() -> None:
    assert PG_URL
    results: dict[int, float] = {}
    for workers in WORKER_COUNTS:
        database = database_for(f"scale_{workers}", "postgresql")
        add_contacts(database, SCALE_OUT)
        with database.session() as session:
            automation = create_automation(
                session,
                {
                    "name": "Scale",
                    "steps": [
                        {"id": "a", "action": "add_tag", "tag": "A"},
                        {"id": "b", "action": "adjust_score", "by": 1},
                        {"id": "c", "action": "remove_tag", "tag": "A"},
                    ],
                },
                now=START,
            )
            automation_id = automation.id
        ours = other_connections(database)
        url = database.engine.url.render_as_string(hide_password=False)
        env = {**os.environ, "TIDINGS_DATABASE_URL": url}
        processes = [tidings_process(env, "worker", "--batch-size", "500") for _ in range(workers)]
        # Time the work, not the interpreters starting: wait until every worker is connected
        # (and listening), then make the enrolments due in one commit.
        wait_for_connections(database, ours + workers)
        began = time.perf_counter()
        with database.session() as session:
            enrol_contacts(
                session, get_automation(session, automation_id), now=START, everyone=True
            )
        try:
            while True:
                with database.session() as session:
                    left = session.scalar(
                        select(func.count())
                        .select_from(Enrolment)
                        .where(Enrolment.state == "active")
                    )
                if not left:
                    break
                time.sleep(0.1)
        finally:
            for process in processes:
                process.terminate()
                process.wait(10)
        results[workers] = time.perf_counter() - began
        with database.session() as session:
            doubled = session.scalar(
                select(func.count()).select_from(Contact).where(Contact.score != 1)
            )
        assert doubled == 0, f"{doubled} contacts processed twice or never"
        report(
            f"(d) postgresql: {workers} worker(s), {SCALE_OUT:,} enrolments", results[workers], "s"
        )
        database.dispose()
    baseline = results[WORKER_COUNTS[0]]
    for workers in WORKER_COUNTS[1:]:
        print(
            f"    speed-up with {workers} workers: {baseline / results[workers]:.2f}x", flush=True
        )


def add_template(session: Session) -> int:
    template = create_template(
        session,
        name="welcome",
        now=START,
        subject="Hello",
        html="<p>Hi</p>",
        text="Hi",
        variables={},
        track_opens=False,
        track_clicks=False,
    )
    return template.id


def outbox_rows(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def bench_email_step(backend: str) -> None:
    """The send_email step against the broadcast's INSERT ... SELECT, both into an empty
    outbox, in the same database."""
    database = database_for(f"engine_email_{backend}.db", backend)
    add_contacts(database, EMAIL_CONTACTS)
    with database.session() as session:
        template_id = add_template(session)
        newsletter = MailingList(name="All", double_opt_in=False, created_at=START)
        session.add(newsletter)
        session.flush()
        rows = [
            (cid, newsletter.id, "active", START, START)
            for cid in session.scalars(select(Contact.id))
        ]
        insert_tuples(
            session,
            ListMembership.__table__,  # type: ignore[arg-type]
            ("contact_id", "list_id", "status", "created_at", "updated_at"),
            rows,
        )
        broadcast = create_broadcast(
            session,
            name="Same rows",
            template_id=template_id,
            list_id=newsletter.id,
            segment=None,
            scheduled_at=None,
            now=START,
        )
    with timed() as took, database.session() as session:
        queue_broadcast(session, session.merge(broadcast), now=START)
    assert outbox_rows(database) == EMAIL_CONTACTS
    baseline = EMAIL_CONTACTS / took[0]
    with database.session() as session:
        session.execute(OutboxMessage.__table__.delete())
        automation = create_automation(
            session,
            {
                "name": "Mail",
                "steps": [{"id": "mail", "action": "send_email", "template": "welcome"}],
            },
            now=START,
        )
        enrol_contacts(session, automation, now=START, everyone=True)
    engine = Engine(database, FakeClock(START), batch_size=1000, activity_batch=20_000)
    with timed() as took:
        engine.run_until_idle()
    assert outbox_rows(database) == EMAIL_CONTACTS
    report(
        f"(f) {backend}: broadcast INSERT ... SELECT of {EMAIL_CONTACTS:,} rows",
        baseline,
        "rows/s",
    )
    report(
        f"(f) {backend}: {EMAIL_CONTACTS:,} contacts through send_email: queued",
        EMAIL_CONTACTS / took[0],
        "emails/s",
        baseline,
        ">= 20,000 on SQLite",
    )
    database.dispose()


def bench_durability(backend: str) -> None:
    import signal

    database = database_for(f"engine_durable_{backend}.db", backend)
    add_contacts(database, DURABLE)
    with database.session() as session:
        add_template(session)
        automation = create_automation(session, SIX_STEPS, now=START)
        enrol_contacts(session, automation, now=START, everyone=True)
    url = database.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "TIDINGS_DATABASE_URL": url}
    rng = random.Random(3)
    kills = 0
    began = time.perf_counter()
    while True:
        with database.engine.connect().execution_options(
            **database.dialect.read_only_options()
        ) as connection:
            left = connection.scalar(
                select(func.count()).select_from(Enrolment).where(Enrolment.state == "active")
            )
        if not left:
            break
        process = tidings_process(env, "worker")
        time.sleep(rng.uniform(1.0, 4.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    seconds = time.perf_counter() - began
    with database.session() as session:
        wrong = 0
        for query in (
            select(Activity.contact_id, func.count())
            .where(Activity.type == "tag_added", Activity.cause == "automation")
            .group_by(Activity.contact_id)
            .having(func.count() != 2),
            select(Activity.contact_id, func.count())
            .where(Activity.type == "score_changed")
            .group_by(Activity.contact_id)
            .having(func.count() != 1),
            select(OutboxMessage.contact_id, func.count())
            .group_by(OutboxMessage.contact_id)
            .having(func.count() != 1),
        ):
            wrong += len(session.execute(query).all())
        mails = session.scalar(select(func.count()).select_from(OutboxMessage))
        scores = session.scalar(select(func.count()).select_from(Contact).where(Contact.score != 7))
    assert wrong == 0 and mails == DURABLE and scores == 0, (wrong, mails, scores)
    report(
        f"(e) {backend}: {DURABLE:,} contacts x 6 steps, {kills} SIGKILLs, all effects once",
        seconds,
        "s",
    )
    database.dispose()


def main() -> None:
    backends = ["sqlite", *(["postgresql"] if PG_URL else [])]
    if "a" in PARTS:
        for backend in backends:
            bench_enrol(backend)
    if "b" in PARTS:
        for backend in backends:
            bench_run(backend)
    if "c" in PARTS:
        bench_latency()
    if "d" in PARTS and PG_URL:
        bench_scale_out()
    if "e" in PARTS:
        for backend in backends:
            bench_durability(backend)
    if "f" in PARTS:
        for backend in backends:
            bench_email_step(backend)


if __name__ == "__main__":
    main()
