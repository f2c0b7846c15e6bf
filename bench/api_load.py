"""Issue 12: the API under concurrent load, against a real `tidings serve` on SQLite (loopback).

Starts `tidings serve` (SQLite, fresh database with CONTACTS contacts, the automation worker
in-process as in production) and runs CLIENTS concurrent clients (httpx, keep-alive) for
BENCH_API_SECONDS (default 60), each picking at random among
  reads:  contact list, contact page, segment preview (a small condition)
  writes: contact upsert, event, tag change (add or remove)
and prints requests/s, p50/p99 per kind and the errors. Then the same load again with one more
client looping a deliberately slow read: a segment preview of 200 `contains` comparisons over
every contact (seconds each); nobody else's p99 may rise above 500 ms while it runs.

Targets: p99 <= 250 ms for reads and writes, 0 errors; with the slow read beside them,
every other kind's p99 <= 500 ms.
Baseline, measured in the same run: GET /health of the same server (no database).

BENCH_API_SECONDS=10 (or --quick) shortens each phase.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _common import free_port, fresh_sqlite, report, scale

from tidings.auth.service import create_api_key
from tidings.contacts.upsert import ContactInput, upsert_contacts
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade

CLIENTS = 32
CONTACTS = max(2_000, int(50_000 * scale()))
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "10" if "--quick" in sys.argv else "60"))
TAGS = [f"tag{i}" for i in range(20)]
SECRET = "bench-secret"
BIN = Path(sys.executable).parent
NOW = datetime(2026, 3, 1, tzinfo=UTC)
# (kind, weight): mostly reads, as an admin UI and integrations use the API.
KINDS = [
    ("contact list", 20),
    ("contact page", 25),
    ("segment preview", 10),
    ("upsert", 20),
    ("event", 15),
    ("tag change", 10),
]
SMALL_CONDITION = {"and": [{"has_tag": "tag3"}, {"status": "subscribed"}]}
SLOW_CONDITION = {
    "or": [{"field": "first_name", "op": "contains", "value": f"zz{i}"} for i in range(200)]
}


def seed(db_path: Path) -> str:
    """A migrated database with CONTACTS contacts (a tenth of them tagged); returns an API key."""
    database = create_database(f"sqlite:///{db_path}")
    upgrade(database)
    with database.session() as session:
        for start in range(0, CONTACTS, 10_000):
            rows = [
                ContactInput(
                    email=f"user{i}@example.com",
                    first_name=f"First{i}",
                    tags=[TAGS[i % len(TAGS)]] if i % 10 == 0 else [],
                )
                for i in range(start, min(start + 10_000, CONTACTS))
            ]
            upsert_contacts(session, rows, now=NOW, cause="import")
        _, key = create_api_key(session, "bench", now=NOW)
    database.dispose()
    return key


def start_server(db_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": f"sqlite:///{db_path}",
        "TIDINGS_SECRET_KEY": SECRET,
        "TIDINGS_PORT": str(port),
    }
    server = subprocess.Popen(
        [BIN / "tidings", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("tidings serve did not start")


Call = Callable[[httpx.AsyncClient, random.Random], Awaitable[httpx.Response]]


def _contact_id(rng: random.Random) -> int:
    return rng.randint(1, CONTACTS)


CALLS: dict[str, Call] = {
    "contact list": lambda c, r: c.get(
        "/api/v1/contacts", params={"limit": 50, "tag": r.choice(TAGS)}
    ),
    "contact page": lambda c, r: c.get(f"/api/v1/contacts/{_contact_id(r)}"),
    "segment preview": lambda c, r: c.post(
        "/api/v1/segments/preview", json={"condition": SMALL_CONDITION, "limit": 20}
    ),
    "upsert": lambda c, r: c.post(
        "/api/v1/contacts/bulk",
        json={"contacts": [{"email": f"user{r.randint(0, CONTACTS * 2)}@example.com"}]},
    ),
    "event": lambda c, r: c.post(
        "/api/v1/events",
        json={
            "type": "custom",
            "name": "bench",
            "contact_id": _contact_id(r),
            "properties": {"n": r.randint(0, 9)},
        },
    ),
    "tag change": lambda c, r: (c.put if r.random() < 0.5 else c.delete)(
        f"/api/v1/contacts/{_contact_id(r)}/tags/{r.choice(TAGS)}"
    ),
}


class Tally:
    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, list[str]] = defaultdict(list)


async def _timed(tally: Tally, kind: str, request: Awaitable[httpx.Response]) -> None:
    start = time.perf_counter()
    try:
        response = await request  # (an httpx coroutine: nothing is sent before this)
        failed = (
            None if response.status_code < 400 else f"{response.status_code} {response.text[:120]}"
        )
    except httpx.HTTPError as exc:
        failed = f"{type(exc).__name__}: {exc}"
    tally.latencies[kind].append(time.perf_counter() - start)
    if failed:
        tally.errors[kind].append(failed)


async def load(port: int, key: str, seconds: float, *, slow: bool) -> tuple[Tally, float]:
    tally = Tally()
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    limits = httpx.Limits(max_connections=CLIENTS + 1, max_keepalive_connections=CLIENTS + 1)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {key}"},
        limits=limits,
        timeout=120,
    ) as client:
        end = time.perf_counter() + seconds

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.perf_counter() < end:
                kind = rng.choices(names, weights)[0]
                await _timed(tally, kind, CALLS[kind](client, rng))

        async def slow_reader() -> None:
            while time.perf_counter() < end:
                await _timed(
                    tally,
                    "slow preview",
                    client.post("/api/v1/segments/preview", json={"condition": SLOW_CONDITION}),
                )

        started = time.perf_counter()
        tasks = [worker(i) for i in range(CLIENTS)] + ([slow_reader()] if slow else [])
        await asyncio.gather(*tasks)
        return tally, time.perf_counter() - started


async def health_rate(port: int, seconds: float) -> float:
    count = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < end:
                await client.get("/health")
                count += 1

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return count / seconds


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_phase(label: str, tally: Tally, elapsed: float, baseline: float) -> None:
    total = sum(len(v) for v in tally.latencies.values())
    print(f"-- {label}")
    report("  requests/s (all kinds)", total / elapsed, "req/s", baseline)
    for kind in [*[k for k, _ in KINDS], "slow preview"]:
        values = tally.latencies.get(kind)
        if not values:
            continue
        p50, p99 = _quantile(values, 0.50) * 1000, _quantile(values, 0.99) * 1000
        errors = len(tally.errors.get(kind, []))
        target = "" if kind == "slow preview" else ("<= 500" if "slow" in label else "<= 250")
        print(
            f"  {kind:<16} {len(values):>7} requests  p50 {p50:>7.1f} ms  p99 {p99:>7.1f} ms"
            f"  (target p99 {target or 'none'})  errors {errors}",
            flush=True,
        )
        for message in tally.errors.get(kind, [])[:3]:
            print(f"      e.g. {message}")
    print(
        f"  median of all latencies {statistics.median(x for v in tally.latencies.values() for x in v) * 1000:.1f} ms"
    )


def main() -> None:
    db_path = fresh_sqlite("api_load.db")
    print(f"seeding {CONTACTS:,} contacts ...", flush=True)
    key = seed(db_path)
    port = free_port()
    server = start_server(db_path, port)
    try:
        baseline = asyncio.run(health_rate(port, min(5.0, SECONDS)))
        report("GET /health (baseline, no database)", baseline, "req/s")
        tally, elapsed = asyncio.run(load(port, key, SECONDS, slow=False))
        print_phase(f"{CLIENTS} clients, {SECONDS:g} s", tally, elapsed, baseline)
        tally, elapsed = asyncio.run(load(port, key, SECONDS, slow=True))
        print_phase(f"{CLIENTS} clients + 1 slow preview, {SECONDS:g} s", tally, elapsed, baseline)
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
