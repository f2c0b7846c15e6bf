"""Unsubscribe (link, one-click RFC 8058, mailto), the preference page's changes, and double
opt-in. Status changes go through tidings.contacts.service with cause `tracking`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tidings.activities.service import Cause, record
from tidings.config import Settings
from tidings.contacts import repository as contacts_repository
from tidings.contacts import service as contacts
from tidings.contacts.emails import InvalidEmail, normalize_email
from tidings.contacts.models import Contact, ListMembership, MailingList
from tidings.contacts.policy import STICKY_STATUSES, ContactStatus, MessageClass
from tidings.contacts.ports import DoubleOptIn
from tidings.db.engine import Database
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.messaging.links import Confirmation, LinkSigner, UnsubscribeTarget
from tidings.messaging.models import EmailTemplate, OutboxMessage
from tidings.messaging.outbox import EmailActivity, OutboxStatus, QueueResult, queue_email

OPT_IN_TEMPLATE = "double-opt-in-confirmation"


def _contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound("this link belongs to a contact that no longer exists")
    return contact


def unsubscribe(session: Session, target: UnsubscribeTarget, *, now: datetime, how: str) -> Contact:
    """Unsubscribe from everything (or from one list when the link names one). Idempotent."""
    contact = _contact(session, target.contact_id)
    message = None
    if target.message_token:
        message = session.scalar(
            select(OutboxMessage).where(OutboxMessage.message_id == target.message_token)
        )
    data: dict[str, Any] = {
        "how": how,
        "outbox_id": message.id if message else None,
        "broadcast_id": message.broadcast_id if message else None,
        "list_id": target.list_id,
    }
    if target.list_id is not None:
        mailing_list = session.get(MailingList, target.list_id)
        if mailing_list is not None:
            contacts.unsubscribe_list(session, contact, mailing_list, now=now, cause=Cause.TRACKING)
    elif contact.status not in STICKY_STATUSES:
        contacts.change_status(
            session,
            contact,
            ContactStatus.UNSUBSCRIBED,
            now=now,
            cause=Cause.TRACKING,
            reason=f"unsubscribed ({how})",
        )
    else:
        return contact  # already unsubscribed (or bounced/complained): nothing to record
    record(session, contact.id, EmailActivity.UNSUBSCRIBED, Cause.TRACKING, now, data)
    if message is not None:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message.id)
            .values(status=OutboxStatus.UNSUBSCRIBED, updated_at=now)
        )
    return contact


def unsubscribe_by_token_mail(session: Session, token: str, *, now: datetime) -> bool:
    """The mailto: variant: a message to the unsubscribe address, subject unsubscribe-<token>."""
    message = session.scalar(select(OutboxMessage).where(OutboxMessage.message_id == token))
    if message is None:
        return False
    unsubscribe(session, UnsubscribeTarget(message.contact_id, token, None), now=now, how="mailto")
    return True


@dataclass
class Preferences:
    contact: Contact
    lists: list[tuple[MailingList, str]]  # (list, membership status)


def preferences(session: Session, contact_id: int) -> Preferences:
    contact = _contact(session, contact_id)
    rows = session.execute(
        select(MailingList, ListMembership.status)
        .join(ListMembership, ListMembership.list_id == MailingList.id)
        .where(ListMembership.contact_id == contact.id)
        .order_by(MailingList.name)
    ).all()
    return Preferences(contact, [(ml, status) for ml, status in rows])


def update_preferences(
    session: Session, contact_id: int, *, keep_list_ids: set[int], action: str, now: datetime
) -> Preferences:
    """action: 'save' (stay on the checked lists, leave the others), 'unsubscribe_all', or
    'resubscribe' (an explicit resubscribe by the person, recorded as such)."""
    prefs = preferences(session, contact_id)
    contact = prefs.contact
    if action == "unsubscribe_all":
        unsubscribe(session, UnsubscribeTarget(contact.id, None, None), now=now, how="preferences")
    elif action == "resubscribe":
        if contact.status in (ContactStatus.BOUNCED, ContactStatus.COMPLAINED):
            raise Conflict(f"this address is {contact.status}; contact us to be mailed again")
        if contact.status != ContactStatus.UNSUBSCRIBED:
            # A pending address becomes subscribed only through its confirmation link.
            raise Conflict(
                f"this address is {contact.status}: only an unsubscribed address can "
                "subscribe again here"
            )
        contacts.change_status(
            session,
            contact,
            ContactStatus.SUBSCRIBED,
            now=now,
            cause=Cause.TRACKING,
            reason="resubscribed on the preference page",
            force_resubscribe=True,
        )
    elif action == "save":
        for mailing_list, status in prefs.lists:
            wanted = mailing_list.id in keep_list_ids
            if wanted and status == "unsubscribed":
                contacts.subscribe_list(
                    session,
                    contact,
                    mailing_list,
                    now=now,
                    cause=Cause.TRACKING,
                    force_resubscribe=True,
                )
            elif not wanted and status == "active":
                contacts.unsubscribe_list(
                    session, contact, mailing_list, now=now, cause=Cause.TRACKING
                )
    else:
        raise ValidationFailed(f"action: {action!r} is not save, unsubscribe_all or resubscribe")
    session.flush()
    return preferences(session, contact_id)


# --- double opt-in ----------------------------------------------------------------------------


def ensure_opt_in_template(session: Session, now: datetime) -> None:
    """A plain default confirmation template, created on first use (editable afterwards)."""
    if session.scalar(select(EmailTemplate.id).where(EmailTemplate.name == OPT_IN_TEMPLATE)):
        return
    session.add(
        EmailTemplate(
            name=OPT_IN_TEMPLATE,
            subject="Please confirm your subscription",
            html='<p>Hello {{ contact.first_name | default("there") }},</p>'
            "<p>please confirm that you want to receive our mail:</p>"
            '<p><a href="{{ confirm_url }}">Yes, subscribe me</a></p>'
            "<p>If you did not ask for this, ignore this message.</p>",
            text="Hello {{ contact.first_name | default('there') }},\n\n"
            "please confirm your subscription: {{ confirm_url }}\n",
            variables={},
            track_opens=False,
            track_clicks=False,
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()


@dataclass
class OptInResult:
    contact: Contact
    confirmation: QueueResult | None  # None: no confirmation needed (list without double opt-in)


def request_subscription(
    session: Session,
    *,
    email: str,
    list_id: int,
    now: datetime,
    links: LinkSigner,
    first_name: str | None = None,
    last_name: str | None = None,
    cause: str = Cause.API,
) -> OptInResult:
    """Someone asks to join a list. A double-opt-in list makes the contact pending (if it is not
    subscribed already) and queues the confirmation mail; otherwise they join at once."""
    try:
        address = normalize_email(email)
    except InvalidEmail as exc:
        raise ValidationFailed(f"email: {exc.detail}") from None
    mailing_list = session.get(MailingList, list_id)
    if mailing_list is None:
        raise NotFound(f"list_id: list {list_id} does not exist")
    contact = session.scalar(select(Contact).where(Contact.email == address))
    if contact is None:
        status = ContactStatus.PENDING if mailing_list.double_opt_in else ContactStatus.SUBSCRIBED
        contact = contacts.create_contact(
            session,
            contacts.ContactInput(
                email=address, first_name=first_name, last_name=last_name, status=status.value
            ),
            now=now,
            cause=cause,
        )
    if contact.status in (ContactStatus.BOUNCED, ContactStatus.COMPLAINED):
        raise Conflict(f"email: this address is {contact.status} and cannot be subscribed")
    if not mailing_list.double_opt_in:
        if contact.status == ContactStatus.UNSUBSCRIBED:
            contacts.change_status(
                session,
                contact,
                ContactStatus.SUBSCRIBED,
                now=now,
                cause=cause,
                reason=f"asked to join list {mailing_list.name!r}",
                force_resubscribe=True,
            )
        contacts.subscribe_list(
            session, contact, mailing_list, now=now, cause=cause, force_resubscribe=True
        )
        return OptInResult(contact, None)
    return OptInResult(
        contact,
        start_double_opt_in(
            session,
            contact,
            mailing_list,
            now=now,
            links=links,
            cause=cause,
            force_resubscribe=True,  # the person asks to join: a new, explicit consent
        ),
    )


def double_opt_in(settings: Settings, database: Database) -> DoubleOptIn:
    """The contacts package's DoubleOptIn (tidings.contacts.ports), signing the confirmation
    links with this instance's keys."""

    def start(
        session: Session,
        contact: Contact,
        mailing_list: MailingList,
        *,
        now: datetime,
        cause: str,
        force_resubscribe: bool,
    ) -> QueueResult | None:
        links = LinkSigner.from_settings(settings, database)
        return start_double_opt_in(
            session,
            contact,
            mailing_list,
            now=now,
            links=links,
            cause=cause,
            force_resubscribe=force_resubscribe,
        )

    return start


