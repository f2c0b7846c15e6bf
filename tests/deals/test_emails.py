"""1:1 email from a deal: sent as the owner through the outbox, replies matched back to it by
reply address or In-Reply-To / References, the personal sending policy, automate this email."""

from __future__ import annotations

import asyncio
import email
import email.policy
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.deals.helpers import Crm, ok, problem
from tests.messaging.conftest import Sink, free_port, sender_options
from tidings.activities.service import Cause
from tidings.automations.models import Enrolment
from tidings.clock import FakeClock
from tidings.config import Settings
from tidings.contacts.models import Contact
from tidings.contacts.service import change_status
from tidings.contacts.suppressions import add_suppression
from tidings.db.engine import Database
from tidings.deals.models import DealEmail, DealEmailReply
from tidings.messaging.inbound import InboundHandler, InboundResult
from tidings.messaging.models import OutboxMessage
from tidings.messaging.sender import Sender

DOMAIN = "bounces.example.com"


def owned_deal(crm: Crm, **more: Any) -> int:
    deal = crm.deal(owner_id=crm.users[0], contact_ids=[crm.contacts[1]], **more)
    return int(deal["id"])


def send(crm: Crm, deal_id: int, **body: Any) -> Any:
    payload = {"subject": "Your quote", "body": "Hello,\nhere it is.\n<Ann>"}
    payload.update(body)
    return crm.client.post(f"/api/v1/deals/{deal_id}/emails", json=payload)


def emails_of(crm: Crm, deal_id: int) -> list[dict[str, Any]]:
    return ok(crm.client.get(f"/api/v1/deals/{deal_id}/emails"))["items"]  # type: ignore[no-any-return]


def reply_mail(
    in_reply_to: str, *, subject: str = "Re: Your quote", message_id: str = "<r1@client.example>"
) -> bytes:
    return (
        "From: Carl <c0@example.com>\r\nTo: ann@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n"
        f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nYes, let's do it.\r\n"
    ).encode()


def deliver(
    database: Database, clock: FakeClock, settings: Settings, mails: list[tuple[bytes, str]]
) -> list[InboundResult]:
    """Each (message, envelope recipient) through a real `tidings inbound` listener."""
    handler = InboundHandler(database, clock, settings)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:

        async def main() -> None:
            for raw, recipient in mails:
                await aiosmtplib.send(
                    raw,
                    sender="c0@example.com",
                    recipients=[recipient],
                    hostname="127.0.0.1",
                    port=port,
                )

        asyncio.run(main())
    finally:
        controller.stop()
    return handler.results


def test_an_email_is_queued_as_personal_mail_and_recorded(crm: Crm, database: Database) -> None:
    deal_id = owned_deal(crm)
    sent = ok(send(crm, deal_id, to="C1@example.com"), 201)
    assert sent["to"] == "c1@example.com" and sent["contact_id"] == crm.contacts[1]
    assert sent["from_address"] == "Ann <ann@example.com>" and sent["replies"] == []
    token, _, domain = sent["message_id"].partition("@")
    assert len(token) == 32 and domain
    with database.session() as session:
        row = session.get(OutboxMessage, sent["outbox_id"])
        assert row is not None
        assert (row.status, row.message_class, row.message_id) == ("queued", "personal", token)
        assert row.context["from"] == "Ann <ann@example.com>"
    [activity] = [a for a in crm.timeline(deal_id) if a["type"] == "deal_email_sent"]
    assert activity["data"]["contact_id"] == crm.contacts[1]
    assert activity["data"]["deal_email_id"] == sent["id"]
    assert activity["data"]["subject"] == "Your quote"
    # the default recipient is the primary contact
    second = ok(send(crm, deal_id), 201)
    assert second["contact_id"] == crm.contacts[0]
    assert [e["id"] for e in emails_of(crm, deal_id)] == [second["id"], sent["id"]]
    page = ok(crm.client.get(f"/api/v1/deals/{deal_id}/emails?limit=1"))
    assert len(page["items"]) == 1 and page["next_cursor"]


