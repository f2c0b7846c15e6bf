"""The sending policy as SQL, derived from the one policy function (`contacts.policy.may_send`).

The outbox writer decides a whole set of messages in one INSERT ... SELECT and the sender
re-checks a group of messages in one UPDATE right before the final dot; both ask these
expressions, which are built by calling `may_send` for every (status, class) pair, so that the
table in contacts/policy.py stays the only place where the policy is written down.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, and_, case, literal, or_

from tidings.contacts.policy import ContactStatus, MessageClass, may_send
from tidings.contacts.repository import suppressed_condition

SUPPRESSED_REASON = may_send(
    ContactStatus.SUBSCRIBED, MessageClass.CAMPAIGN, suppressed=True
).reason


def allowed_statuses(message_class: str) -> list[str]:
    """The contact statuses that may receive `message_class` mail (suppression aside)."""
    return [s.value for s in ContactStatus if may_send(s, message_class)]


def refusal_reason(status: Any, email: Any, message_class: str) -> ColumnElement[str | None]:
    """SQL: why a contact with `status` and `email` may not get `message_class` mail now, or
    NULL when it may. Suppression comes first, as in may_send."""
    refused = [
        (status == s.value, literal(d.reason))
        for s in ContactStatus
        if not (d := may_send(s, message_class))
    ]
    return case(
        (suppressed_condition(email), literal(SUPPRESSED_REASON)), *refused, else_=literal(None)
    )


def may_receive(status: Any, email: Any, message_class: str) -> ColumnElement[bool]:
    """SQL: the contact may get `message_class` mail now (refusal_reason is NULL)."""
    return and_(status.in_(allowed_statuses(message_class)), ~suppressed_condition(email))


def status_allows(status: Any, message_class: Any) -> ColumnElement[bool]:
    """SQL: may_send(status, message_class) for a message class held in a column (suppression
    not included). Plain comparisons, no IN list, so the statement can be compiled once and
    run with driver parameters (the pre-dot check does)."""
    return or_(
        *(
            and_(status == allowed, message_class == klass.value)
            for klass in MessageClass
            for allowed in allowed_statuses(klass)
        )
    )


@functools.lru_cache(maxsize=256)  # a claim asks the same few questions a thousand times
def refusal_of(contact_status: str | None, message_class: str, suppressed: bool) -> str | None:
    """In Python, for rows already read: why a message may not go to its contact now, or None.
    A contact that is gone (its status, from an outer join, is None) is refused too."""
    if contact_status is None:
        return "the contact no longer exists"
    decision = may_send(contact_status, message_class, suppressed=suppressed)
    return None if decision else decision.reason
