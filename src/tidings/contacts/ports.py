"""What contacts asks of the packages built on it, wired where the application is assembled.

Contacts must not import messaging (messaging builds on contacts): joining a double-opt-in list
needs a confirmation mail, so the API asks for a `DoubleOptIn` that `tidings.app` provides
(`tidings.messaging.subscriptions.double_opt_in`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from tidings.contacts.models import Contact, MailingList


class DoubleOptIn(Protocol):
    def __call__(
        self,
        session: Session,
        contact: Contact,
        mailing_list: MailingList,
        *,
        now: datetime,
        cause: str,
        force_resubscribe: bool,
    ) -> object:
        """A pending membership (and status) and the confirmation mail queued."""
        ...
