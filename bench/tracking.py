"""Issue 3: the open pixel under concurrent load, against a real `tidings serve` on loopback.

Starts `tidings serve` (SQLite, fresh database) as a subprocess, fires GET /t/o/{token}.gif
from many keep-alive connections at once (a minimal asyncio HTTP/1.1 client, so the client is
not the bottleneck), stops the server cleanly (SIGINT) and then counts the stored events: every
request must have become one email_opened row (events are written in batches; shutdown writes
what is still queued). Then the same for clicks (GET /t/c/{token}, a tenth as many), which are
stored before their redirect is answered (issue 13).

Baseline, measured in the same run: GET /health of the same server (no token, no event).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import cpu_seconds, free_port, fresh_sqlite, report, scale

from tidings.clock import FakeClock
from tidings.events.tokens import TrackingTokens

REQUESTS = max(2_000, int(40_000 * scale()))
CLICKS = REQUESTS // 10
CONNECTIONS = 64
CONTACTS = 1_000
SECRET = "bench-secret"
BIN = Path(sys.executable).parent


def start_server(db_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": f"sqlite:///{db_path}",
        "TIDINGS_SECRET_KEY": SECRET,
        "TIDINGS_PORT": str(port),
    }
    subprocess.run([BIN / "tidings", "db", "upgrade"], env=env, check=True, capture_output=True)
    conn = sqlite3.connect(db_path)
    with conn:
        conn.executemany(
            "INSERT INTO contacts (email, status, score, fields, created_at, updated_at) "
            "VALUES (?, 'subscribed', 0, '{}', '2026-01-01 00:00:00.000000', "
            "'2026-01-01 00:00:00.000000')",
            [(f"user{i}@example.com",) for i in range(CONTACTS)],
        )
    conn.close()
    server = subprocess.Popen(
        [BIN / "tidings", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("tidings serve did not start")


async def fire(port: int, paths: list[bytes], status: bytes = b"200") -> float:
    """Send every request over CONNECTIONS keep-alive connections; returns requests/s."""
    queue = list(reversed(paths))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            path = queue.pop()
            writer.write(
                b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0 "
                b"(X11; Linux x86_64) Firefox/130.0\r\n\r\n"
            )
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 " + status):
                raise RuntimeError(head[:100])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    db_path = fresh_sqlite("tracking.db")
    port = free_port()
    server = start_server(db_path, port)
    try:
        # Tokens made "an hour ago", so the opens are not flagged as machine opens.
        an_hour_ago = FakeClock(datetime.now(UTC) - timedelta(hours=1))
        tokens = TrackingTokens(SECRET, clock=an_hour_ago)
        pixels = [
            f"/t/o/{tokens.open_token(1 + i % CONTACTS, f'm{i % 50}')}.gif".encode()
            for i in range(REQUESTS)
        ]
        health = [b"/health"] * REQUESTS
        asyncio.run(fire(port, health[:500]))  # warm-up
        base = asyncio.run(fire(port, health))
        report(f"GET /health, {CONNECTIONS} connections (baseline)", base, "requests/s")
        cpu_before, wall_before = cpu_seconds(server.pid), time.perf_counter()
        rate = asyncio.run(fire(port, pixels))
        busy = (cpu_seconds(server.pid) - cpu_before) / (time.perf_counter() - wall_before)
        print(f"  server process busy {busy:.0%} of one core during the pixel run")
        report(
            f"open pixel, {CONNECTIONS} connections",
            rate,
            "requests/s",
            baseline=base,
            target=">= 2,000 requests/s",
        )
        links = [
            f"/t/c/{tokens.click_token(1 + i % CONTACTS, f'https://shop.test/{i}', 'm1')}".encode()
            for i in range(CLICKS)
        ]
        clicks = asyncio.run(fire(port, links, b"302"))
        report(f"click redirect, {CONNECTIONS} connections", clicks, "requests/s", baseline=base)
    finally:
        server.send_signal(signal.SIGINT)  # clean shutdown: queued events are written
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    conn = sqlite3.connect(db_path)
    stored = dict(
        conn.execute(
            "SELECT type, count(*) FROM activities WHERE type IN ('email_opened', 'link_clicked') "
            "GROUP BY type"
        ).fetchall()
    )
    conn.close()
    opens, clicked = stored.get("email_opened", 0), stored.get("link_clicked", 0)
    print(
        f"  stored after shutdown: {opens:,} of {REQUESTS:,} opens, {clicked:,} of {CLICKS:,} clicks"
    )
    if (opens, clicked) != (REQUESTS, CLICKS):
        raise SystemExit("events were lost")


if __name__ == "__main__":
    main()
