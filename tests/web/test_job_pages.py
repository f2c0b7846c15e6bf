"""The jobs page: runs with their status, counts and errors; an output that is gone is a 404."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tidings.clock import FakeClock
from tidings.db.engine import Database
from tidings.jobs.models import JobRun


def test_runs_with_status_counts_and_errors(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        run = JobRun(
            kind="export",
            spec={},
            requested_by="test",
            status="failed",
            created_at=clock.now(),
            rows_read=12,
            rows_written=10,
            rows_rejected=2,
            errors=[{"message": "row 3: bad address"}],
            output_file="gone.csv",
        )
        session.add(run)
        session.flush()
        run_id = run.id
    page = admin_client.get("/admin/jobs")
    assert page.status_code == 200
    for text in ("export", "failed", "row 3: bad address", f"/admin/jobs/{run_id}/output"):
        assert text in page.text
    assert admin_client.get(f"/admin/jobs/{run_id}/output").status_code == 404
