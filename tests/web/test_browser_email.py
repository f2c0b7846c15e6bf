"""A broadcast made and sent from the admin in a real browser (fixtures in tests/web/browsing.py:
a real `tidings serve --dev-smtp` with its worker): the mail reaches the dev mailbox, the
broadcast's page (refreshing itself while sending) shows it delivered, a click on the mail's
tracked link shows in the totals and under "clicks per link", and the chart is drawn."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

from tests.web.browsing import Server, signed_in, skip_without_chromium, sync_api

pytestmark = skip_without_chromium
expect = sync_api.expect


def _delivered_html(server: Server, recipient: str) -> str:
    """The HTML of the mail the dev mailbox caught for `recipient`."""
    listing = server.api.get("/dev/mailbox").text
    number = re.search(rf'<a href="/dev/mailbox/(\d+)">\d+</a></td>\s*<td>{recipient}', listing)
    assert number, listing
    raw = server.api.get(f"/dev/mailbox/{number.group(1)}", params={"raw": 1}).content
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("html",))
    assert body is not None
    return str(body.get_content())


def test_a_broadcast_sent_from_the_admin_is_delivered_and_clicked(
    page: object, server: Server
) -> None:
    made = server.api.post("/api/v1/lists", json={"name": "Browser news"})
    assert made.status_code == 201, made.text
    reader = server.api.post(
        "/api/v1/contacts", json={"email": "reader@example.com", "lists": ["Browser news"]}
    )
    assert reader.status_code in (200, 201), reader.text
    target = f"{server.url}/health"  # on loopback: following it leaves the machine not
    signed_in(page, server)
    page.goto("/admin/email/templates/new")  # type: ignore[attr-defined]
    page.get_by_label("Name", exact=True).fill("browser-offer")  # type: ignore[attr-defined]
    page.get_by_label("Subject").fill("An offer for you")  # type: ignore[attr-defined]
    page.get_by_label("HTML", exact=True).fill(f'<p>See <a href="{target}">the offer</a>.</p>')  # type: ignore[attr-defined]
    page.get_by_role("button", name="Save template").click()  # type: ignore[attr-defined]
    expect(page.get_by_role("heading", name="browser-offer")).to_be_visible()  # type: ignore[attr-defined]

    page.goto("/admin/email")  # type: ignore[attr-defined]
    page.get_by_label("Name", exact=True).fill("Browser broadcast")  # type: ignore[attr-defined]
    page.get_by_label("Template", exact=True).select_option(label="browser-offer")  # type: ignore[attr-defined]
    page.get_by_label("To the list").select_option(label="Browser news")  # type: ignore[attr-defined]
    # Later, so that the worker leaves it to the "Send now" button.
    page.get_by_label("Send at (UTC; blank: now)").fill("2099-01-01T09:00")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Create broadcast").click()  # type: ignore[attr-defined]
    page.get_by_role("link", name="Browser broadcast").click()  # type: ignore[attr-defined]
    expect(page.locator("#broadcast-status")).to_have_text("scheduled")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Send now").click()  # type: ignore[attr-defined]

    delivered = page.locator("[data-total=delivered] td").first  # type: ignore[attr-defined]
    # The page refreshes itself while sending; the worker sends within a second or two (more
    # on a loaded machine).
    expect(delivered).to_have_text("1", timeout=20_000)
    expect(page.locator("#broadcast-status")).to_have_text("sent")  # type: ignore[attr-defined]
    html = _delivered_html(server, "reader@example.com")
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html)
    assert click, html

    canvas = page.locator("#broadcast-chart")  # type: ignore[attr-defined]
    expect(canvas).to_be_visible()
    painted = page.evaluate(  # type: ignore[attr-defined]
        """() => { const c = document.getElementById('broadcast-chart');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    )
    assert painted > 500

    page.set_viewport_size({"width": 390, "height": 844})  # type: ignore[attr-defined]
    expect(canvas).to_be_visible()
    # Chart.js fits the canvas to its box on the next resize observation: polled, not slept.
    page.wait_for_function("() => document.documentElement.scrollWidth <= 390")  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 1280, "height": 900})  # type: ignore[attr-defined]

    # The test server counts a click made at once as a person's (TIDINGS_TRACKING_MACHINE_SECONDS=0).
    reader_tab = page.context.new_page()  # type: ignore[attr-defined]
    reader_tab.goto(click.group(1))
    assert reader_tab.url.startswith(target)
    reader_tab.close()
    page.reload()  # type: ignore[attr-defined]
    expect(page.locator("[data-total=clicked] td").first).to_have_text("1")  # type: ignore[attr-defined]
    expect(page.locator("[data-total=opened] td").first).to_have_text("1")  # type: ignore[attr-defined]
    link = page.locator("#links tbody tr").first  # type: ignore[attr-defined]
    expect(link).to_contain_text(target)
    expect(link.locator("td").nth(2)).to_have_text("1")
