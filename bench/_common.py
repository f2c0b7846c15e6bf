"""Helpers shared by the bench scripts: sizes, fresh databases, timing and printing."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from tidings.db.engine import normalize_url

DATA_DIR = Path(__file__).parent / ".data"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def scale() -> float:
    """1.0 = the issue's sizes; `--quick` or BENCH_SCALE=0.05 runs small."""
    if "--quick" in sys.argv:
        return 0.02
    return float(os.environ.get("BENCH_SCALE", "1"))


def fresh_sqlite(name: str) -> Path:
    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / name
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return path


@contextmanager
def scratch_postgres(label: str, keep: str | None = None) -> Iterator[str | None]:
    """The URL of a new PostgreSQL database for this run, dropped when the block ends; None
    (and a line saying why) when the server of TIDINGS_BENCH_POSTGRES_URL (used as the admin
    connection) cannot be reached. With `keep`, the database tidings_bench_<keep> is created
    if missing and kept for the next run."""
    admin_url = normalize_url(os.environ.get("TIDINGS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"tidings_bench_{keep}" if keep else f"tidings_bench_{label}_{os.getpid()}"
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if not (keep and exists):
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        print(f"PostgreSQL skipped ({type(exc).__name__}: {exc})")
        admin.dispose()
        yield None
        return
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def analyze(engine: Engine) -> None:
    """Fresh planner statistics after a bulk load (SQLite: ANALYZE; PostgreSQL: VACUUM ANALYZE,
    which cannot run inside a transaction)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far (Linux; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def timed() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    yield box
    box.append(time.perf_counter() - start)


def report(
    label: str, value: float, unit: str, baseline: float | None = None, target: str = ""
) -> None:
    line = f"{label:<58} {value:>12,.1f} {unit}"
    if baseline:
        line += f"   ratio to baseline {value / baseline:.2f}"
    if target:
        line += f"   (target {target})"
    print(line, flush=True)
