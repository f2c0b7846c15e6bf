"""Deal reports as charts: the conversion funnel, won and lost by stage over 90 days, and the
forecast of open deals by expected close month (value and value weighted by probability)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from tidings.api.deps import ClockDep
from tidings.deals import pipelines, reports
from tidings.web.deal_pages import IdQuery, pipeline_choice
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import render

router = APIRouter(dependencies=[Depends(check_csrf)])
WON_LOST_DAYS = 90
FORECAST_MONTHS = 12


def _bars(labels: list[str], series: dict[str, tuple[list[float], str]]) -> dict[str, Any]:
    datasets = [
        {"label": name, "data": data, "backgroundColor": colour}
        for name, (data, colour) in series.items()
    ]
    return {
        "type": "bar",
        "data": {"labels": labels, "datasets": datasets},
        "options": {"scales": {"y": {"beginAtZero": True}}},
    }


def _months_ahead(today: date, count: int) -> tuple[date, date]:
    first = today.replace(day=1)
    year, month = divmod(first.month - 1 + count, 12)
    return first, date(first.year + year, month + 1, 1)


@router.get("/admin/deals/reports", response_class=HTMLResponse)
def reports_page(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    pipeline: IdQuery = None,
) -> HTMLResponse:
    pipeline_id = pipeline_choice(session, pipeline)
    context: dict[str, Any] = {
        "pipelines": [(p.id, p.name) for p in pipelines.list_pipelines(session)],
        "pipeline_id": pipeline_id,
    }
    if pipeline_id is not None:
        now = clock.now()
        steps = reports.funnel(session, pipeline_id)["stages"]
        titles = [s["stage"]["title"] for s in steps]
        context["funnel"] = _bars(titles, {"Reached": ([s["reached"] for s in steps], "#2452c7")})
        closed = reports.won_lost(
            session, since=now - timedelta(days=WON_LOST_DAYS), until=now, pipeline_id=pipeline_id
        )
        by_stage = {row["id"]: row for row in closed["by_stage"]}
        ids = [s["stage"]["id"] for s in steps]
        won = [by_stage[i]["won"]["count"] if i in by_stage else 0 for i in ids]
        lost = [by_stage[i]["lost"]["count"] if i in by_stage else 0 for i in ids]
        context["won_lost"] = _bars(titles, {"Won": (won, "#1e7a3c"), "Lost": (lost, "#c0392b")})
        since, until = _months_ahead(now.date(), FORECAST_MONTHS)
        rows = reports.forecast(session, pipeline_id=pipeline_id, since=since, until=until)
        months = sorted({m["month"] for m in rows["months"]})
        value = {m: 0.0 for m in months}
        weighted = {m: 0.0 for m in months}
        for m in rows["months"]:
            value[m["month"]] += m["value"] / 100
            weighted[m["month"]] += m["weighted_value"] / 100
        context["forecast"] = _bars(
            months,
            {
                "Value": ([value[m] for m in months], "#9bb0e0"),
                "Weighted by probability": ([weighted[m] for m in months], "#2452c7"),
            },
        )
    return render(request, "deal_reports.html", context, nav="deals")
