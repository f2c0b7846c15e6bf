"""Real `tidings` processes for tests: started on a free loopback port, in a given directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

COMMAND = [sys.executable, "-c", "from tidings.cli import main; main()"]


def tidings_env(**settings: str) -> dict[str, str]:
    """This process's environment without TIDINGS_* settings, plus `settings` (by name:
    database_url= sets TIDINGS_DATABASE_URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update({f"TIDINGS_{name.upper()}": value for name, value in settings.items()})
    return env


def run_tidings(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run one `tidings` command to its end; returns its output (stdout and stderr)."""
    done = subprocess.run(
        [*COMMAND, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def start_serve(env: dict[str, str], cwd: Path, port: int, *extra: str) -> subprocess.Popen[bytes]:
    """`tidings serve --port PORT` in `cwd`, returned once /health answers."""
    server = subprocess.Popen(
        [*COMMAND, "serve", "--port", str(port), *extra],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60  # a loaded machine takes its time to import
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return server
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.05)
