"""The job runs API: start (202), show, list with filters and keyset pages, download the
output; bad input is a problem naming the field, never a 500."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.db.engine import Database

from .helpers import add_contacts, run

EXPORT = {"kind": "export", "export": {"type": "contacts"}}


def test_start_show_and_download(database: Database, clock: FakeClock, client: TestClient) -> None:
    add_contacts(database, clock, 2)
    started = client.post("/api/v1/jobs/runs", json={"spec": EXPORT})
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "queued" and body["kind"] == "export"
    shown = client.get(f"/api/v1/jobs/runs/{body['id']}").json()  # ran after the response
    assert shown["status"] == "succeeded" and shown["counts"]["written"] == 2
    assert shown["progress"] == {"done": 2, "total": 2}
    output = client.get(f"/api/v1/jobs/runs/{body['id']}/output")
    assert output.status_code == 200
    assert output.text.splitlines()[1].startswith("c0@example.com,")
    assert "attachment" in output.headers["content-disposition"]


def test_a_yaml_spec(client: TestClient) -> None:
    started = client.post(
        "/api/v1/jobs/runs", json={"yaml": "kind: export\nexport:\n  type: contacts\n"}
    )
    assert started.status_code == 202


def test_list_filters_and_pages(
    database: Database, clock: FakeClock, settings: Settings, client: TestClient
) -> None:
    for _ in range(3):
        run(database, clock, settings, EXPORT)
    clock.advance(hours=1)
    failing = {"kind": "membership", "action": "add", "segment": "nope", "list": "x"}
    run(database, clock, settings, failing)
    page = client.get("/api/v1/jobs/runs", params={"limit": 2}).json()
    assert [r["id"] for r in page["items"]] == [4, 3]
    rest = client.get("/api/v1/jobs/runs", params={"limit": 2, "cursor": page["next_cursor"]})
    assert [r["id"] for r in rest.json()["items"]] == [2, 1]
    assert rest.json()["next_cursor"] is None
    failed = client.get("/api/v1/jobs/runs", params={"status": "failed"}).json()["items"]
    assert [r["id"] for r in failed] == [4]
    assert client.get("/api/v1/jobs/runs", params={"kind": "send"}).json()["items"] == []
    since = clock.now().isoformat()
    recent = client.get("/api/v1/jobs/runs", params={"since": since}).json()["items"]
    assert [r["id"] for r in recent] == [4]


def test_bad_input_is_a_problem_naming_the_field(
    database: Database, clock: FakeClock, client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    bad = client.post("/api/v1/jobs/runs", json={"spec": {**EXPORT, "format": "xml"}})
    assert bad.status_code == 422 and "spec.format" in bad.json()["detail"]
    assert bad.headers["content-type"] == "application/problem+json"
    both = client.post("/api/v1/jobs/runs", json={"spec": EXPORT, "yaml": "x"})
    assert both.status_code == 422
    add_contacts(database, clock, 1, tags=["x"])
    hygiene = {"kind": "hygiene", "action": "delete", "segment": {"has_tag": "x"}, "reason": "r"}
    refused = client.post("/api/v1/jobs/runs", json={"spec": hygiene})
    assert refused.status_code == 422 and "confirm_all" in refused.json()["detail"]
    segment = client.post(
        "/api/v1/jobs/runs",
        json={"spec": {"kind": "membership", "action": "add", "segment": "nope", "list": "L"}},
    )
    assert segment.status_code in (404, 422) and "segment" in segment.json()["detail"]
    blocker = tmp_path / "file"
    blocker.write_text("")
    client.app.state.settings.export_dir = blocker / "exports"  # type: ignore[attr-defined]
    unwritable = client.post("/api/v1/jobs/runs", json={"spec": EXPORT})
    assert unwritable.status_code == 422 and "TIDINGS_EXPORT_DIR" in unwritable.json()["detail"]
    assert client.get("/api/v1/jobs/runs/99").status_code == 404
    assert client.get("/api/v1/jobs/runs/0").status_code == 422
    assert client.get("/api/v1/jobs/runs", params={"status": "nope"}).status_code == 422
    assert client.get("/api/v1/jobs/runs", params={"cursor": "zz"}).status_code == 422
    assert (
        client.get("/api/v1/jobs/runs", params={"since": "2026-01-01T00:00:00"}).status_code == 422
    )


def test_no_output_is_a_404(database: Database, clock: FakeClock, client: TestClient) -> None:
    add_contacts(database, clock, 1)
    run_id = client.post("/api/v1/jobs/runs", json={"spec": {**EXPORT, "name": "x"}}).json()["id"]
    settings = client.app.state.settings  # type: ignore[attr-defined]
    for path in settings.export_dir.iterdir():
        path.unlink()  # the retention period deleted it
    assert client.get(f"/api/v1/jobs/runs/{run_id}/output").status_code == 404
