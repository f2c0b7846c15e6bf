"""Tracking with the events package's signed tokens, broadcast stats for opens and clicks, and
a contact who unsubscribes while a broadcast is being sent."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from email.message import EmailMessage

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.messaging.conftest import Sink, sender_options
from tests.messaging.helpers import make_contact, make_template
from tidings.clock import FakeClock
from tidings.contacts.models import Contact, ListMembership, MailingList
from tidings.contacts.service import change_status
from tidings.db.engine import Database
from tidings.events.tokens import TrackingTokens
from tidings.messaging.broadcasts import create_broadcast, queue_broadcast
from tidings.messaging.models import OutboxMessage
from tidings.messaging.sender import Sender


def _broadcast(database: Database, clock: FakeClock, emails: list[str]) -> int:
    now = clock.now()
    with database.session() as session:
        template = make_template(session, now)
        mailing_list = MailingList(name="L", double_opt_in=False, created_at=now)
        session.add(mailing_list)
        session.flush()
        for address in emails:
            contact = make_contact(session, address, now)
            session.add(
                ListMembership(
                    contact_id=contact.id,
                    list_id=mailing_list.id,
                    status="active",
                    created_at=now,
                    updated_at=now,
                )
            )
        broadcast = create_broadcast(
            session,
            name="B",
            template_id=template.id,
            list_id=mailing_list.id,
            segment=None,
            scheduled_at=None,
            now=now,
        )
        queue_broadcast(session, broadcast, now=now)
        return broadcast.id


def _send(database: Database, clock: FakeClock, sink: Sink, **kw: object) -> None:
    async def main() -> None:
        options = sender_options(sink.port, base_url="http://testserver", **kw)  # type: ignore[arg-type]
        sender = Sender(
            database, clock, options, tokens=TrackingTokens("test-secret-key", clock=clock)
        )
        try:
            await sender.run_once()
        finally:
            await sender.close()

    asyncio.run(main())


def test_open_pixel_and_click_count_in_broadcast_stats(
    client: TestClient, database: Database, clock: FakeClock, sink: Sink
) -> None:
    broadcast_id = _broadcast(database, clock, ["ann@example.org", "bob@example.org"])
    _send(database, clock, sink)
    assert len(sink.handler.messages) == 2
    message = email.message_from_bytes(sink.handler.messages[0].data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    pixel = re.search(r'src="http://testserver(/t/o/[^"]+\.gif)"', html)
    click = re.search(r'href="http://testserver(/t/c/[^"]+)"', html)
    assert pixel and click
    public = TestClient(client.app, follow_redirects=False)
    clock.advance(minutes=5)  # a person, not a scanner opening within seconds
    assert public.get(pixel.group(1)).status_code == 200
    redirect = public.get(click.group(1))
    assert redirect.status_code == 302
    assert redirect.headers["location"].startswith("https://shop.example.com/sale?x=1&y=2")
    client.app.state.tracking.flush()  # type: ignore[attr-defined]
    stats = client.get(f"/api/v1/broadcasts/{broadcast_id}").json()["stats"]
    assert (stats["sent"], stats["opened"], stats["clicked"]) == (2, 1, 1)


def test_unsubscribe_during_broadcast_stops_the_rest(
    database: Database, clock: FakeClock, sink: Sink
) -> None:
    emails = [f"p{i:03d}@example.org" for i in range(60)]
    _broadcast(database, clock, emails)
    leaving = {"p050@example.org", "p051@example.org", "p059@example.org"}

    def on_message(handler: object) -> None:
        # After the 10th delivery the last three unsubscribe, bounce and complain.
        if len(sink.handler.messages) == 10:
            with database.session() as session:
                for address, status in zip(
                    sorted(leaving), ["unsubscribed", "bounced", "complained"], strict=True
                ):
                    contact = session.scalars(select(Contact).where(Contact.email == address)).one()
                    change_status(
                        session, contact, status, now=clock.now(), cause="tracking", reason="test"
                    )

    sink.handler.on_message = on_message
    _send(database, clock, sink, batch_size=20, connections=2)
    received = set(sink.handler.count_by_recipient())
    assert received == set(emails) - leaving
    with database.session() as session:
        refused = dict(
            session.execute(
                select(OutboxMessage.recipient, OutboxMessage.reason).where(
                    OutboxMessage.status == "refused"
                )
            ).all()
        )
    assert set(refused) == leaving
    assert all(r.startswith("at send time") for r in refused.values())
