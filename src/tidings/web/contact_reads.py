"""What the contact page reads: the timeline in keyset pages, the status history, the deals
and tasks of a contact. Reads only: every change goes through tidings.contacts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.deals.models import Deal, DealContact, Stage, Task

TIMELINE_PAGE = 30
# The timeline's kind filter: a label and the activity types it shows.
TIMELINE_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "email": (
        "Email",
        (
            "email_sent",
            "email_opened",
            "link_clicked",
            "email_refused",
            "email_bounced",
            "email_complained",
            "email_delivered",
        ),
    ),
    "web": ("Site and purchases", ("site_visit", "purchase", "form_submitted")),
    "tags": (
        "Tags and lists",
        ("tag_added", "tag_removed", "list_subscribed", "list_unsubscribed"),
    ),
    "profile": (
        "Profile and status",
        ("contact_created", "field_changed", "status_changed", "score_changed"),
    ),
    "deals": ("Deals and tasks", ()),  # every activity carrying a deal id
}


def timeline(
    session: Session, contact_id: int, *, kind: str = "", before: int | None = None
) -> tuple[list[Activity], int | None]:
    """A page of the contact's activities, newest first, and the id to continue before."""
    query = select(Activity).where(Activity.contact_id == contact_id)
    if kind == "deals":
        query = query.where(Activity.deal_id.is_not(None))
    elif kind in TIMELINE_KINDS:
        kinds: ColumnElement[bool] = Activity.type.in_(TIMELINE_KINDS[kind][1])
        if kind == "web":  # custom events are the site's too
            kinds = or_(kinds, Activity.type.like("custom:%"))
        query = query.where(kinds)
    if before is not None:
        query = query.where(Activity.id < before)
    rows = list(session.scalars(query.order_by(Activity.id.desc()).limit(TIMELINE_PAGE + 1)))
    more = len(rows) > TIMELINE_PAGE
    rows = rows[:TIMELINE_PAGE]
    return rows, (rows[-1].id if more and rows else None)


def status_history(session: Session, contact_id: int, limit: int = 20) -> list[Activity]:
    return list(
        session.scalars(
            select(Activity)
            .where(Activity.contact_id == contact_id, Activity.type == "status_changed")
            .order_by(Activity.id.desc())
            .limit(limit)
        )
    )


def deals_of(session: Session, contact_id: int, limit: int = 50) -> list[dict[str, Any]]:
    further = select(DealContact.deal_id).where(DealContact.contact_id == contact_id)
    rows = session.execute(
        select(Deal, Stage.title)
        .join(Stage, Stage.id == Deal.stage_id)
        .where(or_(Deal.contact_id == contact_id, Deal.id.in_(further)))
        .order_by(Deal.id.desc())
        .limit(limit)
    ).all()
    return [{"deal": deal, "stage": stage} for deal, stage in rows]


def tasks_of(session: Session, contact_id: int, deal_ids: list[int], limit: int = 50) -> list[Task]:
    condition = Task.contact_id == contact_id
    if deal_ids:
        condition = or_(condition, Task.deal_id.in_(deal_ids))
    return list(
        session.scalars(
            select(Task)
            .where(condition)
            .order_by(Task.done_at.is_not(None), Task.due_at, Task.id)
            .limit(limit)
        )
    )


def describe(activity: Activity) -> str:
    """One line for the timeline from an activity's type and data."""
    data = activity.data or {}
    kind = activity.type
    if kind in ("tag_added", "tag_removed"):
        return f"{'Tagged' if kind == 'tag_added' else 'Untagged'} {data.get('tag', '')}"
    if kind in ("list_subscribed", "list_unsubscribed"):
        verb = "Joined" if kind == "list_subscribed" else "Left"
        return f"{verb} list {data.get('list', data.get('list_id', ''))}"
    if kind == "status_changed":
        reason = f" — {data['reason']}" if data.get("reason") else ""
        return f"Status {data.get('old', '?')} → {data.get('new', '?')}{reason}"
    if kind == "field_changed":
        return f"{data.get('field', 'a field')}: {data.get('old')!r} → {data.get('new')!r}"
    if kind == "link_clicked":
        return f"Clicked {data.get('url', 'a link')}"
    if kind == "site_visit":
        return f"Visited {data.get('url', 'the site')}"
    return kind.replace("_", " ").capitalize()
