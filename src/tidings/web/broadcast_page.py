"""A broadcast's page: what it sends to whom and when, send now or cancel, and its report
(`tidings.messaging.broadcast_report`: totals with rates, the engagement chart with a table
for those who cannot see it, clicks per link, refusals by reason). Writes go through
`tidings.messaging.broadcasts`, as the REST API's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep, DatabaseDep
from tidings.api.schemas import Id
from tidings.contacts.models import MailingList
from tidings.messaging import broadcasts
from tidings.messaging.broadcast_report import SERIES, Timeline, broadcast_report
from tidings.messaging.models import Broadcast, EmailTemplate
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import is_htmx, render

router = APIRouter(dependencies=[Depends(check_csrf)])

# The chart's series: label and colour (the dashboard's for opens and clicks).
COLOURS = {
    "delivered": ("Delivered", "#5b6477"),
    "opened": ("Opened", "#2452c7"),
    "clicked": ("Clicked", "#1e7a3c"),
    "bounced": ("Bounced", "#b3261e"),
    "complained": ("Complained", "#8a2be2"),
    "unsubscribed": ("Unsubscribed", "#b26a00"),
}
LABEL_FORMATS = {"hour": "%m-%d %H:00", "day": "%Y-%m-%d", "week": "%Y-%m-%d"}
# The totals in the order shown, with what each rate is taken of.
TOTALS = (
    ("delivered", "Delivered", "of recipients"),
    ("opened", "Opened", "of delivered"),
    ("clicked", "Clicked", "of delivered"),
    ("bounced", "Bounced", "of recipients"),
    ("complained", "Complained", "of delivered"),
    ("unsubscribed", "Unsubscribed", "of delivered"),
    ("refused", "Refused", "of recipients"),
    ("failed", "Failed", "of recipients"),
    ("pending", "Pending", "of recipients"),
)


def timeline_labels(timeline: Timeline) -> list[str]:
    return [start.strftime(LABEL_FORMATS[timeline.bucket]) for start in timeline.starts]


def timeline_chart(timeline: Timeline) -> dict[str, Any]:
    """A Chart.js line chart of the six series per bucket."""
    datasets = [
        {
            "label": COLOURS[name][0],
            "data": timeline.series[name],
            "borderColor": COLOURS[name][1],
            "backgroundColor": COLOURS[name][1],
            "tension": 0.2,
        }
        for name in SERIES
    ]
    return {
        "type": "line",
        "data": {"labels": timeline_labels(timeline), "datasets": datasets},
        "options": {"scales": {"y": {"beginAtZero": True, "ticks": {"precision": 0}}}},
    }


def _audience(session: Session, broadcast: Broadcast) -> MailingList | None:
    return session.get(MailingList, broadcast.list_id) if broadcast.list_id else None


@router.get("/admin/email/broadcasts/{broadcast_id}", response_class=HTMLResponse)
def broadcast_page(
    request: Request,
    broadcast_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    database: DatabaseDep,
) -> HTMLResponse:
    # A broadcast whose mail has all left is marked sent: a short write of its own (as the
    # dashboard's), so the page reads without SQLite's write lock.
    with database.session() as writing:
        broadcasts.settle(writing, broadcasts.get_broadcast(writing, broadcast_id))
    broadcast = broadcasts.get_broadcast(session, broadcast_id)
    report = broadcast_report(session, broadcast)
    context = {
        "broadcast": broadcast,
        "template": session.get(EmailTemplate, broadcast.template_id),
        "mailing_list": _audience(session, broadcast),
        "report": report,
        "totals": TOTALS,
        "series": [(name, COLOURS[name][0]) for name in SERIES],
        "labels": timeline_labels(report.timeline),
        "chart": timeline_chart(report.timeline),
    }
    # htmx stops polling on 286 (and still shows the answer): nothing is left to watch.
    status = 286 if is_htmx(request) and broadcast.status != broadcasts.SENDING else 200
    return render(request, "broadcast.html", context, nav="email", status=status)


@router.post("/admin/email/broadcasts/{broadcast_id}/send", response_model=None)
def send_now(
    broadcast_id: Id, login: LoginDep, session: PageSessionDep, clock: ClockDep
) -> Response:
    """Queue a scheduled broadcast now instead of at its time (409 if it is not scheduled)."""
    broadcast = broadcasts.get_broadcast(session, broadcast_id)
    broadcasts.queue_broadcast(session, broadcast, now=clock.now())
    return RedirectResponse(f"/admin/email/broadcasts/{broadcast_id}", status_code=303)
