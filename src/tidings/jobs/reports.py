"""Reports an export job writes: a table of (name, values...) rows, read from the owners'
report functions (messaging.broadcasts.stats, automations.service.step_counts, event_daily,
a job run's counts)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tidings.automations import service as automations
from tidings.errors import NotFound
from tidings.events.models import EventDaily
from tidings.jobs.models import JobRun
from tidings.jobs.specs import ReportExport
from tidings.messaging import broadcasts
from tidings.messaging.models import OutboxMessage

Table = tuple[list[str], list[list[Any]]]
BROADCAST_METRICS = (
    "total",
    "queued",
    "sent",
    "refused",
    "failed",
    "bounced",
    "complained",
    "unsubscribed",
    "opened",
    "clicked",
)


def check(session: Session, report: ReportExport) -> None:
    """The thing the report is about exists (its error names `export.id`)."""
    if report.report == "broadcast":
        _exists(session, broadcasts.get_broadcast, report.id)
    elif report.report == "automation":
        _exists(session, automations.get_automation, report.id)
    elif report.report == "import":
        run = session.get(JobRun, report.id)
        if run is None or run.kind != "import":
            raise NotFound(f"export.id: import run {report.id} does not exist")


def _exists(session: Session, getter: Any, id_: int | None) -> None:
    try:
        getter(session, id_)
    except NotFound as exc:
        raise NotFound(f"export.id: {exc.detail}") from None


def build(session: Session, report: ReportExport, now: datetime) -> Table:
    check(session, report)
    if report.report == "broadcast":
        return _broadcast(session, int(report.id or 0))
    if report.report == "automation":
        return _automation(session, int(report.id or 0))
    if report.report == "import":
        return _import(session, int(report.id or 0))
    return _engagement(session, now, report.days)


def _broadcast(session: Session, broadcast_id: int) -> Table:
    """Deliveries, opens, clicks, bounces, unsubscribes of one broadcast."""
    broadcast = broadcasts.get_broadcast(session, broadcast_id)
    counts = broadcasts.stats(session, broadcast)
    delivered = session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.broadcast_id == broadcast_id,
            OutboxMessage.status.in_(["sent", "bounced", "complained", "unsubscribed"]),
        )
    )
    rows = [[name, counts.get(name, 0)] for name in BROADCAST_METRICS]
    rows.insert(3, ["delivered", int(delivered or 0)])
    return ["metric", "count"], rows


def _automation(session: Session, automation_id: int) -> Table:
    steps = automations.step_counts(session, automations.get_automation(session, automation_id))
    columns = ["step", "kind", "waiting", "passed", "failed", "refused", "exited"]
    return columns, [[step[c] for c in columns] for step in steps]


def _engagement(session: Session, now: datetime, days: int) -> Table:
    """Events per day and type over the last `days` days (the per-day aggregates)."""
    since = (now - timedelta(days=days)).date()
    rows = session.execute(
        select(EventDaily.day, EventDaily.type, EventDaily.events, EventDaily.machine_events)
        .where(EventDaily.day >= since)
        .order_by(EventDaily.day, EventDaily.type)
    )
    return ["day", "type", "events", "machine_events"], [
        [day.isoformat(), kind, events, machine] for day, kind, events, machine in rows
    ]


def _import(session: Session, run_id: int) -> Table:
    """A drop-folder import's rows: added (written), unchanged (skipped), rejected."""
    run = session.get(JobRun, run_id)
    assert run is not None
    files = run.state.get("files", {})
    rows: list[list[Any]] = [
        [
            name,
            f.get("status"),
            f.get("created", 0),
            f.get("updated", 0),
            f.get("unchanged", 0),
            f.get("rejected", 0),
        ]
        for name, f in sorted(files.items())
    ]
    rows.append(["(total)", run.status, run.rows_written, "", run.rows_skipped, run.rows_rejected])
    return ["file", "status", "created", "updated", "unchanged", "rejected"], rows
