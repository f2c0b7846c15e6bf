"""The dashboard: contacts by status, engagement per day, running automations, last
broadcasts, open deals by stage — each read from the table or report that already keeps it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep, DatabaseDep
from tidings.automations import service as automations
from tidings.contacts import status_counts
from tidings.db.engine import Database
from tidings.deals import pipelines, reports
from tidings.events.models import EventDaily
from tidings.jobs.models import JobRun
from tidings.messaging import broadcasts
from tidings.messaging.models import Broadcast
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import render

router = APIRouter(dependencies=[Depends(check_csrf)])
DAYS = 30
# Engagement series drawn on the chart (event_daily types), with their colours.
SERIES = {
    "email_opened": ("Opens", "#2452c7"),
    "link_clicked": ("Clicks", "#1e7a3c"),
    "site_visit": ("Site visits", "#b26a00"),
    "purchase": ("Purchases", "#8a2be2"),
}


def contacts_by_status(session: Session, database: Database) -> list[tuple[str, int]]:
    """From the ledger the contacts' triggers keep; folded (in a short write of its own) when
    PostgreSQL's writers have added many rows to it."""
    counts, entries = status_counts.by_status(session)
    if entries > status_counts.FOLD_ABOVE:
        with database.session() as writing:
            status_counts.fold(writing)
    return counts


def engagement_chart(session: Session, today: date) -> dict[str, Any]:
    """A Chart.js line chart: people's events per day (machine opens left out)."""
    first = today - timedelta(days=DAYS - 1)
    days = [first + timedelta(days=i) for i in range(DAYS)]
    counts: dict[tuple[str, date], int] = {}
    for day, kind, events, machine in session.execute(
        select(EventDaily.day, EventDaily.type, EventDaily.events, EventDaily.machine_events).where(
            EventDaily.day >= first, EventDaily.type.in_(list(SERIES))
        )
    ):
        counts[(kind, day)] = int(events) - int(machine or 0)
    datasets = [
        {
            "label": label,
            "data": [counts.get((kind, d), 0) for d in days],
            "borderColor": colour,
            "backgroundColor": colour,
            "tension": 0.2,
        }
        for kind, (label, colour) in SERIES.items()
    ]
    return {
        "type": "line",
        "data": {"labels": [d.strftime("%m-%d") for d in days], "datasets": datasets},
        "options": {"scales": {"y": {"beginAtZero": True}}},
    }


def running_automations(session: Session) -> list[dict[str, Any]]:
    return [a for a in automations.summaries(session) if a["status"] == "active"]


def last_broadcasts(session: Session, limit: int = 5) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(Broadcast).where(Broadcast.queued_at.is_not(None)).order_by(Broadcast.id.desc())
    ).all()[:limit]
    out = []
    for broadcast in rows:
        counts = broadcasts.stats(session, broadcast)
        sent = counts.get("sent", 0) + counts.get("bounced", 0) + counts.get("complained", 0)
        delivered = counts.get("sent", 0)

        def rate(n: int, of: int) -> float | None:
            return n / of if of else None

        out.append(
            {
                "id": broadcast.id,
                "name": broadcast.name,
                "status": broadcast.status,
                "recipients": counts.get("total", 0),
                "sent": sent,
                "open_rate": rate(counts.get("opened", 0), delivered),
                "click_rate": rate(counts.get("clicked", 0), delivered),
                "bounce_rate": rate(counts.get("bounced", 0), sent),
            }
        )
    return out


def open_deals_by_stage(session: Session) -> list[dict[str, Any]]:
    """Per pipeline, its stages with the open deals' count and value (the stage totals)."""
    return [reports.board(session, p.id, cards=0) for p in pipelines.list_pipelines(session)]


def recent_job_runs(session: Session, limit: int = 8) -> list[JobRun]:
    """The last job runs, failures among them (tidings.jobs)."""
    return list(session.scalars(select(JobRun).order_by(JobRun.id.desc()).limit(limit)))


@router.get("/admin", response_class=HTMLResponse)
def dashboard(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    database: DatabaseDep,
    clock: ClockDep,
) -> Any:
    statuses = contacts_by_status(session, database)
    # broadcasts.stats marks a broadcast whose mail has all left as sent: a short write of its
    # own, so the rest of the page reads without SQLite's write lock.
    with database.session() as writing:
        sent = last_broadcasts(writing)
    context = {
        "statuses": statuses,
        "total_contacts": sum(n for _, n in statuses),
        "engagement": engagement_chart(session, clock.now().date()),
        "automations": running_automations(session),
        "broadcasts": sent,
        "boards": open_deals_by_stage(session),
        "job_runs": recent_job_runs(session),
    }
    return render(request, "dashboard.html", context, nav="dashboard")
