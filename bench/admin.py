"""Issue 17: server time of the web admin's pages over 1,000,000 contacts and 10,000,000
events (SQLite and PostgreSQL), p50 and p95 of each.

Pages: the contacts list's first page, a contact's page with a long timeline (5,000
activities), the dashboard, the segment builder's live count, the deals board over 100,000
deals (five stages; also filtered by owner) and an automation's page (its flow with the
counts per step, a fifth of the contacts enrolled). Requests go through the whole
ASGI app (a signed-in TestClient: session, CSRF, templates), so the time is the server's,
without a network or a browser. Baseline, measured in the same run: GET /health through the
same client (the framework's own cost per request).

Sizes: BENCH_SCALE (1.0 = the issue's sizes; `--quick` = 0.02). PostgreSQL: set
TIDINGS_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test, the admin
connection that creates and drops a scratch database); skipped if unreachable. BENCH_DEALS
sets the deals' count apart (at most the contacts' count: deal i belongs to contact i).
"""

from __future__ import annotations

import os
import re
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
import yaml
from _common import DATA_DIR, analyze, fresh_sqlite, report, scale, scratch_postgres
from fastapi.testclient import TestClient
from sqlalchemy import text

from tidings.app import create_app
from tidings.automations import service as automations
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db import extras
from tidings.db.engine import Database, create_database
from tidings.db.migrate import upgrade
from tidings.deals import totals
from tidings.deals.pipelines import StageSpec, create_pipeline, stages_of
from tidings.deals.users import Role, create_user
from tidings.web.automation_pages import EXAMPLE
from tidings.web.passwords import set_password

CONTACTS = max(10_000, int(1_000_000 * scale()))
EVENTS = max(100_000, int(10_000_000 * scale()))
DEALS = int(os.environ.get("BENCH_DEALS", max(2_000, int(100_000 * scale()))))  # ≤ CONTACTS
STAGES = 5
LONG_TIMELINE = 5_000  # activities of contact 1, on top of its share of the events
REQUESTS = 40
NOW = datetime(2026, 3, 1, tzinfo=UTC)
EPOCH = int(NOW.timestamp())
WINDOW = 180 * 86400
SEGMENT = {
    "and": [
        {"event": {"type": ["email_opened", "link_clicked"], "within_days": 7}},
        {"lacks_tag": "X"},
        {"status": "subscribed"},
    ]
}
PASSWORD = "bench password 1"
# BENCH_ADMIN_DB=sqlite or postgresql runs one database; BENCH_ADMIN_KEEP=1 keeps the loaded
# data (bench/.data/admin-N.db, database tidings_bench_admin_N) and reuses it on the next run.
ONLY = os.environ.get("BENCH_ADMIN_DB", "sqlite,postgresql")
KEEP = os.environ.get("BENCH_ADMIN_KEEP") == "1"

STATUS = (
    "CASE WHEN i % 10 = 0 THEN 'unsubscribed' WHEN i % 17 = 0 THEN 'bounced' ELSE 'subscribed' END"
)
EVENT_CONTACT = f"((i * 2654435761) % {CONTACTS}) + 1"
EVENT_TYPE = (
    "CASE WHEN i % 20 < 8 THEN 'email_sent' WHEN i % 20 < 13 THEN 'email_opened' "
    "WHEN i % 20 < 15 THEN 'link_clicked' WHEN i % 20 < 18 THEN 'site_visit' "
    "WHEN i % 20 = 18 THEN 'purchase' ELSE 'custom:trial' END"
)
EVENT_OFFSET = f"((i * 40503) % {WINDOW})"
EVENT_MACHINE = "(i % 20 BETWEEN 8 AND 12 AND i % 7 = 0)"


