"""Issue 18: `contact/sync` through the ActiveCampaign-compatible /api/3 on a real
`tidings serve` (loopback, fresh database, no worker), 16 concurrent keep-alive clients:
requests/s and p99 latency.

Baseline, measured in the same run on the same server: the same upsert through /api/v1
(`POST /api/v1/contacts/bulk` with one contact). Each request creates a new contact in one
round and updates it in the next, in both APIs alike. Target: ratio >= 0.8.
SQLite always; PostgreSQL too when TIDINGS_BENCH_POSTGRES_URL's server answers.
`--quick` or BENCH_SCALE runs fewer requests.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from _common import cpu_seconds, free_port, fresh_sqlite, report, scale, scratch_postgres

REQUESTS = max(400, int(3_000 * scale()))
CLIENTS = 16
BIN = Path(sys.executable).parent


def start_server(database_url: str, port: int) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": database_url,
        "TIDINGS_SECRET_KEY": "bench-secret",
        "TIDINGS_PORT": str(port),
    }
    subprocess.run([BIN / "tidings", "db", "upgrade"], env=env, check=True, capture_output=True)
    made = subprocess.run(
        [BIN / "tidings", "apikey", "create", "bench"], env=env, check=True, capture_output=True
    )
    key = made.stdout.decode().split()[0]
    server = subprocess.Popen(
        [BIN / "tidings", "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server, key
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("tidings serve did not start")


def requests_for(api: str, key: str, round_: int) -> list[bytes]:
    """HTTP/1.1 requests, ready to write: one upsert each."""
    out = []
    for index in range(REQUESTS):
        email = f"{api}{index}@example.com"
        name = f"N{round_}-{index}"
        if api == "ac":
            path, auth = "/api/3/contact/sync", f"Api-Token: {key}"
            body = {"contact": {"email": email, "firstName": name}}
        else:
            path, auth = "/api/v1/contacts/bulk", f"Authorization: Bearer {key}"
            body = {"contacts": [{"email": email, "first_name": name}]}
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        out.append(head.encode() + data)
    return out


async def fire(port: int, requests: list[bytes]) -> tuple[float, list[float]]:
    """(requests/s, each request's latency in seconds) over CLIENTS connections."""
    queue = list(reversed(requests))
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            request = queue.pop()
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            if status not in (b"200", b"201"):
                raise RuntimeError(f"answer {head[:200]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return len(requests) / (time.perf_counter() - start), latencies


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def run(label: str, database_url: str) -> None:
    port = free_port()
    server, key = start_server(database_url, port)
    try:
        asyncio.run(fire(port, requests_for("warm", key, 0)[:200]))
        results = {}
        for round_, kind in enumerate(("create", "update"), start=1):
            for api in ("v1", "ac"):
                cpu_before = cpu_seconds(server.pid)
                rate, latencies = asyncio.run(fire(port, requests_for(api, key, round_)))
                cpu = (cpu_seconds(server.pid) - cpu_before) / len(latencies) * 1000
                results[(kind, api)] = rate
                name = "POST /api/v1/contacts/bulk" if api == "v1" else "POST /api/3/contact/sync"
                baseline = None if api == "v1" else results[(kind, "v1")]
                report(
                    f"{label} {name} ({kind}), {CLIENTS} clients",
                    rate,
                    "requests/s",
                    baseline,
                    ">= 0.8" if baseline else "",
                )
                print(f"  p99 {p99(latencies):.1f} ms, server CPU {cpu:.2f} ms per request")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    print(f"{REQUESTS} upserts per round and API, {CLIENTS} concurrent clients")
    run("SQLite", f"sqlite:///{fresh_sqlite('activecampaign.db')}")
    with scratch_postgres("ac") as url:
        if url is not None:
            run("PostgreSQL", url)


if __name__ == "__main__":
    main()
