"""Turning new activities into deliveries: the dispatcher follows the activity log with its
own cursor (`webhook_state` row "activity_cursor"), as the trigger matcher does, and writes one
delivery per (subscription, activity) that matches, its body built now. One dispatcher at a
time (PostgreSQL: the cursor row is locked with SKIP LOCKED); on PostgreSQL, ids that commit
late are looked at again for a while (`tidings.automations.matcher.fill_gaps`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.automations.matcher import fill_gaps
from tidings.db.bulk import dialect_insert
from tidings.db.dialect import dialect_of
from tidings.webhooks import payloads
from tidings.webhooks.events import AC_SOURCES, activity_types
from tidings.webhooks.models import WebhookDelivery, WebhookState, WebhookSubscription

CURSOR_KEY = "activity_cursor"
BATCH = 1000


def ensure_cursor(session: Session) -> None:
    """Start following the log at its end (history is not delivered to new subscribers)."""
    upper = session.scalar(select(func.coalesce(func.max(Activity.id), 0))) or 0
    session.execute(
        dialect_insert(session, WebhookState)
        .values(key=CURSOR_KEY, value={"id": upper})
        .on_conflict_do_nothing()
    )


def _matches(subscription: WebhookSubscription, types: set[str], activity: Any) -> bool:
    if activity.type not in types:
        return False
    if subscription.format != "activecampaign":
        return True
    causes = {c for s in subscription.sources or AC_SOURCES for c in AC_SOURCES.get(s, ())}
    if activity.cause not in causes:
        return False
    if subscription.list_id and "list_id" in (activity.data or {}):
        return bool(activity.data["list_id"] == subscription.list_id)
    return True


def dispatch(session: Session, now: datetime, *, limit: int = BATCH) -> int | None:
    """Write the deliveries of up to `limit` new activities; returns how many activities of
    the chosen types it looked at, None when there is nothing to do (or another worker is
    dispatching)."""
    subscriptions = list(
        session.scalars(select(WebhookSubscription).where(WebhookSubscription.active.is_(True)))
    )
    dialect = dialect_of(session)
    statement = dialect.claim(select(WebhookState.value).where(WebhookState.key == CURSOR_KEY))
    state = session.scalar(statement)
    if state is None:
        if not subscriptions:
            return None
        ensure_cursor(session)
        return 0
    cursor = int(state["id"])
    gaps: dict[str, str] = dict(state.get("gaps", {}))
    upper = session.scalar(select(func.coalesce(func.max(Activity.id), 0))) or 0
    if upper <= cursor and not gaps:
        return None
    if not subscriptions:  # nobody listens: history is not kept for a later subscriber
        session.execute(
            update(WebhookState).where(WebhookState.key == CURSOR_KEY).values(value={"id": upper})
        )
        return None
    wanted = {s.id: activity_types(s.format, s.events) for s in subscriptions}
    every = set().union(*wanted.values()) if wanted else set()
    query = select(
        Activity.id,
        Activity.contact_id,
        Activity.deal_id,
        Activity.type,
        Activity.cause,
        Activity.data,
        Activity.occurred_at,
    ).where(func.coalesce(Activity.type, "").in_(sorted(every) or [""]))
    rows = list(
        session.execute(
            query.where(Activity.id > cursor, Activity.id <= upper)
            .order_by(Activity.id)
            .limit(limit)
        ).all()
    )
    scanned_to = upper if len(rows) < limit else rows[-1].id
    if dialect.concurrent_writers:
        rows.extend(fill_gaps(session, query, cursor, scanned_to, gaps, now))
    deliveries = []
    for activity in rows:
        for subscription in subscriptions:
            if not _matches(subscription, wanted[subscription.id], activity):
                continue
            body = (
                payloads.activecampaign(session, activity)
                if subscription.format == "activecampaign"
                else payloads.native(session, activity)
            )
            deliveries.append(
                {
                    "subscription_id": subscription.id,
                    "activity_id": activity.id,
                    "event": activity.type,
                    "payload": body,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if deliveries:
        session.execute(
            dialect_insert(session, WebhookDelivery).values(deliveries).on_conflict_do_nothing()
        )
    session.execute(
        update(WebhookState)
        .where(WebhookState.key == CURSOR_KEY)
        .values(value={"id": max(scanned_to, cursor), "gaps": gaps})
    )
    return len(rows)
