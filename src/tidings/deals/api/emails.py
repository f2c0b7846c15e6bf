"""REST: /deals/{id}/emails, 1:1 email from a deal and the replies to it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from tidings.activities.service import Cause
from tidings.api.deps import ClockDep, SessionDep, SettingsDep
from tidings.api.pagination import decode_cursor, encode_cursor
from tidings.api.schemas import Id, InputModel
from tidings.deals import emails, service
from tidings.deals.api.common import LimitQuery, Orm
from tidings.deals.models import DealEmail
from tidings.messaging.personal import message_id_domain

router = APIRouter(tags=["deals"])


class EmailIn(InputModel):
    subject: str = Field(max_length=emails.MAX_SUBJECT)
    body: str = Field(max_length=emails.MAX_BODY, description="plain text")
    to: str | None = Field(
        default=None, max_length=320, description="a contact of the deal; default the primary"
    )
    automation_id: Id | None = Field(
        default=None, description="an automation the contact enters (automate this email)"
    )
    automate_on: Literal["sent", "replied"] | None = Field(
        default=None, description="when the automation starts; default sent"
    )


class ReplyOut(Orm):
    id: int
    from_address: str
    subject: str
    text: str
    received_at: datetime


class EmailOut(BaseModel):
    id: int
    deal_id: int
    contact_id: int
    owner_id: int | None
    outbox_id: int
    message_id: str = Field(description="the Message-ID header, without <>")
    to: str
    from_address: str
    subject: str
    body: str
    automation_id: int | None
    automate_on: str | None
    created_at: datetime
    replies: list[ReplyOut]


class EmailPage(BaseModel):
    items: list[EmailOut]
    next_cursor: str | None


def _outs(session: Session, rows: list[DealEmail], domain: str) -> list[EmailOut]:
    replies = emails.replies_of(session, [e.id for e in rows])
    return [
        EmailOut(
            id=e.id,
            deal_id=e.deal_id,
            contact_id=e.contact_id,
            owner_id=e.owner_id,
            outbox_id=e.outbox_id,
            message_id=f"{e.message_token}@{domain}",
            to=e.to_email,
            from_address=e.from_address,
            subject=e.subject,
            body=e.body,
            automation_id=e.automation_id,
            automate_on=e.automate_on,
            created_at=e.created_at,
            replies=[ReplyOut.model_validate(r) for r in replies[e.id]],
        )
        for e in rows
    ]


@router.post("/deals/{deal_id}/emails", status_code=201)
def send_email(
    deal_id: Id, body: EmailIn, session: SessionDep, clock: ClockDep, settings: SettingsDep
) -> EmailOut:
    """Write to one of the deal's contacts as the deal's owner, through the outbox."""
    deal = service.get_deal(session, deal_id)
    given = emails.EmailInput(
        subject=body.subject,
        body=body.body,
        to=body.to,
        automation_id=body.automation_id,
        automate_on=body.automate_on,
    )
    email = emails.send_email(session, deal, given, now=clock.now(), cause=Cause.API)
    return _outs(session, [email], message_id_domain(settings.mail_from))[0]


@router.get("/deals/{deal_id}/emails")
def list_emails(
    deal_id: Id,
    session: SessionDep,
    settings: SettingsDep,
    cursor: str | None = None,
    limit: LimitQuery = 50,
) -> EmailPage:
    """The deal's emails with their replies, newest first."""
    service.get_deal(session, deal_id)
    rows = emails.list_emails(session, deal_id, before_id=decode_cursor(cursor), limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return EmailPage(
        items=_outs(session, rows, message_id_domain(settings.mail_from)),
        next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
    )
