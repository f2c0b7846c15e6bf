"""System automations in the admin: the list on the jobs page (trigger in words, next tick as
the scheduler computes it, last run, counts), a system automation's page (runs in keyset pages,
their steps and jobs with counts and downloads), pause and resume, run now (one run per form
submitted, however often), and `kind: system` YAML saved or refused at its line."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tidings.automations import service as automations
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.system.models import SystemRun
from tidings.system.scheduler import SystemScheduler

from .conftest import csrf_of

NIGHTLY = """kind: system
name: Nightly export
trigger: {type: schedule, cron: "0 6 * * MON", timezone: Europe/Berlin}
steps:
  - {id: export, job: {kind: export, export: {type: contacts}, name: nightly}}
  - {id: ok, if: {status: succeeded}, then: end, else: alarm}
  - {id: alarm, action: notify, to: ops@example.com, subject: Export failed}
"""
CHAINED = {
    "kind": "system",
    "name": "After exports",
    "trigger": {"type": "job_finished", "job": "export", "automation": "Nightly export"},
    "steps": [{"id": "tell", "action": "notify", "to": "ops@example.com", "subject": "done"}],
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The jobs the runs start write their exports under the test's own folder."""
    return Settings(
        database_url=database_url,
        secret_key="test-secret-key",
        secret_file=tmp_path / "tidings.secret",
        base_url="http://testserver",
        export_dir=tmp_path / "exports",
    )


def _create(database: Database, clock: FakeClock, data: dict[str, object]) -> int:
    with database.session() as session:
        return automations.create_automation(session, data, now=clock.now()).id


def _runs(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(SystemRun)) or 0)


def _run_now(client: TestClient, automation: int, page: str) -> tuple[str, object]:
    key = re.search(r'name="key" value="([^"]+)"', page)
    assert key
    token = csrf_of(client, f"/admin/automations/{automation}")
    answer = client.post(
        f"/admin/automations/{automation}/run-now",
        data={"csrf_token": token, "key": key.group(1)},
    )
    return key.group(1), answer