def _statements(dialect: str) -> list[str]:
    """The data as SQL from row numbers: the same on both databases."""
    if dialect == "sqlite":
        rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
        source = "FROM n"
        stamp = f"'{NOW.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
        at = f"strftime('%Y-%m-%d %H:%M:%S', {EPOCH} - {EVENT_OFFSET}, 'unixepoch') || '.000000'"
        day = f"date({EPOCH} - i * 86400, 'unixepoch')"
    else:
        rows = ""
        source = "FROM generate_series(1, {n}::bigint) AS i"
        stamp = f"to_timestamp({EPOCH})"
        at = f"to_timestamp({EPOCH} - {EVENT_OFFSET})"
        day = f"(to_timestamp({EPOCH} - i * 86400))::date"
    return [
        rows.format(n=CONTACTS)
        + "INSERT INTO contacts (id, email, first_name, status, score, fields, created_at, "
        f"updated_at) SELECT i, 'user' || i || '@example.com', 'Name' || i, {STATUS}, 0, '{{}}', "
        f"{stamp}, {stamp} " + source.format(n=CONTACTS),
        f"INSERT INTO tags (id, name, created_at) VALUES (1, 'X', {stamp})",
        f"INSERT INTO contact_tags (contact_id, tag_id, created_at) SELECT id, 1, {stamp} "
        "FROM contacts WHERE id % 5 = 0",
        rows.format(n=EVENTS)
        + "INSERT INTO activities (contact_id, type, cause, data, occurred_at, machine) "
        f"SELECT {EVENT_CONTACT}, {EVENT_TYPE}, 'api', '{{}}', {at}, {EVENT_MACHINE} "
        + source.format(n=EVENTS),
        rows.format(n=LONG_TIMELINE)
        + "INSERT INTO activities (contact_id, type, cause, data, occurred_at, machine) "
        f"SELECT 1, 'tag_added', 'api', '{{\"tag\": \"X\"}}', {stamp}, false "
        + source.format(n=LONG_TIMELINE),
        rows.format(n=30)
        + "INSERT INTO event_daily (day, type, events, machine_events, amount_minor) "
        f"SELECT {day}, 'email_opened', i * 100, i, 0 " + source.format(n=30),
    ]


def load(database: Database) -> None:
    started = time.perf_counter()
    upgrade(database)
    dialect = database.engine.dialect.name
    with database.engine.begin() as conn:
        for statement in _statements(dialect):
            step = time.perf_counter()
            conn.execute(text(statement))
            print(f"  {statement[:60]}…: {time.perf_counter() - step:.0f} s", flush=True)
        if dialect == "postgresql":
            conn.execute(text("SELECT setval('contacts_id_seq', (SELECT max(id) FROM contacts))"))
    if dialect == "sqlite":
        with database.engine.begin() as conn:  # contacts inserted here, not by the upsert
            extras.index_all_contacts(conn)
    analyze(database.engine)
    with database.session() as session:
        user = create_user(session, "bench@example.com", "Bench", role=Role.ADMIN, now=NOW)
        set_password(session, user, PASSWORD, now=NOW)
        user_id = user.id
    load_deals(database, user_id)
    with database.session() as session:
        automation = automations.create_automation(session, yaml.safe_load(EXAMPLE), now=NOW)
        automations.enrol_contacts(session, automation, now=NOW, segment={"has_tag": "X"})
    print(f"  loaded in {time.perf_counter() - started:.0f} s", flush=True)


def load_deals(database: Database, owner_id: int) -> None:
    """A pipeline of five stages and DEALS open deals spread over them (a tenth owned by the
    bench user), then the stage totals the board reads rebuilt from them."""
    with database.session() as session:
        specs = [StageSpec(title=f"Stage {n}", probability=n * 20) for n in range(1, STAGES + 1)]
        pipeline_id = create_pipeline(session, "Bench", "EUR", specs, now=NOW).id
        first_stage = stages_of(session, pipeline_id)[0].id
    dialect = database.engine.dialect.name
    if dialect == "sqlite":
        rows = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {DEALS}) "
        source, stamp = "FROM n", f"'{NOW.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    else:
        rows, source = "", f"FROM generate_series(1, {DEALS}::bigint) AS i"
        stamp = f"to_timestamp({EPOCH})"
    with database.engine.begin() as conn:
        conn.execute(
            text(
                rows + "INSERT INTO deals (title, value, currency, contact_id, owner_id, "
                "pipeline_id, stage_id, status, position, fields, score, created_at, updated_at) "
                f"SELECT 'Deal ' || i, (i % 100) * 1000, 'EUR', i, "
                f"CASE WHEN i % 10 = 0 THEN {owner_id} END, {pipeline_id}, "
                f"{first_stage} + (i % {STAGES}), 'open', i, '{{}}', 0, {stamp}, {stamp} " + source
            )
        )
    with database.session() as session:
        totals.rebuild(session)