def test_the_sent_message_comes_from_the_owner_with_a_reply_address(
    crm: Crm, database: Database, clock: FakeClock, sink: Sink
) -> None:
    sent = ok(send(crm, owned_deal(crm)), 201)
    token = sent["message_id"].partition("@")[0]

    async def main() -> None:
        sender = Sender(database, clock, sender_options(sink.port))
        try:
            await sender.run_once()
        finally:
            await sender.close()

    asyncio.run(main())
    [received] = sink.handler.messages
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["From"] == "Ann <ann@example.com>"
    assert message["Reply-To"] == f"reply+{token}@{DOMAIN}"
    assert message["Message-ID"].startswith(f"<{token}@")
    assert message["Subject"] == "Your quote"
    assert message["List-Unsubscribe"] is None  # personal mail, not marketing
    body = message.get_body(("plain",))
    assert body is not None and "here it is.\r\n<Ann>" in body.get_content()
    html = message.get_body(("html",))
    assert html is not None and "&lt;Ann&gt;" in html.get_content()


def test_replies_are_matched_stored_and_recorded_once(
    crm: Crm, database: Database, clock: FakeClock, settings: Settings
) -> None:
    deal_id = owned_deal(crm)
    sent = ok(send(crm, deal_id), 201)
    token = sent["message_id"].partition("@")[0]
    clock.advance(hours=1)
    results = deliver(
        database,
        clock,
        settings,
        [
            (reply_mail(sent["message_id"]), f"reply+{token}@{DOMAIN}"),
            # the same reply again (a retried delivery)
            (reply_mail(sent["message_id"]), f"reply+{token}@{DOMAIN}"),
            # a reply reaching the bounce address, matched by In-Reply-To alone
            (
                reply_mail(sent["message_id"], subject="Re: also", message_id="<r2@x>"),
                f"bounce+{token}@{DOMAIN}",
            ),
            # a reply address whose token is no email of ours: not a reply, logged
            (reply_mail("nothing@example.com"), f"reply+{'0' * 32}@{DOMAIN}"),
        ],
    )
    assert [(r.kind, r.matched) for r in results] == [
        ("reply", True),
        ("reply", True),
        ("reply", True),
        ("reply", False),
    ]
    assert results[1].detail["duplicate"] is True
    [listed] = emails_of(crm, deal_id)
    assert [(r["subject"], r["from_address"]) for r in listed["replies"]] == [
        ("Re: Your quote", "Carl <c0@example.com>"),
        ("Re: also", "Carl <c0@example.com>"),
    ]
    assert listed["replies"][0]["text"].strip() == "Yes, let's do it."
    assert listed["replies"][0]["received_at"].startswith(clock.now().date().isoformat())
    replied = [a for a in crm.timeline(deal_id) if a["type"] == "deal_email_replied"]
    assert len(replied) == 2
    assert replied[-1]["data"]["from"] == "c0@example.com"
    assert replied[-1]["data"]["deal_email_id"] == sent["id"]


def test_replies_through_the_bounce_webhook(crm: Crm, client: TestClient) -> None:
    deal_id = owned_deal(crm)
    sent = ok(send(crm, deal_id), 201)
    answer = ok(client.post("/api/v1/webhooks/bounce", content=reply_mail(sent["message_id"])))
    assert answer["reply"]["deal_email_id"] == sent["id"]
    assert len(emails_of(crm, deal_id)[0]["replies"]) == 1
    # a reply naming no email of ours is no reply: the webhook's answer for a message that
    # is not a bounce, nothing stored
    stray = reply_mail(f"{'0' * 32}@localhost")
    answer = ok(client.post("/api/v1/webhooks/bounce", content=stray))
    assert "reply" not in answer and answer["report"]["kind"] == "none"
    assert len(emails_of(crm, deal_id)[0]["replies"]) == 1
    assert problem(client.post("/api/v1/webhooks/bounce", content=b"   "), 422)


STATUSES = [
    ("subscribed", True),
    ("pending", True),
    ("unsubscribed", True),
    ("transactional", True),
    ("bounced", False),
    ("complained", False),
]


@pytest.mark.parametrize(("status", "allowed"), STATUSES)
def test_the_personal_policy_for_each_status(
    crm: Crm, database: Database, clock: FakeClock, status: str, allowed: bool
) -> None:
    deal_id = owned_deal(crm)
    with database.session() as session:
        contact = session.get(Contact, crm.contacts[0])
        assert contact is not None
        change_status(session, contact, status, now=clock.now(), cause=Cause.API)
    response = send(crm, deal_id)
    if allowed:
        assert ok(response, 201)["contact_id"] == crm.contacts[0]
    else:
        refused = problem(response, 409)
        assert refused["errors"][0]["field"] == "to"
        assert f"status {status} does not allow personal mail" in refused["detail"]
        _nothing_written(database, deal_id)


