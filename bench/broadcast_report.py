"""Issue 17: a broadcast's page in the web admin (and GET /api/v1/broadcasts/{id}/report) for
a broadcast of 100,000 recipients, on SQLite and PostgreSQL, p50 and p95.

The broadcast: 100,000 outbox rows (2 % refused for two reasons, 1 % bounced, 0.5 %
unsubscribed, 0.1 % complained, the rest sent over two hours), a third of them opened and a
tenth clicked (five links) over three days; around it, BENCH_BACKGROUND (default 1,000,000)
opens and clicks of other messages in the same days, which the report's queries must skip.
Also printed: the plan of the opens/clicks query (EXPLAIN QUERY PLAN / EXPLAIN).

Sizes: BENCH_SCALE (1.0 = 100,000 recipients; `--quick` = 0.02). PostgreSQL as in
bench/admin.py (TIDINGS_BENCH_POSTGRES_URL; skipped if unreachable).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from _common import analyze, fresh_sqlite, report, scale, scratch_postgres
from admin import PASSWORD, percentiles, signed_in
from sqlalchemy import select, text

from tidings.db.engine import Database, create_database
from tidings.db.migrate import upgrade
from tidings.deals.users import Role, create_user
from tidings.messaging.broadcasts import engaged_messages
from tidings.messaging.models import Broadcast
from tidings.web.passwords import set_password

RECIPIENTS = max(2_000, int(100_000 * scale()))
BACKGROUND = int(os.environ.get("BENCH_BACKGROUND", max(20_000, int(1_000_000 * scale()))))
QUEUED = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
EPOCH = int(QUEUED.timestamp())
DAYS = 3 * 86400
STATUS = (
    "CASE WHEN i % 50 = 0 THEN 'refused' WHEN i % 100 = 1 THEN 'bounced' "
    "WHEN i % 200 = 3 THEN 'unsubscribed' WHEN i % 1000 = 2 THEN 'complained' ELSE 'sent' END"
)
REASON = (
    "CASE WHEN i % 100 = 0 THEN 'suppressed: address or domain is on the suppression list' "
    "WHEN i % 50 = 0 THEN 'status unsubscribed does not allow campaign mail' END"
)
MINE = "'message_id', 'm' || i, 'url', 'https://shop.example.com/p' || ((i / 10) % 5)"
OTHERS = "'message_id', 'x' || i, 'url', 'https://shop.example.com/other'"


def _statements(dialect: str) -> list[str]:
    if dialect == "sqlite":
        rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) "
        source = "FROM n"

        def at(seconds: str) -> str:
            return f"strftime('%Y-%m-%d %H:%M:%S', {EPOCH} + {seconds}, 'unixepoch') || '.000000'"

        json = "json_object({})"
    else:
        rows, source = "", "FROM generate_series(1, {n}::bigint) AS i"

        def at(seconds: str) -> str:
            return f"to_timestamp({EPOCH} + {seconds})"

        json = "jsonb_build_object({})"
    stamp = at("0")
    opened = "(i % 3 = 0 OR i % 10 = 0)"
    return [
        f"INSERT INTO email_templates (id, name, subject, html, variables, track_opens, "
        f"track_clicks, created_at, updated_at) VALUES (1, 'b', 's', '<p>x</p>', '{{}}', true, "
        f"true, {stamp}, {stamp})",
        f"INSERT INTO broadcasts (id, name, template_id, status, scheduled_at, queued_at, "
        f"recipients, created_at) VALUES (1, 'Big', 1, 'sending', {stamp}, {stamp}, "
        f"{RECIPIENTS}, {stamp})",
        rows.format(n=RECIPIENTS)
        + "INSERT INTO outbox (idempotency_key, contact_id, template_id, broadcast_id, "
        "message_class, context, status, reason, attempts, next_attempt_at, message_id, "
        "recipient, created_at, updated_at, sent_at) "
        f"SELECT 'broadcast:1:' || i, i, 1, 1, 'campaign', '{{}}', {STATUS}, {REASON}, 1, "
        f"{stamp}, 'm' || i, 'user' || i || '@example.com', {stamp}, "
        f"{at('(i % 7200) + (i % 97) * 600')}, "
        f"CASE WHEN i % 50 = 0 THEN NULL ELSE {at('i % 7200')} END " + source.format(n=RECIPIENTS),
        rows.format(n=RECIPIENTS)
        + "INSERT INTO activities (contact_id, type, cause, data, occurred_at, machine) "
        f"SELECT i, CASE WHEN i % 10 = 0 THEN 'link_clicked' ELSE 'email_opened' END, "
        f"'tracking', {json.format(MINE)}, "
        f"{at(f'7200 + (i * 7919) % {DAYS}')}, false "
        + source.format(n=RECIPIENTS)
        + f" WHERE {opened} AND i % 50 <> 0",
        rows.format(n=BACKGROUND)
        + "INSERT INTO activities (contact_id, type, cause, data, occurred_at, machine) "
        f"SELECT {RECIPIENTS} + i, CASE WHEN i % 4 = 0 THEN 'link_clicked' ELSE 'email_opened' "
        f"END, 'tracking', {json.format(OTHERS)}, "
        f"{at(f'(i * 7919) % {DAYS}')}, i % 9 = 0 " + source.format(n=BACKGROUND),
    ]


def load(database: Database) -> None:
    started = time.perf_counter()
    upgrade(database)
    dialect = database.engine.dialect.name
    with database.engine.begin() as conn:
        for statement in _statements(dialect):
            conn.execute(text(statement))
    analyze(database.engine)
    with database.session() as session:
        user = create_user(session, "bench@example.com", "Bench", role=Role.ADMIN, now=QUEUED)
        set_password(session, user, PASSWORD, now=QUEUED)
    print(f"  loaded in {time.perf_counter() - started:.0f} s", flush=True)


def plan(database: Database) -> None:
    with database.session() as session:
        broadcast = session.get(Broadcast, 1)
        assert broadcast is not None
        engaged = engaged_messages(broadcast)
        assert engaged is not None
        query = select(engaged.c.token)
        compiled = query.compile(database.engine, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN QUERY PLAN " if database.engine.dialect.name == "sqlite" else "EXPLAIN "
        for row in session.execute(text(explain + str(compiled))):
            print("   ", " ".join(str(c) for c in row))


def measure(database: Database, url: str, label: str) -> None:
    plan(database)
    client, _ = signed_in(database, url)

    def get(path: str) -> object:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response

    p50, p95 = percentiles(lambda: get("/admin/email/broadcasts/1"))
    report(f"{label}: broadcast page p50", p50, "ms")
    report(f"{label}: broadcast page p95", p95, "ms", target="1000 ms")
    # On a loaded machine the wall time is mostly the wait for a core: this process's CPU time
    # per page (with SQLite, the database's work runs in it too) is what a quiet machine takes.
    started = time.process_time()
    for _ in range(10):
        get("/admin/email/broadcasts/1")
    report(
        f"{label}: broadcast page, CPU of this process", (time.process_time() - started) * 100, "ms"
    )


def main() -> None:
    print(f"a broadcast of {RECIPIENTS:,} recipients, {BACKGROUND:,} other tracking events")
    path = fresh_sqlite("broadcast_report.db")
    url = f"sqlite:///{path}"
    sqlite = create_database(url)
    load(sqlite)
    measure(sqlite, url, "SQLite")
    sqlite.dispose()
    with scratch_postgres("broadcast") as pg_url:
        if pg_url is not None:
            postgres = create_database(pg_url)
            load(postgres)
            measure(postgres, pg_url, "PostgreSQL")
            postgres.dispose()


if __name__ == "__main__":
    main()