def start_double_opt_in(
    session: Session,
    contact: Contact,
    mailing_list: MailingList,
    *,
    now: datetime,
    links: LinkSigner,
    cause: str,
    force_resubscribe: bool = False,
) -> QueueResult | None:
    """Subscribe `contact` to a double-opt-in list: a pending membership (and status, unless
    subscribed already) and the confirmation mail. None when the membership is active already.
    Also the path of `PUT /contacts/{id}/lists/{list_id}` for such lists."""
    if contact.status in (ContactStatus.BOUNCED, ContactStatus.COMPLAINED):
        raise Conflict(f"email: this address is {contact.status} and cannot be subscribed")
    membership = contacts_repository.membership_status(session, contact.id, mailing_list.id)
    if membership == contacts.MEMBERSHIP_ACTIVE:
        return None
    if membership == contacts.MEMBERSHIP_UNSUBSCRIBED and not force_resubscribe:
        raise Conflict(contacts.rejoin_refused(mailing_list.name))
    if contact.status != ContactStatus.SUBSCRIBED and contact.status != ContactStatus.PENDING:
        contacts.change_status(
            session,
            contact,
            ContactStatus.PENDING,
            now=now,
            cause=cause,
            reason=f"asked to join list {mailing_list.name!r}; awaiting confirmation",
            force_resubscribe=force_resubscribe,  # unsubscribed -> pending needs it
        )
    contacts.set_pending(session, contact.id, mailing_list.id, now=now)
    ensure_opt_in_template(session, now)
    confirm_url = links.confirm_url(contact.id, mailing_list.id, now)
    result = queue_email(
        session,
        contact_id=contact.id,
        template=OPT_IN_TEMPLATE,
        message_class=(
            MessageClass.OPT_IN_CONFIRMATION
            if contact.status == ContactStatus.PENDING
            else MessageClass.TRANSACTIONAL
        ),
        idempotency_key=f"opt-in:{contact.id}:{mailing_list.id}:{int(now.timestamp())}",
        now=now,
        context={"confirm_url": confirm_url},
        cause=cause,
    )
    return result


