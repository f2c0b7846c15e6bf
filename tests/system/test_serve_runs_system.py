"""On one box `tidings serve` is all you need: without --no-worker it runs the system
automations' scheduler and the jobs worker too, so a run started on demand is advanced and its
export job done by the serving process alone (a real process on loopback)."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.processes import start_serve, tidings_env
from tidings.auth.service import create_api_key
from tidings.db.engine import create_database
from tidings.db.migrate import upgrade

EXPORT = {
    "kind": "system",
    "name": "Export on demand",
    "trigger": {"type": "schedule", "cron": "0 6 * * MON", "timezone": "Europe/Berlin"},
    "steps": [{"id": "export", "job": {"kind": "export", "export": {"type": "contacts"}}}],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_advances_a_system_run_and_its_job(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/tidings.db"
    database = create_database(url)
    upgrade(database)
    with database.session() as session:
        _, key = create_api_key(session, "test", now=datetime.now(UTC))
    database.dispose()
    env = tidings_env(
        database_url=url, secret_file=str(tmp_path / "secret"), export_dir=str(tmp_path / "out")
    )
    port = _free_port()
    server = start_serve(env, tmp_path, port)
    try:
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}
        )
        made = api.post("/api/v1/automations", json={"definition": EXPORT})
        assert made.status_code == 201, made.text
        started = api.post(f"/api/v1/system/automations/{made.json()['id']}/runs")
        assert started.status_code == 201, started.text
        deadline = time.monotonic() + 30  # the scheduler polls every second
        while time.monotonic() < deadline:
            [run] = api.get("/api/v1/system/runs").json()["items"]
            if run["state"] == "done":
                break
            time.sleep(0.2)
        assert run["state"] == "done", run
        assert run["last_job"]["status"] == "succeeded"
        assert len(list((tmp_path / "out").iterdir())) == 1
    finally:
        server.terminate()
        server.wait(timeout=10)
