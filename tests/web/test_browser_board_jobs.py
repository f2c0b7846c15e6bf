"""In a real browser (fixtures in tests/web/browsing.py): a deal card dragged up within its column
keeps its place after a reload; a system automation made through the API is listed on the jobs
page with its next tick, and its page starts a run on demand."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.web.browsing import Server, signed_in, skip_without_chromium, sync_api
from tidings.automations.definition.system_steps import ScheduleTrigger
from tidings.system.schedule import next_tick

pytestmark = skip_without_chromium


def _column_order(page: object, stage: int) -> list[str]:
    cards = page.locator(f"ol.cards[data-stage='{stage}'] li[data-deal]")  # type: ignore[attr-defined]
    return [str(d) for d in cards.evaluate_all("cards => cards.map(c => c.dataset.deal)")]


def test_drag_a_card_up_within_its_column_and_reload(page: object, server: Server) -> None:
    pipeline = server.api.post(
        "/api/v1/pipelines",
        json={"name": "Order test", "currency": "EUR", "stages": [{"title": "Lead"}]},
    ).json()
    stage = pipeline["stages"][0]["id"]
    contact = server.api.post("/api/v1/contacts", json={"email": "order@example.com"}).json()
    deals = []
    for title in ("First", "Second", "Third"):
        made = server.api.post(
            "/api/v1/deals",
            json={"title": title, "pipeline_id": pipeline["id"], "contact_id": contact["id"]},
        )
        assert made.status_code == 201, made.text
        deals.append(str(made.json()["id"]))
    signed_in(page, server)
    page.goto(f"/admin/deals?pipeline={pipeline['id']}")  # type: ignore[attr-defined]
    assert _column_order(page, stage) == deals
    card = page.locator(f"li[data-deal='{deals[2]}']").bounding_box()  # type: ignore[attr-defined]
    top = page.locator(f"li[data-deal='{deals[0]}']").bounding_box()  # type: ignore[attr-defined]
    mouse = page.mouse  # type: ignore[attr-defined]
    with page.expect_response(lambda r: r.url.endswith(f"/deals/{deals[2]}/move")) as answer:  # type: ignore[attr-defined]
        mouse.move(card["x"] + 20, card["y"] + 10)
        mouse.down()
        mouse.move(card["x"] + 25, card["y"] + 5, steps=5)
        mouse.move(top["x"] + 25, top["y"] + 4, steps=20)
        mouse.up()
    assert answer.value.status == 200
    expected = [deals[2], deals[0], deals[1]]
    page.reload()  # type: ignore[attr-defined]
    sync_api.expect(page.locator(f"ol.cards[data-stage='{stage}'] li").first).to_have_attribute(  # type: ignore[attr-defined]
        "data-deal", deals[2]
    )
    assert _column_order(page, stage) == expected
    timeline = server.api.get(f"/api/v1/deals/{deals[2]}/timeline").json()["items"]
    assert [a["type"] for a in timeline] == ["deal_created"]  # a reorder is no event


def test_a_system_automation_listed_with_its_next_tick_and_run_now(
    page: object, server: Server
) -> None:
    trigger = {"type": "schedule", "cron": "0 6 * * MON", "timezone": "Europe/Berlin"}
    made = server.api.post(
        "/api/v1/automations",
        json={
            "definition": {
                "kind": "system",
                "name": "Weekly note",
                "trigger": trigger,
                "steps": [
                    {"id": "tell", "action": "notify", "to": "ops@example.com", "subject": "Hi"}
                ],
            }
        },
    )
    assert made.status_code == 201, made.text
    tick = next_tick(ScheduleTrigger.model_validate(trigger), datetime.now(UTC))
    signed_in(page, server)
    page.goto("/admin/jobs")  # type: ignore[attr-defined]
    row = page.locator(f"tr[data-automation='{made.json()['id']}']")  # type: ignore[attr-defined]
    sync_api.expect(row).to_contain_text("cron 0 6 * * MON (Europe/Berlin)")
    sync_api.expect(row.locator(".next-tick time")).to_have_attribute("datetime", tick.isoformat())
    row.get_by_role("link", name="Weekly note").click()
    sync_api.expect(page.get_by_role("heading", name="Weekly note")).to_be_visible()  # type: ignore[attr-defined]
    page.get_by_role("button", name="Run now").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("status")).to_contain_text("started")  # type: ignore[attr-defined]
    runs = server.api.get("/api/v1/system/runs", params={"automation": "Weekly note"}).json()
    assert len(runs["items"]) == 1
