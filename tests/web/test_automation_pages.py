"""Automations in the web admin: the list, a page drawing the flow with counts per step, the
YAML editor placing a validation error at its line, pause and resume, a step's contacts."""

from __future__ import annotations

import re

import yaml
from fastapi.testclient import TestClient

from tidings.activities.service import Cause
from tidings.automations import service as automations
from tidings.automations.engine import Engine
from tidings.automations.models import Automation
from tidings.clock import FakeClock
from tidings.contacts import service as contacts
from tidings.contacts.catalog import create_list
from tidings.contacts.schemas import ListIn
from tidings.contacts.upsert import ContactInput
from tidings.db.engine import Database
from tidings.web.automation_flow import yaml_line
from tidings.web.automation_pages import EXAMPLE

from .conftest import csrf_of

BROKEN = EXAMPLE.replace("days: 2", "days: soon")


def test_yaml_lines_follow_the_error_paths() -> None:
    assert yaml_line(EXAMPLE, "steps[1].wait.days") == 9
    assert yaml_line(EXAMPLE, "steps[2]") == 10
    assert yaml_line(EXAMPLE, "name") == 1
    assert yaml_line("a: [", "name") is None


def test_create_from_yaml_shows_the_error_at_its_line_then_saves(
    admin_client: TestClient, database: Database
) -> None:
    token = csrf_of(admin_client, "/admin/automations/new")
    bad = admin_client.post("/admin/automations", data={"csrf_token": token, "yaml_text": BROKEN})
    assert bad.status_code == 422
    assert "Line 9:" in bad.text and "steps[1].wait.days" in bad.text
    assert "days: soon" in bad.text  # the text is kept
    unparsable = admin_client.post(
        "/admin/automations", data={"csrf_token": token, "yaml_text": "name: [x"}
    )
    assert unparsable.status_code == 422 and "Line 1:" in unparsable.text
    with database.session() as session:
        assert session.query(Automation).count() == 0
    good = admin_client.post(
        "/admin/automations",
        data={"csrf_token": token, "yaml_text": EXAMPLE},
        follow_redirects=False,
    )
    assert good.status_code == 303
    page = admin_client.get(good.headers["location"])
    assert page.status_code == 200
    for text in ('data-step="hello"', 'data-step="pause"', 'data-step="done"', "Pause"):
        assert text in page.text
    listing = admin_client.get("/admin/automations")
    assert "Welcome" in listing.text and "active" in listing.text


def test_counts_per_step_pause_and_the_contacts_of_a_step(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        made = automations.create_automation(session, yaml.safe_load(EXAMPLE), now=clock.now())
        contact = contacts.create_contact(
            session, ContactInput(email="wait@example.com"), now=clock.now(), cause=Cause.API
        )
        automations.enrol_contacts(session, made, now=clock.now(), contact_ids=[contact.id])
        automation_id = made.id
    page = admin_client.get(f"/admin/automations/{automation_id}")
    assert "⏳ 1" in page.text
    step = admin_client.get(
        f"/admin/automations/{automation_id}/steps/hello", headers={"HX-Request": "true"}
    )
    assert "wait@example.com" in step.text
    token = csrf_of(admin_client, f"/admin/automations/{automation_id}")
    paused = admin_client.post(
        f"/admin/automations/{automation_id}/status",
        data={"csrf_token": token, "status": "paused"},
        follow_redirects=False,
    )
    assert paused.status_code == 303
    assert "Resume" in admin_client.get(f"/admin/automations/{automation_id}").text


def test_enrol_a_list_and_end_the_runs(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        made = automations.create_automation(session, yaml.safe_load(EXAMPLE), now=clock.now())
        create_list(session, ListIn(name="News"), now=clock.now())
        contact = contacts.create_contact(
            session,
            ContactInput(email="news@example.com", lists=["News"]),
            now=clock.now(),
            cause=Cause.API,
        )
        automation_id = made.id
    token = csrf_of(admin_client, f"/admin/automations/{automation_id}")
    path = f"/admin/automations/{automation_id}"
    neither = admin_client.post(f"{path}/enrol", data={"csrf_token": token})
    assert neither.status_code == 422 and "choose a list or a segment" in neither.text
    enrolled = admin_client.post(f"{path}/enrol", data={"csrf_token": token, "list_name": "News"})
    assert enrolled.status_code == 200 and "1 contacts enrolled." in enrolled.text
    ended = admin_client.post(f"{path}/end-runs", data={"csrf_token": token, "step": ""})
    assert "1 runs ended." in ended.text
    assert contact.id


def test_simulate_draws_the_days_and_refuses_a_bad_scenario(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        made = automations.create_automation(session, yaml.safe_load(EXAMPLE), now=clock.now())
        automation_id = made.id
    page = admin_client.get(f"/admin/automations/{automation_id}")
    assert 'id="simulation"' in page.text
    token = csrf_of(admin_client, f"/admin/automations/{automation_id}")
    scenario = "contacts: 4\nevents:\n  - {day: 1, tag: new, percent: 100}\n"
    part = admin_client.post(
        f"/admin/automations/{automation_id}/simulate",
        data={"csrf_token": token, "days": "3", "scenario": scenario},
        headers={"HX-Request": "true"},
    )
    assert part.status_code == 200, part.text
    assert 'id="simulation-chart"' in part.text and "data-chart=" in part.text
    assert "day 3" in part.text and "<html" not in part.text
    assert "&#34;completed&#34;" in part.text  # a series of the chart
    bad = admin_client.post(
        f"/admin/automations/{automation_id}/simulate",
        data={"csrf_token": token, "days": "2", "scenario": "- not a mapping"},
    )
    assert bad.status_code == 422 and "scenario" in bad.text and "<html" in bad.text
    with database.session() as session:  # the live data is untouched
        assert automations.enrolment_totals(session, automation_id) == {}


def test_the_counts_part_follows_the_worker(
    admin_client: TestClient, database: Database, clock: FakeClock
) -> None:
    with database.session() as session:
        made = automations.create_automation(session, yaml.safe_load(EXAMPLE), now=clock.now())
        contact = contacts.create_contact(
            session, ContactInput(email="moves@example.com"), now=clock.now(), cause=Cause.API
        )
        automations.enrol_contacts(session, made, now=clock.now(), contact_ids=[contact.id])
        automation_id = made.id
    path = f"/admin/automations/{automation_id}"
    assert f'hx-get="{path}/counts"' in admin_client.get(path).text  # the page asks again
    before = admin_client.get(f"{path}/counts", headers={"HX-Request": "true"})
    assert before.status_code == 200 and "<html" not in before.text
    assert 'id="counts-hello" hx-swap-oob="true"' in before.text
    assert _counts(before.text, "hello").startswith("⏳ 1 · ✓ 0")
    Engine(database, clock, batch_size=200).run_until_idle()
    after = admin_client.get(f"{path}/counts", headers={"HX-Request": "true"}).text
    assert _counts(after, "hello").startswith("⏳ 0 · ✓ 1")
    assert _counts(after, "pause").startswith("⏳ 1 · ✓ 0")
    assert 'id="run-totals" hx-swap-oob="true"' in after and "active 1" in after
    assert admin_client.get("/admin/automations/999999/counts").status_code == 404


def _counts(html: str, step: str) -> str:
    """The text of a step's counts in a page or part (tags dropped)."""
    start = html.index(f'id="counts-{step}"')
    piece = html[html.index(">", start) + 1 : html.index("</span></span>", start)]
    return re.sub(r"<[^>]+>", "", piece)