def test_the_jobs_page_lists_system_automations_with_their_next_tick(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    nightly = _create(database, clock, yaml.safe_load(NIGHTLY))
    chained = _create(database, clock, CHAINED)
    page = admin_client.get("/admin/jobs")
    assert page.status_code == 200
    assert "System automations" in page.text
    # Monday 2026-03-02 09:00 UTC: the next Monday 06:00 in Berlin is 05:00 UTC a week later
    assert "cron 0 6 * * MON (Europe/Berlin)" in page.text
    assert 'datetime="2026-03-09T05:00:00+00:00"' in page.text and "2026-03-09 05:00" in page.text
    assert "when an export job of &#39;Nightly export&#39; succeeds" in page.text
    assert f'href="/admin/automations/{nightly}"' in page.text
    assert f'href="/admin/automations/{chained}"' in page.text
    assert "never" in page.text


def test_run_now_starts_one_run_and_the_page_shows_its_steps_and_jobs(
    admin_client: TestClient, database: Database, clock: FakeClock, settings: Settings
) -> None:
    nightly = _create(database, clock, yaml.safe_load(NIGHTLY))
    page = admin_client.get(f"/admin/automations/{nightly}")
    assert page.status_code == 200
    for text in ("Run now", "Pause", "No run yet.", "2026-03-09 05:00", "kind: system"):
        assert text in page.text
    _, first = _run_now(admin_client, nightly, page.text)
    assert first.status_code == 303  # type: ignore[attr-defined]
    _, second = _run_now(admin_client, nightly, page.text)  # the same form submitted again
    assert second.status_code == 303  # type: ignore[attr-defined]
    assert "again=" in second.headers["location"]  # type: ignore[attr-defined]
    assert _runs(database) == 1
    assert "was already started" in admin_client.get(second.headers["location"]).text  # type: ignore[attr-defined]
    SystemScheduler(database, clock, settings).run_until_idle()
    shown = admin_client.get(f"/admin/automations/{nightly}")
    with database.session() as session:
        run = session.scalars(select(SystemRun)).one()
        job_id = (run.last_job or {})["run_id"]
    assert f'data-run="{run.id}"' in shown.text
    for text in (
        "done",
        "<code>export</code> succeeded",
        "<code>ok</code> yes",
        f"#{job_id} export",
    ):
        assert text in shown.text
    assert f'href="/admin/jobs/{job_id}/output"' in shown.text
    download = admin_client.get(f"/admin/jobs/{job_id}/output")
    assert download.status_code == 200 and download.text.startswith("email,")
    listed = admin_client.get("/admin/jobs")
    assert "done 1" in listed.text and "export succeeded: read 0" in listed.text


def test_pause_resume_and_run_now_refused_while_paused(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    nightly = _create(database, clock, yaml.safe_load(NIGHTLY))
    token = csrf_of(admin_client, f"/admin/automations/{nightly}")
    paused = admin_client.post(
        f"/admin/automations/{nightly}/status", data={"csrf_token": token, "status": "paused"}
    )
    assert paused.status_code == 303
    page = admin_client.get(f"/admin/automations/{nightly}")
    assert "Resume" in page.text and "none while paused" in page.text
    _, refused = _run_now(admin_client, nightly, page.text)
    assert refused.status_code == 409  # type: ignore[attr-defined]
    assert 'id="key-error"' in refused.text and "resume it to run it" in refused.text  # type: ignore[attr-defined]
    assert _runs(database) == 0
    admin_client.post(
        f"/admin/automations/{nightly}/status", data={"csrf_token": token, "status": "active"}
    )
    assert "Pause" in admin_client.get(f"/admin/automations/{nightly}").text


def test_runs_come_in_keyset_pages_newest_first(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    nightly = _create(database, clock, yaml.safe_load(NIGHTLY))
    with database.session() as session:
        for i in range(30):
            at = clock.now() + timedelta(minutes=i)
            session.add(
                SystemRun(
                    automation_id=nightly,
                    version=1,
                    tick_key=f"schedule:{nightly}:{i}",
                    state="failed" if i == 29 else "done",
                    step="export" if i == 29 else None,
                    wake_at=at,
                    last_job=None,
                    log=[["export", "failed: the export folder is not writable"]]
                    if i == 29
                    else [],
                    started_at=at,
                    ended_at=at,
                )
            )
    first = admin_client.get(f"/admin/automations/{nightly}")
    ids = [int(i) for i in re.findall(r'data-run="(\d+)"', first.text)]
    assert len(ids) == 25 and ids == sorted(ids, reverse=True)
    assert "the export folder is not writable" in first.text
    older = re.search(r'href="(/admin/automations/\d+\?before=\d+)"', first.text)
    assert older
    rest = [int(i) for i in re.findall(r'data-run="(\d+)"', admin_client.get(older.group(1)).text)]
    assert len(rest) == 5 and max(rest) < min(ids)
    jobs = admin_client.get("/admin/jobs")
    assert "done 29" in jobs.text and "failed 1" in jobs.text


def test_system_yaml_saves_in_the_editor_and_errors_show_at_their_line(
    admin_client: TestClient, database: Database
) -> None:
    token = csrf_of(admin_client, "/admin/automations/new")
    broken = NIGHTLY.replace("action: notify, to: ops@example.com", "action: add_tag, tag: x")
    bad = admin_client.post("/admin/automations", data={"csrf_token": token, "yaml_text": broken})
    assert bad.status_code == 422
    assert "Line 7:" in bad.text and "steps[2].action" in bad.text and "needs a contact" in bad.text
    good = admin_client.post("/admin/automations", data={"csrf_token": token, "yaml_text": NIGHTLY})
    assert good.status_code == 303
    page = admin_client.get(good.headers["location"])
    assert "system automation" in page.text and "Run now" in page.text