def test_a_suppressed_address_gets_no_personal_mail(
    crm: Crm, database: Database, clock: FakeClock
) -> None:
    deal_id = owned_deal(crm)
    with database.session() as session:
        add_suppression(session, "c0@example.com", now=clock.now(), reason="asked")
    refused = problem(send(crm, deal_id), 409)
    assert "suppressed" in refused["detail"] and refused["errors"][0]["field"] == "to"
    _nothing_written(database, deal_id)


def _nothing_written(database: Database, deal_id: int) -> None:
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        assert session.scalar(select(func.count()).select_from(DealEmail)) == 0


def test_bad_input_is_a_clear_error(crm: Crm) -> None:
    deal_id = owned_deal(crm)
    stranger = problem(send(crm, deal_id, to="c2@example.com"), 422)
    assert stranger["errors"][0]["field"] == "to"
    assert "not a contact of deal" in stranger["detail"]
    assert problem(send(crm, deal_id, subject=" "), 422)["errors"][0]["field"] == "subject"
    assert problem(send(crm, deal_id, subject="a\r\nBcc: x@y"), 422)["errors"][0]["field"] == (
        "subject"
    )
    assert problem(send(crm, deal_id, automation_id=999), 422)["errors"][0]["field"] == (
        "automation_id"
    )
    assert problem(send(crm, deal_id, automate_on="replied"), 422)["errors"][0]["field"] == (
        "automate_on"
    )
    assert problem(send(crm, 999_999), 404)
    unowned = crm.deal()["id"]
    assert problem(send(crm, unowned), 409)["errors"][0]["field"] == "owner_id"
    ok(crm.client.post(f"/api/v1/users/{crm.users[0]}/deactivate"))
    gone = problem(send(crm, deal_id), 409)
    assert gone["errors"][0]["field"] == "owner_id" and "deactivated" in gone["detail"]


def _automation(client: TestClient, name: str) -> int:
    definition = {
        "name": name,
        "trigger": {"type": "tag_added", "tag": f"{name}-tag"},
        "steps": [{"id": "a", "action": "add_tag", "tag": f"{name}-done"}],
    }
    created = client.post(
        "/api/v1/automations", json={"definition": definition, "create_missing": True}
    )
    return int(ok(created, 201)["id"])


def _enrolled(database: Database, automation_id: int) -> list[tuple[int, int | None]]:
    """(contact, deal) of the automation's runs."""
    with database.session() as session:
        rows = session.execute(
            select(Enrolment.contact_id, Enrolment.deal_id).where(
                Enrolment.automation_id == automation_id
            )
        )
        return [(c, d) for c, d in rows]


def test_automate_this_email_on_send_and_on_reply(
    crm: Crm, database: Database, clock: FakeClock, settings: Settings
) -> None:
    deal_id = owned_deal(crm)
    on_send = _automation(crm.client, "on-send")
    on_reply = _automation(crm.client, "on-reply")
    ok(send(crm, deal_id, automation_id=on_send), 201)
    assert _enrolled(database, on_send) == [(crm.contacts[0], deal_id)]
    sent = ok(
        send(crm, deal_id, to="c1@example.com", automation_id=on_reply, automate_on="replied"), 201
    )
    assert sent["automate_on"] == "replied"
    assert _enrolled(database, on_reply) == []
    token = sent["message_id"].partition("@")[0]
    deliver(database, clock, settings, [(reply_mail(sent["message_id"]), f"reply+{token}@x.org")])
    assert _enrolled(database, on_reply) == [(crm.contacts[1], deal_id)]
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(DealEmailReply)) == 1


def test_an_owner_name_cannot_add_headers(crm: Crm, database: Database) -> None:
    ok(crm.client.patch(f"/api/v1/users/{crm.users[0]}", json={"name": "Ann\r\nBcc: x@evil"}))
    sent = ok(send(crm, owned_deal(crm)), 201)
    assert sent["from_address"] == '"Ann Bcc: x@evil" <ann@example.com>'
