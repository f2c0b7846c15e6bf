"""The web admin in a real browser (fixtures in tests/web/browsing.py): sign-in, CSRF, contacts,
segments, charts, the small-screen layout, the deals board and the automation editor."""

from __future__ import annotations

from tests.web.browsing import (
    ADMIN_EMAIL,
    WORKER_WAIT,
    Server,
    log_in,
    signed_in,
    skip_without_chromium,
    sync_api,
)

pytestmark = skip_without_chromium


def test_first_login_and_logout(page: object, server: Server) -> None:
    page.goto("/admin/contacts")  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Log in to Tidings")).to_be_visible()  # type: ignore[attr-defined]
    log_in(page, server)
    page.get_by_role("button", name="Log out").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Log in to Tidings")).to_be_visible()  # type: ignore[attr-defined]
    page.goto("/admin")  # type: ignore[attr-defined]
    assert "/admin/login" in page.url  # type: ignore[attr-defined]


def test_a_wrong_password_is_shown_next_to_the_field(page: object, server: Server) -> None:
    page.goto("/admin/login")  # type: ignore[attr-defined]
    page.get_by_label("Email").fill(ADMIN_EMAIL)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill("not the password")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]
    error = page.locator("#password-error")  # type: ignore[attr-defined]
    sync_api.expect(error).to_have_text("Wrong email or password.")
    sync_api.expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")  # type: ignore[attr-defined]


def test_a_forged_form_is_refused(page: object, server: Server) -> None:
    signed_in(page, server)
    page.goto("/admin/contacts")  # type: ignore[attr-defined]
    # A page of another origin cannot read the token; without it the request is refused.
    status = page.evaluate(  # type: ignore[attr-defined]
        """async () => (await fetch('/admin/contacts', {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'},
             body: 'email=forged%40example.com'})).status"""
    )
    assert status == 403
    page.locator("#h-new ~ form input[name=csrf_token]").evaluate("e => e.value = 'stale'")  # type: ignore[attr-defined]
    page.locator("#f-email").fill("forged@example.com")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Create contact").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()  # type: ignore[attr-defined]


def test_create_a_contact_tag_it_and_see_its_timeline(page: object, server: Server) -> None:
    signed_in(page, server)
    page.get_by_role("link", name="Contacts").click()  # type: ignore[attr-defined]
    page.locator("#f-email").fill("ann@example.com")  # type: ignore[attr-defined]
    page.get_by_label("First name").fill("Ann")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Create contact").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Ann ann@example.com")).to_be_visible()  # type: ignore[attr-defined]
    page.get_by_label("Add a tag").fill("vip")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Add tag").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("button", name="Remove tag vip")).to_be_visible()  # type: ignore[attr-defined]
    page.reload()  # type: ignore[attr-defined]
    timeline = page.locator("#timeline")  # type: ignore[attr-defined]
    sync_api.expect(timeline).to_contain_text("Tagged vip")
    sync_api.expect(timeline).to_contain_text("Contact created")
    page.get_by_label("Show").select_option("tags")  # type: ignore[attr-defined]
    sync_api.expect(timeline).not_to_contain_text("Contact created")


def test_build_a_segment_and_watch_the_count(page: object, server: Server) -> None:
    people = [
        {"email": f"seg{i}@example.com", "tags": ["buyer"] if i < 2 else []} for i in range(5)
    ]
    assert server.api.post("/api/v1/contacts/bulk", json={"contacts": people}).status_code == 200
    signed_in(page, server)
    page.goto("/admin/segments")  # type: ignore[attr-defined]
    count = page.get_by_test_id("segment-count")  # type: ignore[attr-defined]
    total = int(count.inner_text().replace(",", ""))
    assert total >= 5
    page.get_by_role("button", name="+ Tag").click()  # type: ignore[attr-defined]
    page.get_by_label("Tag name").fill("buyer")  # type: ignore[attr-defined]
    sync_api.expect(count).to_have_text("2")
    sync_api.expect(page.locator("#segment-json")).to_have_value(
        '{\n  "and": [\n    {\n      "has_tag": "buyer"\n    }\n  ]\n}'
    )  # type: ignore[attr-defined]
    page.get_by_role("button", name="+ Field").click()  # type: ignore[attr-defined]
    page.locator(".cond").nth(1).get_by_label("Value").fill("seg1")  # type: ignore[attr-defined]
    sync_api.expect(count).to_have_text("1")
    page.get_by_label("Segment name").fill("Buyers")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save segment").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_text("Segment saved.")).to_be_visible()  # type: ignore[attr-defined]
    sync_api.expect(count).to_have_text("1")