def signed_in(database: Database, url: str) -> tuple[TestClient, str]:
    settings = Settings(database_url=url, secret_key="bench", base_url="http://testserver")
    client = TestClient(create_app(settings, database=database, clock=FakeClock(NOW)))
    form = client.get("/admin/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    data = {"email": "bench@example.com", "password": PASSWORD, "csrf_token": token.group(1)}
    assert client.post("/admin/login", data=data).status_code == 200  # followed to /admin
    csrf = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/admin").text)
    assert csrf
    return client, csrf.group(1)


def percentiles(run: Callable[[], object]) -> tuple[float, float]:
    run()  # warm-up: caches, compiled statements
    times = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


def measure(database: Database, url: str, label: str) -> None:
    client, csrf = signed_in(database, url)

    def get(path: str) -> Callable[[], object]:
        def run() -> object:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            return response

        return run

    def count() -> object:
        body = {"condition": orjson.dumps(SEGMENT).decode()}
        response = client.post("/admin/segments/count", data=body, headers={"X-CSRF-Token": csrf})
        assert response.status_code == 200, response.text
        return response

    _, base = percentiles(get("/health"))
    report(f"{label}: GET /health p95 (baseline)", base, "ms")
    pages = [
        ("contacts list, first page", get("/admin/contacts"), "150 ms"),
        ("contacts list, tag filter", get("/admin/contacts?tag=X"), "150 ms"),
        ("contacts list, search 'user12'", get("/admin/contacts?q=user12"), "150 ms"),
        ("contacts list, search 'example' (all match)", get("/admin/contacts?q=example"), "150 ms"),
        (f"contact page ({LONG_TIMELINE:,}+ activities)", get("/admin/contacts/1"), "150 ms"),
        ("dashboard", get("/admin"), "150 ms"),
        ("segment live count", count, "500 ms"),
        (f"deals board ({DEALS:,} deals)", get("/admin/deals"), "200 ms"),
        ("deals board, one owner", get("/admin/deals?owner=1"), "200 ms"),
        ("automation page (flow and counts)", get("/admin/automations/1"), "150 ms"),
    ]
    for name, run, target in pages:
        p50, p95 = percentiles(run)
        report(f"{label}: {name} p50", p50, "ms", base)
        report(f"{label}: {name} p95", p95, "ms", base, target)


def loaded(database: Database) -> bool:
    """Whether a kept database (BENCH_ADMIN_KEEP) already holds the data; if so, only the
    migrations it lacks run, so a change's before and after are measured on the same rows."""
    try:
        with database.engine.connect() as conn:
            users = conn.execute(text("SELECT count(*) FROM users")).scalar_one()
    except Exception:
        return False
    if users:
        upgrade(database)
    return bool(users)


def run(url: str, label: str) -> None:
    database = create_database(url)
    if not (KEEP and loaded(database)):
        load(database)
    measure(database, url, label)
    database.dispose()


def main() -> None:
    print(f"{CONTACTS:,} contacts, {EVENTS:,} events, {REQUESTS} requests per page")
    if "sqlite" in ONLY:
        name = f"admin-{CONTACTS}.db" if KEEP else "admin.db"
        DATA_DIR.mkdir(exist_ok=True)
        path = DATA_DIR / name if KEEP else fresh_sqlite(name)
        run(f"sqlite:///{path}", "SQLite")
    if "postgresql" in ONLY:
        with scratch_postgres("admin", keep=f"admin_{CONTACTS}" if KEEP else None) as pg_url:
            if pg_url is not None:
                run(pg_url, "PostgreSQL")


if __name__ == "__main__":
    main()
