"""Issue 15: a stage change through the API -> a stage-triggered automation's action (a tag on
the contact, a task on the deal) visible through the API of a running `tidings serve` (its
in-process worker), p99 over 1,000 changes (target <= 500 ms), on SQLite and PostgreSQL.

Each change is PATCH /deals/{id} {"stage_id": Proposal}; then GET /contacts/{id} and
GET /tasks?deal={id} are polled until both show the action. The baseline is the PATCH alone
(its p99 in the same run). Run by bench/deals.py; BENCH_SCALE / --quick shrink it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
from _common import DATA_DIR, free_port, report, scale

from tidings.auth.service import create_api_key
from tidings.automations.service import create_automation
from tidings.contacts.service import ContactInput, upsert_contacts
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade
from tidings.deals.pipelines import StageSpec, create_pipeline, stages_of
from tidings.deals.service import create_deals, lookups_for
from tidings.deals.validation import DealInput, resolve

CHANGES = max(100, int(1_000 * scale()))
AUTOMATION = {
    "name": "Proposal sent",
    "trigger": {"type": "deal_stage_changed", "pipeline": "Sales", "to": "Proposal"},
    "steps": [
        {"id": "tag", "action": "add_tag", "tag": "Proposal sent"},
        {"id": "task", "action": "add_task", "type": "call", "title": "Follow up"},
    ],
}


def _setup(url: str) -> tuple[str, list[tuple[int, int]], int]:
    """The API key, (deal, contact) pairs in the Lead stage, and the Proposal stage's id."""
    database = create_database(url)
    upgrade(database)
    now = datetime.now(UTC)
    with database.session() as session:
        _, key = create_api_key(session, "bench", now=now)
        contacts = upsert_contacts(
            session,
            [ContactInput(email=f"d{i}@example.com") for i in range(CHANGES)],
            now=now,
            cause="import",
        ).contact_ids
        pipeline = create_pipeline(
            session, "Sales", "EUR", [StageSpec("Lead"), StageSpec("Proposal")], now=now
        )
        lead, proposal = (s.id for s in stages_of(session, pipeline.id))
        items = [
            DealInput({"title", "contact_id", "stage_id"}, title="D", contact_id=c, stage_id=lead)
            for c in contacts
        ]
        lookups = lookups_for(session, items)
        states = [resolve(item, None, lookups, now=now) for item in items]
        deals = create_deals(session, states, now=now, cause="import")
        create_automation(session, AUTOMATION, now=now)
    database.dispose()
    return key, list(zip(deals, contacts, strict=True)), proposal


def _serve(url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": url,
        "TIDINGS_SECRET_KEY": secrets.token_hex(16),
        "TIDINGS_PORT": str(port),
    }
    DATA_DIR.mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", "from tidings.cli import main; main()", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(DATA_DIR / "deals_serve.log").open("wb"),
    )


def _wait_up(api: httpx.Client, server: subprocess.Popen[bytes]) -> None:
    give_up = time.monotonic() + 120
    while time.monotonic() < give_up:
        if server.poll() is not None:
            raise RuntimeError(f"tidings serve exited; see {DATA_DIR / 'deals_serve.log'}")
        try:
            if api.get("/health").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("tidings serve did not come up in 120 s")


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


def bench_stage_latency(url: str, label: str) -> None:
    key, deals, proposal = _setup(url)
    port = free_port()
    server = _serve(url, port)
    latencies: list[float] = []
    patches: list[float] = []
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10) as api:
            _wait_up(api, server)
            for deal_id, contact_id in deals:
                began = time.perf_counter()
                api.patch(
                    f"/api/v1/deals/{deal_id}", json={"stage_id": proposal}
                ).raise_for_status()
                patches.append(time.perf_counter() - began)
                while True:
                    tags = api.get(f"/api/v1/contacts/{contact_id}").json()["tags"]
                    if (
                        "Proposal sent" in tags
                        and api.get("/api/v1/tasks", params={"deal": deal_id}).json()["items"]
                    ):
                        break
                    if time.perf_counter() - began > 30:
                        raise RuntimeError(f"deal {deal_id}: the automation's action never showed")
                latencies.append(time.perf_counter() - began)
    finally:
        server.terminate()
        server.wait(10)
    n = len(latencies)
    report(
        f"{label} serve: stage change -> tag + task visible, p50/{n}",
        _percentile(latencies, 0.5),
        "ms",
    )
    report(
        f"{label} serve: stage change -> tag + task visible, p99/{n}",
        _percentile(latencies, 0.99),
        "ms",
        baseline=_percentile(patches, 0.99),
        target="<= 500 ms",
    )
    report(f"{label} serve: the PATCH alone (baseline), p99/{n}", _percentile(patches, 0.99), "ms")
