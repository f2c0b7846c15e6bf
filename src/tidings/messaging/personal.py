"""Personal (1:1) email: what messaging knows about it.

A personal message is queued like any other (tidings.messaging.outbox, message class
`personal`), with its subject and body in the outbox row's context and rendered by one
built-in template. It is sent From the user who wrote it (context `from`), with a Reply-To
on the inbound domain, reply+<token>@TIDINGS_BOUNCE_DOMAIN, where <token> is the outbox
row's token, also the unique part of its Message-ID. A reply is matched by that address or
by its In-Reply-To / References naming the Message-ID (`referenced_tokens`).
"""

from __future__ import annotations

import re
from datetime import datetime
from email.message import Message
from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.db.bulk import dialect_insert
from tidings.messaging.models import EmailTemplate

PERSONAL_TEMPLATE = "personal-email"
_REPLY_ADDRESS = re.compile(r"^reply\+([0-9a-f]{32})@", re.IGNORECASE)
# A Message-ID of ours: <token@domain>.
_OUR_MESSAGE_ID = re.compile(r"<([0-9a-f]{32})@[^<>\s]+>", re.IGNORECASE)


def message_id_domain(mail_from: str) -> str:
    """The domain of our Message-IDs: TIDINGS_MAIL_FROM's (as tidings.messaging.composer)."""
    return parseaddr(mail_from)[1].rpartition("@")[2] or "localhost"


def reply_address(token: str, domain: str) -> str:
    return f"reply+{token}@{domain}"


def ensure_personal_template(session: Session, now: datetime) -> None:
    """The template every personal message is rendered with: the subject and the body as the
    user wrote them (escaped in the HTML part, line breaks kept), no tracking. Created on
    first use; a concurrent first use is no error."""
    if session.scalar(select(EmailTemplate.id).where(EmailTemplate.name == PERSONAL_TEMPLATE)):
        return
    session.execute(
        dialect_insert(session, EmailTemplate)
        .values(
            name=PERSONAL_TEMPLATE,
            subject="{{ subject }}",
            html='<div style="white-space: pre-wrap">{{ body }}</div>',
            text="{{ body }}\n",
            variables={"subject": "Hello", "body": "A few words."},
            track_opens=False,
            track_clicks=False,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["name"])
    )


def reply_tokens(rcpt_tos: list[str]) -> list[str]:
    """The tokens of the reply addresses among these envelope recipients."""
    found = (_REPLY_ADDRESS.match(address.strip().strip("<>")) for address in rcpt_tos)
    return [m.group(1).lower() for m in found if m is not None]


def referenced_tokens(message: Message) -> list[str]:
    """The tokens of our Message-IDs a message answers: In-Reply-To first, then References
    from the newest back."""
    tokens: list[str] = []
    for header in ("In-Reply-To", "References"):
        ids = _OUR_MESSAGE_ID.findall(str(message.get(header) or ""))
        tokens.extend(t.lower() for t in (ids if header == "In-Reply-To" else reversed(ids)))
    return list(dict.fromkeys(tokens))
