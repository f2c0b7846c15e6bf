"""1:1 email from a deal (SPEC D2) and the replies to it.

Sending: a user writes to one of a deal's contacts; the message is queued through the outbox
(message class `personal`: see contacts.policy — it reaches unsubscribed contacts, never
bounced, complained or suppressed ones), sent From the deal's owner with a Reply-To on the
inbound domain (tidings.messaging.personal), and recorded as a deal_emails row and a
`deal_email_sent` activity, all in one transaction. A refusal by the policy refuses the
request: nothing is written.

Replies: `tidings inbound` and the bounce webhook hand a message here with the tokens it names
(its reply+<token> recipient, its In-Reply-To / References). The first token that belongs to a
deal email makes the message a reply to it: stored (subject, text, from, time), recorded as a
`deal_email_replied` activity on the deal's timeline. A message naming no deal email is not a
reply (None); the same reply delivered twice is stored once.

"Automate this email": an email may name an automation the contact enters when the email is
sent or when the contact replies; the run knows the email's deal (the triggered deal).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from email.utils import formataddr, parseaddr
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.automations.enrolments import enrol_deal_runs
from tidings.automations.models import Automation
from tidings.automations.service import loaded
from tidings.contacts.models import Contact
from tidings.contacts.policy import MessageClass
from tidings.db.bulk import dialect_insert, in_values
from tidings.db.hooks import mark_work
from tidings.deals.models import Deal, DealContact, DealEmail, DealEmailReply, User
from tidings.deals.timeline import DealActivity, deal_row, record_rows
from tidings.errors import Conflict, field_error
from tidings.messaging.compose import html_to_text
from tidings.messaging.models import OutboxMessage
from tidings.messaging.outbox import queue_email
from tidings.messaging.personal import PERSONAL_TEMPLATE, ensure_personal_template
from tidings.text import refuse_control_characters

MAX_SUBJECT = 300
MAX_BODY = 100_000
MAX_REPLY_TEXT = 100_000
AUTOMATE_ON = ("sent", "replied")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class EmailInput:
    subject: str
    body: str
    to: str | None = None  # an address of one of the deal's contacts; None: the primary one
    automation_id: int | None = None
    automate_on: str | None = None  # sent | replied (default: sent, with an automation)


def send_email(
    session: Session, deal: Deal, given: EmailInput, *, now: datetime, cause: str
) -> DealEmail:
    """Queue a 1:1 email from `deal` as its owner; refused (nothing written) when the owner
    is missing or deactivated, `to` is not a contact of the deal, or the policy says no."""
    subject, body = _subject(given.subject), _body(given.body)
    owner = _owner(session, deal)
    contact = _recipient(session, deal, given.to)
    automation, automate_on = _automation(session, given.automation_id, given.automate_on)
    sender = formataddr((_display_name(owner.name), owner.email))
    ensure_personal_template(session, now)
    result = queue_email(
        session,
        contact_id=contact.id,
        template=PERSONAL_TEMPLATE,
        message_class=MessageClass.PERSONAL,
        idempotency_key=f"deal-email:{deal.id}:{uuid.uuid4().hex}",
        now=now,
        context={"subject": subject, "body": body, "from": sender},
        cause=cause,
    )
    if not result.queued:
        message = f"{contact.email} may not get this email: {result.reason}"
        raise Conflict(message, errors=[{"field": "to", "message": message}])
    token = session.scalar(
        select(OutboxMessage.message_id).where(OutboxMessage.id == result.outbox_id)
    )
    email = DealEmail(
        deal_id=deal.id,
        contact_id=contact.id,
        owner_id=owner.id,
        outbox_id=result.outbox_id,
        message_token=token,
        to_email=contact.email,
        from_address=sender,
        subject=subject,
        body=body,
        automation_id=automation.id if automation else None,
        automate_on=automate_on,
        created_at=now,
    )
    session.add(email)
    session.flush()
    data = {**_about(email), "outbox_id": email.outbox_id, "owner_id": owner.id}
    record_rows(session, [deal_row(deal.id, contact.id, DealActivity.EMAIL_SENT, cause, now, data)])
    if automation is not None and automate_on == "sent":
        _start(session, automation, contact.id, deal.id, now)
    mark_work(session)  # the activity may start automations
    return email


def list_emails(
    session: Session, deal_id: int, *, before_id: int | None, limit: int
) -> list[DealEmail]:
    """The deal's emails, newest first (keyset: ids below `before_id`)."""
    query = select(DealEmail).where(DealEmail.deal_id == deal_id)
    if before_id is not None:
        query = query.where(DealEmail.id < before_id)
    return list(session.scalars(query.order_by(DealEmail.id.desc()).limit(limit)))


def replies_of(session: Session, email_ids: Sequence[int]) -> dict[int, list[DealEmailReply]]:
    """The replies of these emails, oldest first."""
    found: dict[int, list[DealEmailReply]] = {i: [] for i in email_ids}
    if email_ids:
        for reply in session.scalars(
            select(DealEmailReply)
            .where(in_values(session, DealEmailReply.deal_email_id, list(email_ids)))
            .order_by(DealEmailReply.id)
        ):
            found[reply.deal_email_id].append(reply)
    return found


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    deal_email_id: int
    deal_id: int
    reply_id: int | None  # None: this reply was stored before (delivered twice)

    def as_json(self) -> dict[str, Any]:
        return {
            "deal_email_id": self.deal_email_id,
            "deal_id": self.deal_id,
            "reply_id": self.reply_id,
            "duplicate": self.reply_id is None,
        }