def read_confirmation(
    session: Session, token: str, *, links: LinkSigner, now: datetime, max_age: timedelta
) -> tuple[Confirmation, Contact, MailingList | None]:
    """The confirmation a link stands for, if it may still be used (raises otherwise).

    A link confirms the pending request it was sent for, once: the membership must still be
    `pending` and not have become pending after the link was made (a newer request sent a
    newer link), and the contact must not have unsubscribed since. So re-opening a used link
    changes nothing, and no link can undo a later unsubscribe.
    """
    confirmation = links.read_confirmation(token, now=now, max_age=max_age)
    contact = _contact(session, confirmation.contact_id)
    if contact.status in (ContactStatus.BOUNCED, ContactStatus.COMPLAINED):
        raise Conflict(f"this address is {contact.status}")
    mailing_list = None
    if confirmation.list_id is not None:
        mailing_list = session.get(MailingList, confirmation.list_id)
        if mailing_list is None:
            raise NotFound("the list of this confirmation link no longer exists")
        membership = session.get(ListMembership, (contact.id, mailing_list.id))
        if membership is not None and membership.status == "active":
            raise AlreadyConfirmed("this confirmation link was used already")
        pending_since = membership.updated_at if membership is not None else None
        if (
            membership is None
            or membership.status != contacts.MEMBERSHIP_PENDING
            or pending_since is None
            or int(pending_since.timestamp()) > int(confirmation.issued.timestamp())
        ):
            raise Conflict(
                "this confirmation link is no longer valid (it was replaced by a newer one, "
                "or the address left the list since); subscribe again to get a new one"
            )
    elif contact.status == ContactStatus.SUBSCRIBED:
        raise AlreadyConfirmed("this confirmation link was used already")
    if contact.status not in (ContactStatus.PENDING, ContactStatus.SUBSCRIBED):
        raise Conflict(
            f"this address is {contact.status} since this link was sent; "
            "subscribe again to get a new one"
        )
    return confirmation, contact, mailing_list


class AlreadyConfirmed(Conflict):
    """The link was used: nothing left to do (shown as a plain notice, not an error)."""


def confirm_subscription(
    session: Session, token: str, *, links: LinkSigner, now: datetime, max_age: timedelta
) -> Contact:
    confirmation, contact, mailing_list = read_confirmation(
        session, token, links=links, now=now, max_age=max_age
    )
    if contact.status == ContactStatus.PENDING:
        contacts.change_status(
            session,
            contact,
            ContactStatus.SUBSCRIBED,
            now=now,
            cause=Cause.TRACKING,
            reason="double opt-in confirmed",
            force_resubscribe=True,
        )
    if mailing_list is not None:
        contacts.subscribe_list(
            session, contact, mailing_list, now=now, cause=Cause.TRACKING, force_resubscribe=True
        )
    record(
        session,
        contact.id,
        EmailActivity.OPT_IN_CONFIRMED,
        Cause.TRACKING,
        now,
        {"list_id": confirmation.list_id},
    )
    return contact
