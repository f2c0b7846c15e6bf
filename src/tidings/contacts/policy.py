"""Contact statuses and the ONE sending policy (SPEC C2, C3, C4).

Every send in Tidings — broadcast, automation email, transactional email — asks `may_send`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ContactStatus(StrEnum):
    SUBSCRIBED = "subscribed"
    PENDING = "pending"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    TRANSACTIONAL = "transactional"


class MessageClass(StrEnum):
    CAMPAIGN = "campaign"
    AUTOMATION = "automation"
    TRANSACTIONAL = "transactional"
    # The double opt-in confirmation: the one automation-like mail a pending contact may get.
    OPT_IN_CONFIRMATION = "opt_in_confirmation"
    # A 1:1 email a user writes to a contact of a deal: personal correspondence, not
    # marketing. It goes to contacts who unsubscribed from marketing (and pending ones), never
    # to bounced or complained ones, and never to a suppressed address.
    PERSONAL = "personal"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


S, M = ContactStatus, MessageClass

# SPEC C2, one row per status. The opt-in confirmation counts as transactional mail, except
# that it goes to pending contacts only. Personal (1:1 deal) email goes wherever
# transactional mail goes.
_ALLOWED: dict[ContactStatus, frozenset[MessageClass]] = {
    S.SUBSCRIBED: frozenset({M.CAMPAIGN, M.AUTOMATION, M.TRANSACTIONAL, M.PERSONAL}),
    S.PENDING: frozenset({M.TRANSACTIONAL, M.OPT_IN_CONFIRMATION, M.PERSONAL}),
    S.UNSUBSCRIBED: frozenset({M.TRANSACTIONAL, M.PERSONAL}),
    S.BOUNCED: frozenset(),
    S.COMPLAINED: frozenset(),
    S.TRANSACTIONAL: frozenset({M.AUTOMATION, M.TRANSACTIONAL, M.PERSONAL}),
}


def may_send(status: str, message_class: str, *, suppressed: bool = False) -> Decision:
    """Whether a message of `message_class` may go to a contact with `status`.

    `suppressed` is whether the address or its domain is on the suppression list (C4); it
    overrides every status.
    """
    contact_status = ContactStatus(status)
    klass = MessageClass(message_class)
    if suppressed:
        return Decision(False, "suppressed: address or domain is on the suppression list")
    if klass in _ALLOWED[contact_status]:
        return Decision(True, f"{contact_status} contacts may receive {klass} mail")
    return Decision(False, f"status {contact_status} does not allow {klass} mail")


def may_run_other_actions(status: str, allowed_statuses: frozenset[str] | None = None) -> bool:
    """Non-email automation actions (C2, last column).

    Bounced and complained contacts: always. Pending and unsubscribed: only if the automation
    allows those statuses. `allowed_statuses=None` means the automation's default.
    """
    contact_status = ContactStatus(status)
    if contact_status in (S.SUBSCRIBED, S.TRANSACTIONAL, S.BOUNCED, S.COMPLAINED):
        return True
    return allowed_statuses is not None and contact_status in allowed_statuses


# Statuses a contact only leaves towards a mail-receiving status by subscribing again
# explicitly (C3): an import or upsert that merely carries `status=subscribed` must not.
STICKY_STATUSES = frozenset({S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED})
_RECEIVING_STATUSES = frozenset({S.SUBSCRIBED, S.PENDING, S.TRANSACTIONAL})


def needs_explicit_resubscribe(old: str, new: str) -> bool:
    """True when moving from `old` to `new` re-opens mail to an opted-out or undeliverable one."""
    return ContactStatus(old) in STICKY_STATUSES and ContactStatus(new) in _RECEIVING_STATUSES