def record_reply(
    session: Session, tokens: Sequence[str], message: Message, *, now: datetime
) -> ReplyOutcome | None:
    """Store `message` as a reply to the first deal email among `tokens` (its reply address,
    In-Reply-To, References); None when it names none (not a reply)."""
    if not tokens:
        return None
    emails = {
        e.message_token: e
        for e in session.scalars(
            select(DealEmail).where(in_values(session, DealEmail.message_token, list(tokens)))
        )
    }
    email = next((emails[t] for t in tokens if t in emails), None)
    if email is None:
        return None
    subject, sender = _header(message, "Subject"), _header(message, "From")
    message_id = _header(message, "Message-ID") or None
    stored = session.execute(
        dialect_insert(session, DealEmailReply)
        .values(
            deal_email_id=email.id,
            deal_id=email.deal_id,
            from_address=sender[:600],
            subject=subject,
            text=plain_text(message)[:MAX_REPLY_TEXT],
            message_id=message_id[:998] if message_id else None,
            received_at=now,
        )
        .on_conflict_do_nothing()
        .returning(DealEmailReply.id)
    ).scalar()
    if stored is None:
        return ReplyOutcome(email.id, email.deal_id, None)
    data = {
        **_about(email),
        "reply_id": stored,
        "from": parseaddr(sender)[1] or sender,
        "reply_subject": subject,
    }
    record_rows(
        session,
        [
            deal_row(
                email.deal_id,
                email.contact_id,
                DealActivity.EMAIL_REPLIED,
                Cause.TRACKING,
                now,
                data,
            )
        ],
    )
    automation = session.get(Automation, email.automation_id) if email.automation_id else None
    if automation is not None and email.automate_on == "replied":
        _start(session, automation, email.contact_id, email.deal_id, now)
    mark_work(session)
    return ReplyOutcome(email.id, email.deal_id, stored)


def plain_text(message: Message) -> str:
    """The text of a message: its first text/plain part, else its HTML as text."""
    html = None
    for part in message.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            return _decoded(part)
        if kind == "text/html" and html is None:
            html = _decoded(part)
    return html_to_text(html) if html is not None else ""


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", errors="replace")


def _header(message: Message, name: str) -> str:
    """A header as text (RFC 2047 words decoded), on one line."""
    value = message.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _about(email: DealEmail) -> dict[str, Any]:
    """What both email activities say about the email (automations match these keys)."""
    return {
        "deal_email_id": email.id,
        "contact_id": email.contact_id,
        "to": email.to_email,
        "subject": email.subject,
    }


def _start(
    session: Session, automation: Automation, contact_id: int, deal_id: int, now: datetime
) -> None:
    """Start the automation the email names for the contact, knowing the deal (its deal
    steps and conditions act on it); the automation's own rules about statuses and runs once
    per (contact, deal) apply, and a paused automation starts nobody."""
    if automation.status == "active":
        enrol_deal_runs(
            session, loaded(session, automation), now=now, pairs=[(contact_id, deal_id)]
        )


def _subject(raw: str) -> str:
    subject = raw.strip()
    if not subject:
        raise field_error("subject", "must not be blank")
    if len(subject) > MAX_SUBJECT:
        raise field_error("subject", f"at most {MAX_SUBJECT} characters")
    refuse_control_characters("subject", subject)
    return subject


def _body(raw: str) -> str:
    if not raw.strip():
        raise field_error("body", "must not be blank")
    if len(raw) > MAX_BODY:
        raise field_error("body", f"at most {MAX_BODY} characters")
    refuse_control_characters("body", raw, multiline=True)
    return raw


def _display_name(name: str) -> str:
    """A user's name as a header's display name: on one line, no control characters (a name
    with a line break must not add a header)."""
    return " ".join(_CONTROL.sub(" ", name).split())


def _owner(session: Session, deal: Deal) -> User:
    """The user the email is sent as: the deal's owner, who must be active."""
    owner = session.get(User, deal.owner_id) if deal.owner_id is not None else None
    if owner is None:
        message = f"deal {deal.id} has no owner to send as: give it one first"
    elif not owner.active:
        message = f"the deal's owner (user {owner.id}, {owner.email}) is deactivated"
    else:
        return owner
    raise Conflict(message, errors=[{"field": "owner_id", "message": message}])


def _recipient(session: Session, deal: Deal, to: str | None) -> Contact:
    """The contact `to` names among the deal's contacts (None: the primary contact)."""
    query = (
        select(Contact)
        .join(DealContact, DealContact.contact_id == Contact.id)
        .where(DealContact.deal_id == deal.id)
    )
    if to is None:
        if deal.contact_id is None:
            raise field_error("to", f"deal {deal.id} has no primary contact: name a contact")
        query = query.where(Contact.id == deal.contact_id)
    else:
        query = query.where(Contact.email == to.strip().lower())
    contact = session.scalar(query)
    if contact is None:
        raise field_error("to", f"{to} is not a contact of deal {deal.id}")
    return contact


def _automation(
    session: Session, automation_id: int | None, automate_on: str | None
) -> tuple[Automation | None, str | None]:
    if automation_id is None:
        if automate_on is not None:
            raise field_error("automate_on", "name the automation to start (automation_id)")
        return None, None
    automation = session.get(Automation, automation_id)
    if automation is None:
        raise field_error("automation_id", f"automation {automation_id} does not exist")
    when = automate_on or "sent"
    if when not in AUTOMATE_ON:
        raise field_error("automate_on", "must be sent or replied")
    return automation, when
