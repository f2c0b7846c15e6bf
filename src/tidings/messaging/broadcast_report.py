"""One broadcast's report: totals with rates, the six engagement series over time, clicks per
link and the refusals grouped by reason.

Every number is a grouped query on an index the outbox or the activities already have
(`ix_outbox_broadcast_id_status`; the tracking activities by type and time, matched to the
broadcast's messages by the token they carry), and each series adds up to its total:

- delivered: messages handed over to the receiving server (`sent_at` set), by `sent_at`;
- opened / clicked: messages a person first opened / clicked (as `broadcasts.stats`: a machine
  open is not an open, a click is an open too), by the time of that first open / click;
- bounced / complained / unsubscribed: messages in that status, by the time it was set
  (a synchronous 5xx at RCPT is a bounce of a message never delivered).

Time buckets are hours from the hour the broadcast was queued while everything happened
within 48 hours, else days (weeks past 90 days), counted from midnight UTC.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Float, Integer, case, func, literal, select
from sqlalchemy.orm import Session

from tidings.activities.models import Activity
from tidings.db.sqlfunc import epoch_seconds
from tidings.messaging.broadcasts import PENDING_STATUSES, engaged_messages, tracked
from tidings.messaging.models import Broadcast, OutboxMessage
from tidings.messaging.outbox import OutboxStatus

SERIES = ("delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")
# Statuses a message keeps after being sent, each a series (by the time it was set).
AFTER_SENDING = (OutboxStatus.BOUNCED, OutboxStatus.COMPLAINED, OutboxStatus.UNSUBSCRIBED)
HOURLY_UP_TO = 48  # hours
DAILY_UP_TO = 90  # days
REFUSED_SHOWN = 10  # recipients listed per refusal reason
REASONS_SHOWN = 50
LINKS_SHOWN = 100


@dataclass
class Refusal:
    reason: str
    count: int
    recipients: list[dict[str, Any]]  # the first few: contact_id, email


@dataclass
class LinkClicks:
    url: str
    clickers: int  # people
    clicks: int  # theirs
    machine_clicks: int


@dataclass
class Timeline:
    bucket: str  # "hour", "day" or "week"
    starts: list[datetime]
    series: dict[str, list[int]]


@dataclass
class BroadcastReport:
    broadcast_id: int
    totals: dict[str, int]
    rates: dict[str, float | None]
    timeline: Timeline
    last_sent_at: datetime | None  # the last message handed over (the end, once all are)
    links: list[LinkClicks] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)


def broadcast_report(session: Session, broadcast: Broadcast) -> BroadcastReport:
    start = _start_hour(broadcast.queued_at)
    hours: Hours = {name: {} for name in SERIES}
    by_status, last_sent_at = _messages(session, broadcast, start, hours)
    _engaged(session, broadcast, start, hours)
    totals = _totals(by_status, hours)
    return BroadcastReport(
        broadcast_id=broadcast.id,
        totals=totals,
        rates=_rates(totals),
        timeline=_timeline(hours, start),
        last_sent_at=last_sent_at,
        links=_links(session, broadcast),
        refusals=_refusals(session, broadcast),
    )


def _start_hour(queued_at: datetime | None) -> datetime | None:
    return queued_at.replace(minute=0, second=0, microsecond=0) if queued_at else None


def _hour_of(column: Any, start: datetime) -> ColumnElement[Any]:
    """Whole hours from `start` to a timestamp column, in SQL (a grouping key; NULL stays
    NULL: SQLAlchemy's SQLite floor() is a Python function that fails on it). The numbers are
    written into the statement, so the SELECT and the GROUP BY are the same expression (on
    PostgreSQL two parameters would not be)."""
    since = literal(start.timestamp(), Float, literal_execute=True)
    hour = literal(3600, Integer, literal_execute=True)
    return case((column.is_(None), None), else_=func.floor((epoch_seconds(column) - since) / hour))


Hours = dict[str, dict[int, int]]  # series -> hour index -> messages


def _messages(
    session: Session, broadcast: Broadcast, start: datetime | None, hours: Hours
) -> tuple[dict[str, int], datetime | None]:
    """One pass over the broadcast's messages: the count per status, the delivered series
    (by hour sent) and those of the statuses set after sending (by hour set), the last
    delivery."""
    by_status: dict[str, int] = defaultdict(int)
    if start is None:
        return by_status, None
    sent = _hour_of(OutboxMessage.sent_at, start).label("sent")
    later = OutboxMessage.status.in_(AFTER_SENDING)
    changed = case((later, _hour_of(OutboxMessage.updated_at, start))).label("changed")
    last = None
    for status, sent_at, changed_at, n, group_last in session.execute(
        select(OutboxMessage.status, sent, changed, func.count(), func.max(OutboxMessage.sent_at))
        .where(OutboxMessage.broadcast_id == broadcast.id)
        .group_by(OutboxMessage.status, "sent", "changed")  # the labels: PostgreSQL
    ):
        by_status[status] += int(n)
        if sent_at is not None:
            _add(hours["delivered"], int(sent_at), int(n))
        if changed_at is not None:
            _add(hours[status], int(changed_at), int(n))
        if group_last is not None and (last is None or group_last > last):
            last = group_last
    return by_status, last


def _engaged(session: Session, broadcast: Broadcast, start: datetime | None, hours: Hours) -> None:
    """The opened and clicked series, in one pass over the engaged messages: by (hour first
    opened, hour first clicked or NULL)."""
    engaged = engaged_messages(broadcast)
    if engaged is None or start is None:
        return
    opened = _hour_of(engaged.c.opened_at, start).label("opened")
    clicked = _hour_of(engaged.c.clicked_at, start).label("clicked")
    for at, clicked_at, n in session.execute(
        select(opened, clicked, func.count()).group_by("opened", "clicked")
    ):
        _add(hours["opened"], int(at), int(n))
        if clicked_at is not None:
            _add(hours["clicked"], int(clicked_at), int(n))


def _add(counts: dict[int, int], key: int, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def _totals(by_status: dict[str, int], hours: Hours) -> dict[str, int]:
    totals = {"recipients": sum(by_status.values())}
    totals.update({name: sum(hours[name].values()) for name in SERIES})
    totals["refused"] = by_status.get(OutboxStatus.REFUSED, 0)
    totals["failed"] = by_status.get(OutboxStatus.FAILED, 0)
    totals["pending"] = sum(by_status.get(s, 0) for s in PENDING_STATUSES)
    return totals


def _rates(totals: dict[str, int]) -> dict[str, float | None]:
    """Delivered, refused, failed and bounced of the recipients; the rest of the delivered."""

    def rate(n: int, of: int) -> float | None:
        return n / of if of else None

    recipients, delivered = totals["recipients"], totals["delivered"]
    rates = {
        name: rate(totals[name], recipients)
        for name in ("delivered", "bounced", "refused", "failed", "pending")
    }
    for name in ("opened", "clicked", "complained", "unsubscribed"):
        rates[name] = rate(totals[name], delivered)
    return rates


def _timeline(hours: Hours, start: datetime | None) -> Timeline:
    if start is None:
        return Timeline("hour", [], {name: [] for name in SERIES})
    last = max((h for counts in hours.values() for h in counts), default=0)
    if last < HOURLY_UP_TO:
        starts = [start + timedelta(hours=h) for h in range(last + 1)]
        return Timeline("hour", starts, {n: _series(hours[n], 1, 0, len(starts)) for n in SERIES})
    # Days from midnight UTC: hour index h falls on day (h + offset) // 24.
    offset = start.hour
    midnight = start - timedelta(hours=offset)
    days = (last + offset) // 24 + 1
    bucket, width = ("day", 24) if days <= DAILY_UP_TO else ("week", 24 * 7)
    count = (last + offset) // width + 1
    starts = [midnight + timedelta(hours=width * i) for i in range(count)]
    return Timeline(bucket, starts, {n: _series(hours[n], width, offset, count) for n in SERIES})


def _series(counts: dict[int, int], width: int, offset: int, length: int) -> list[int]:
    out = [0] * length
    for hour, n in counts.items():
        out[(max(hour, 0) + offset) // width] += n
    return out


def _links(session: Session, broadcast: Broadcast) -> list[LinkClicks]:
    """Clicks per URL of the broadcast's messages, people's first (the most clicked first);
    machines' clicks (link scanners at delivery) are counted apart."""
    if broadcast.queued_at is None:
        return []
    url = Activity.data["url"].as_string()
    person = Activity.machine.is_(False)
    clicks = func.count(case((person, 1)))
    rows = session.execute(
        select(
            url,
            func.count(func.distinct(case((person, Activity.contact_id)))),
            clicks,
            func.count(case((Activity.machine.is_(True), 1))),
        )
        .where(*tracked(broadcast, ["link_clicked"]))
        .group_by(url)
        .order_by(clicks.desc(), url)
        .limit(LINKS_SHOWN)
    )
    return [LinkClicks(str(u or ""), int(p), int(n), int(m)) for u, p, n, m in rows]


def _refusals(session: Session, broadcast: Broadcast) -> list[Refusal]:
    """Messages the sending policy refused (at queue or send time, or cancelled), by reason."""
    refused = (
        OutboxMessage.broadcast_id == broadcast.id,
        OutboxMessage.status == OutboxStatus.REFUSED,
    )
    count = func.count()
    reasons = session.execute(
        select(OutboxMessage.reason, count)
        .where(*refused)
        .group_by(OutboxMessage.reason)
        .order_by(count.desc(), OutboxMessage.reason)
        .limit(REASONS_SHOWN)
    ).all()
    out = []
    for reason, n in reasons:
        which = OutboxMessage.reason.is_(None) if reason is None else OutboxMessage.reason == reason
        first = session.execute(
            select(OutboxMessage.contact_id, OutboxMessage.recipient)
            .where(*refused, which)
            .order_by(OutboxMessage.id)
            .limit(REFUSED_SHOWN)
        )
        recipients = [{"contact_id": int(c), "email": e} for c, e in first]
        out.append(Refusal(reason or "(no reason given)", int(n), recipients))
    return out