def test_the_engagement_chart_is_drawn(page: object, server: Server) -> None:
    events = [
        {"type": "email_opened", "email": "chart@example.com", "event_id": f"open-{i}"}
        for i in range(3)
    ]
    stored = server.api.post("/api/v1/events/batch?create_contacts=true", json=events)
    assert stored.status_code == 200 and stored.json()["stored"] == 3, stored.text
    signed_in(page, server)
    canvas = page.locator("#engagement-chart")  # type: ignore[attr-defined]
    sync_api.expect(canvas).to_be_visible()
    painted = page.evaluate(  # type: ignore[attr-defined]
        """() => { const c = document.getElementById('engagement-chart');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    )
    assert painted > 500


def test_the_layout_at_390_pixels_and_by_keyboard(page: object, server: Server) -> None:
    signed_in(page, server)
    page.set_viewport_size({"width": 390, "height": 844})  # type: ignore[attr-defined]
    menu = page.get_by_role("button", name="Menu")  # type: ignore[attr-defined]
    nav_link = page.locator("#main-nav").get_by_role("link", name="Contacts")  # type: ignore[attr-defined]
    sync_api.expect(menu).to_be_visible()
    sync_api.expect(nav_link).to_be_hidden()
    menu.click()
    sync_api.expect(nav_link).to_be_visible()
    width = page.evaluate("() => document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= 390
    menu.press("Tab")  # the menu's entries follow the button in the keyboard order
    focused = page.evaluate("() => document.activeElement.textContent.trim()")  # type: ignore[attr-defined]
    assert focused == "Dashboard"
    page.reload()  # type: ignore[attr-defined]
    page.keyboard.press("Tab")  # type: ignore[attr-defined]
    focused = page.evaluate("() => document.activeElement.textContent.trim()")  # type: ignore[attr-defined]
    assert focused == "Skip to content"


def test_drag_a_deal_card_to_another_stage(page: object, server: Server) -> None:
    """The move is saved, written to the timeline, and starts the automation waiting for deals
    that enter the stage: its task shows on the deal page and on the card."""
    pipeline = server.api.post(
        "/api/v1/pipelines",
        json={
            "name": "Board test",
            "currency": "EUR",
            "stages": [{"title": "Lead"}, {"title": "Won over"}],
        },
    ).json()
    stages = [s["id"] for s in pipeline["stages"]]
    contact = server.api.post("/api/v1/contacts", json={"email": "buyer@example.com"}).json()
    made = server.api.post(
        "/api/v1/deals",
        json={
            "title": "Dragged deal",
            "value": 90_000,
            "pipeline_id": pipeline["id"],
            "contact_id": contact["id"],
        },
    )
    assert made.status_code == 201, made.text
    deal = made.json()
    follow_up = {
        "name": "Won over follow-up",
        "trigger": {"type": "deal_stage_changed", "pipeline": "Board test", "to": "Won over"},
        "steps": [{"id": "call", "action": "add_task", "title": "Call the new customer"}],
    }
    created = server.api.post("/api/v1/automations", json={"definition": follow_up})
    assert created.status_code == 201, created.text
    signed_in(page, server)
    page.goto(f"/admin/deals?pipeline={pipeline['id']}")  # type: ignore[attr-defined]
    card = page.locator(f"li[data-deal='{deal['id']}']")  # type: ignore[attr-defined]
    target = page.locator(f"ol.cards[data-stage='{stages[1]}']")  # type: ignore[attr-defined]
    start, end = card.bounding_box(), target.bounding_box()
    mouse = page.mouse  # type: ignore[attr-defined]
    mouse.move(start["x"] + 20, start["y"] + 10)
    mouse.down()
    mouse.move(start["x"] + 30, start["y"] + 20, steps=5)
    mouse.move(end["x"] + 40, end["y"] + 20, steps=15)
    mouse.up()
    moved = page.locator(f"ol.cards[data-stage='{stages[1]}'] li[data-deal='{deal['id']}']")  # type: ignore[attr-defined]
    sync_api.expect(moved).to_be_visible()
    column = page.locator(f"section[data-stage='{stages[1]}'] .count")  # type: ignore[attr-defined]
    sync_api.expect(column).to_have_text("1")  # the board came back from the server
    assert server.api.get(f"/api/v1/deals/{deal['id']}").json()["stage_id"] == stages[1]
    page.goto(f"/admin/deals/{deal['id']}")  # type: ignore[attr-defined]
    sync_api.expect(page.locator("#deal-timeline")).to_contain_text("deal_stage_changed")
    # The worker runs the triggered automation; the task list asks for itself again meanwhile.
    tasks = page.locator("#deal-tasks")  # type: ignore[attr-defined]
    sync_api.expect(tasks).to_contain_text("Call the new customer", timeout=WORKER_WAIT)
    page.goto(f"/admin/deals?pipeline={pipeline['id']}")  # type: ignore[attr-defined]
    sync_api.expect(moved).to_contain_text("Next: Call the new customer")


def test_an_automation_from_yaml_with_an_error_at_its_line(page: object, server: Server) -> None:
    """…then fixed, saved, a list enrolled from the page, and the per-step counts moving as the
    worker runs the tag step (at once) and parks everyone at the two-day wait."""
    assert server.api.post("/api/v1/lists", json={"name": "Flow test"}).status_code == 201
    people = [{"email": f"flow{i}@example.com", "lists": ["Flow test"]} for i in range(3)]
    assert server.api.post("/api/v1/contacts/bulk", json={"contacts": people}).status_code == 200
    signed_in(page, server)
    page.get_by_role("link", name="Automations").click()  # type: ignore[attr-defined]
    page.get_by_role("link", name="New automation from YAML").click()  # type: ignore[attr-defined]
    editor = page.get_by_label("Definition (YAML)")  # type: ignore[attr-defined]
    text = editor.input_value()
    editor.fill(
        text.replace("name: Welcome", "name: Browser welcome").replace("days: 2", "days: soon")
    )
    page.get_by_role("button", name="Save").click()  # type: ignore[attr-defined]
    sync_api.expect(page.locator("#yaml-errors")).to_contain_text("Line 9:")  # type: ignore[attr-defined]
    page.get_by_label("Definition (YAML)").fill(
        text.replace("name: Welcome", "name: Browser welcome")
    )  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save").click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("heading", name="Browser welcome")).to_be_visible()  # type: ignore[attr-defined]
    sync_api.expect(page.locator("[data-step='pause']")).to_contain_text("⏳ 0")  # type: ignore[attr-defined]
    page.get_by_label("Enrol a list").select_option("Flow test")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Enrol", exact=True).click()  # type: ignore[attr-defined]
    sync_api.expect(page.get_by_role("status")).to_have_text("3 contacts enrolled.")  # type: ignore[attr-defined]
    # The page asks for its counts every few seconds; the worker polls every second.
    hello, pause = page.locator("#counts-hello"), page.locator("#counts-pause")  # type: ignore[attr-defined]
    sync_api.expect(pause).to_contain_text("⏳ 3 · ✓ 0", timeout=WORKER_WAIT)
    sync_api.expect(hello).to_contain_text("⏳ 0 · ✓ 3")
    sync_api.expect(page.locator("#run-totals")).to_contain_text("active 3")  # type: ignore[attr-defined]
    step = page.locator("[data-step='pause'] button")  # type: ignore[attr-defined]
    step.click()
    waiting = page.locator("#step-contacts")  # type: ignore[attr-defined]
    sync_api.expect(waiting).to_contain_text("Waiting at pause")
    for i in range(3):
        sync_api.expect(waiting.get_by_role("link", name=f"flow{i}@example.com")).to_be_visible()
    # The next refresh replaces the counts, not the step buttons: the focus stays where it was.
    pause.evaluate("e => e.dataset.stale = 'yes'")
    sync_api.expect(pause).not_to_have_attribute("data-stale", "yes", timeout=WORKER_WAIT)
    sync_api.expect(step).to_be_focused()
