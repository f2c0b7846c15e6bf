"""Automations: the list with status and counts, an automation's page with its steps drawn as
a flow (counts per step, refreshed while the page is open; a step's waiting contacts on
click), pause and resume, and the YAML editor whose validation errors are shown at their line.
Changes go through `tidings.automations.service`, as from the API."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.automations import service as automations
from tidings.automations.enrolments import is_active
from tidings.automations.models import Automation, Enrolment
from tidings.automations.simulate import Simulation, simulate
from tidings.contacts.models import Contact, MailingList
from tidings.db.hooks import mark_work
from tidings.errors import TidingsError, ValidationFailed
from tidings.segments.models import Segment
from tidings.system.overview import system_automation
from tidings.web import system_pages
from tidings.web.automation_flow import flow, yaml_errors
from tidings.web.security import LoginDep, PageSessionDep, check_csrf
from tidings.web.templating import render

router = APIRouter(dependencies=[Depends(check_csrf)])
IdQuery = Annotated[int | None, Query(ge=1, le=2**62)]
MAX_YAML = 1_000_000
STEP_CONTACTS = 100
MAX_SIMULATED_DAYS = 90
# The page asks for its counts this often: the worker moves contacts while someone watches.
COUNTS_REFRESH_SECONDS = 3
DEFAULT_SCENARIO = "contacts: 100\n"
EXAMPLE = """name: Welcome
trigger: {type: tag_added, tag: new}
steps:
  - id: hello
    action: add_tag
    tag: welcomed
  - id: pause
    wait:
      days: 2
  - id: done
    end: true
"""


def parse_yaml(text: str) -> dict[str, Any]:
    """The definition in the editor's text; a YAML error names its line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "yaml"
        message = f"not valid YAML: {getattr(exc, 'problem', exc)}"
        problem = {"field": where, "message": message}
        raise ValidationFailed(f"{where}: {message}", errors=[problem]) from None
    if not isinstance(data, dict):
        raise ValidationFailed(
            "yaml: must be a mapping",
            errors=[{"field": "", "message": "the text must be a mapping (name:, steps:, …)"}],
        )
    return data


def _problems(exc: TidingsError, text: str) -> list[dict[str, Any]]:
    problems = list(exc.errors) or [{"field": "", "message": exc.detail}]
    return yaml_errors(text, problems)


@router.get("/admin/automations", response_class=HTMLResponse)
def list_page(request: Request, login: LoginDep, session: PageSessionDep) -> HTMLResponse:
    rows = automations.summaries(session)
    return render(request, "automations.html", {"automations": rows}, nav="automations")


def _editor(
    request: Request, text: str, problems: list[dict[str, Any]], action: str, **context: Any
) -> HTMLResponse:
    values = {"yaml_text": text, "problems": problems, "action": action, **context}
    status = 422 if problems else 200
    return render(request, "automation_edit.html", values, nav="automations", status=status)


@router.get("/admin/automations/new", response_class=HTMLResponse)
def new_page(request: Request, login: LoginDep) -> HTMLResponse:
    return _editor(request, EXAMPLE, [], "/admin/automations", automation=None)


@router.post("/admin/automations", response_model=None)
def create(
    request: Request,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    yaml_text: Annotated[str, Form(max_length=MAX_YAML)] = "",
) -> Response:
    try:
        made = automations.create_automation(session, parse_yaml(yaml_text), now=clock.now())
    except TidingsError as exc:
        session.rollback()
        return _editor(
            request, yaml_text, _problems(exc, yaml_text), "/admin/automations", automation=None
        )
    return RedirectResponse(f"/admin/automations/{made.id}", status_code=303)


def _counts_context(session: Session, automation: Automation) -> dict[str, Any]:
    definition = automations.definition_of(session, automation)
    return {
        "automation": automation,
        "flow": flow(definition, automations.step_counts(session, automation)),
        "totals": automations.enrolment_totals(session, automation.id),
        "refresh_seconds": COUNTS_REFRESH_SECONDS,
    }


def _page_context(session: Session, automation_id: int) -> dict[str, Any]:
    automation = automations.get_automation(session, automation_id)
    definition = automations.definition_of(session, automation)
    return {
        **_counts_context(session, automation),
        "yaml_text": yaml.safe_dump(definition, sort_keys=False, allow_unicode=True),
        "lists": [
            (n, n) for n in session.scalars(select(MailingList.name).order_by(MailingList.name))
        ],
        "segments": [
            (i, n)
            for i, n in session.execute(select(Segment.id, Segment.name).order_by(Segment.name))
        ],
    }


@router.get("/admin/automations/{automation_id}", response_class=HTMLResponse)
def automation_page(
    request: Request,
    automation_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    before: IdQuery = None,
    started: IdQuery = None,
    again: IdQuery = None,
) -> HTMLResponse:
    """A contact automation's flow, or a system automation's runs (tidings.web.system_pages)."""
    view = system_automation(session, automation_id, clock.now())
    if view is not None:
        note = f"Run {started} started." if started else ""
        if again:
            note = f"Run {again} was already started by this form."
        return system_pages.system_page(request, session, view, before=before, note=note)
    context = _page_context(session, automation_id)
    return render(request, "automation.html", context, nav="automations")


@router.get("/admin/automations/{automation_id}/counts", response_class=HTMLResponse)
def counts(
    request: Request, automation_id: Id, login: LoginDep, session: PageSessionDep
) -> HTMLResponse:
    """The run totals and per-step counts, each swapped into the page by its id."""
    context = _counts_context(session, automations.get_automation(session, automation_id))
    context["refresh"] = True
    return render(request, "partials/flow_counts.html", context, nav="automations")


def _page_with(
    request: Request, session: Session, automation_id: int, errors: dict[str, str], note: str = ""
) -> HTMLResponse:
    context = {**_page_context(session, automation_id), "note": note}
    status = 422 if errors else 200
    return render(
        request, "automation.html", context, nav="automations", errors=errors, status=status
    )


@router.post("/admin/automations/{automation_id}/enrol", response_class=HTMLResponse)
def enrol(
    request: Request,
    automation_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    list_name: Annotated[str, Form(max_length=200)] = "",
    segment_id: Annotated[int | None, Form(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    """Enrol a list's active members or a saved segment's contacts (one INSERT ... SELECT)."""
    automation = automations.get_automation(session, automation_id)
    segment = session.get(Segment, segment_id) if segment_id else None
    if segment_id and segment is None:
        return _page_with(request, session, automation_id, {"segment_id": "no such segment"})
    if bool(list_name) == bool(segment):
        return _page_with(
            request, session, automation_id, {"list_name": "choose a list or a segment"}
        )
    try:
        count = automations.enrol_contacts(
            session,
            automation,
            now=clock.now(),
            list_name=list_name or None,
            segment=segment.condition if segment else None,
        )
    except TidingsError as exc:
        session.rollback()
        return _page_with(request, session, automation_id, {"list_name": exc.detail})
    mark_work(session)
    return _page_with(request, session, automation_id, {}, f"{count} contacts enrolled.")


@router.post("/admin/automations/{automation_id}/end-runs", response_class=HTMLResponse)
def end_runs(
    request: Request,
    automation_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    step: Annotated[str, Form(max_length=100)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> HTMLResponse:
    """End the active runs, all of them or those at one step, each as an exit."""
    automation = automations.get_automation(session, automation_id)
    ended = automations.end_runs(
        session, automation, now=clock.now(), step=step or None, reason=reason or "ended by hand"
    )
    note = f"{sum(ended.values())} runs ended."
    return _page_with(request, session, automation_id, {}, note)


@router.post("/admin/automations/{automation_id}/definition", response_model=None)
def update(
    request: Request,
    automation_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    yaml_text: Annotated[str, Form(max_length=MAX_YAML)] = "",
) -> Response:
    automation = automations.get_automation(session, automation_id)
    try:
        automations.update_automation(session, automation, parse_yaml(yaml_text), now=clock.now())
    except TidingsError as exc:
        session.rollback()
        action = f"/admin/automations/{automation_id}/definition"
        problems = _problems(exc, yaml_text)
        return _editor(request, yaml_text, problems, action, automation=automation)
    return RedirectResponse(f"/admin/automations/{automation_id}", status_code=303)


@router.post("/admin/automations/{automation_id}/status", response_model=None)
def set_status(
    automation_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    clock: ClockDep,
    status: Annotated[str, Form(max_length=20)],
) -> Response:
    automation = automations.get_automation(session, automation_id)
    automations.set_status(session, automation, status, now=clock.now())
    return RedirectResponse(f"/admin/automations/{automation_id}", status_code=303)


@router.get("/admin/automations/{automation_id}/steps/{step}", response_class=HTMLResponse)
def step_contacts(
    request: Request, automation_id: Id, step: str, login: LoginDep, session: PageSessionDep
) -> HTMLResponse:
    """The first contacts waiting at a step (a part swapped under the flow)."""
    rows = session.execute(
        select(Contact.id, Contact.email)
        .join(Enrolment, Enrolment.contact_id == Contact.id)
        .where(Enrolment.automation_id == automation_id, Enrolment.step == step[:100], is_active())
        .order_by(Enrolment.id)
        .limit(STEP_CONTACTS)
    ).all()
    context = {"step": step, "contacts": rows, "limit": STEP_CONTACTS}
    return render(request, "partials/step_contacts.html", context, nav="automations")


def simulation_chart(result: Simulation) -> dict[str, Any]:
    """A Chart.js line chart: contacts waiting at each step, completed and exited, per day."""
    series = [(step, [row.waiting.get(step, 0) for row in result.days]) for step in result.steps]
    series += [
        ("completed", [row.completed for row in result.days]),
        ("exited", [row.exited for row in result.days]),
        ("refused emails", [row.refused for row in result.days]),
    ]
    return {
        "type": "line",
        "data": {
            "labels": [f"day {row.day}" for row in result.days],
            "datasets": [{"label": label, "data": data} for label, data in series],
        },
        "options": {"scales": {"y": {"beginAtZero": True}}},
    }


@router.post("/admin/automations/{automation_id}/simulate", response_class=HTMLResponse)
def simulate_page(
    request: Request,
    automation_id: Id,
    login: LoginDep,
    session: PageSessionDep,
    days: Annotated[int, Form(ge=1, le=MAX_SIMULATED_DAYS)] = 14,
    scenario: Annotated[str, Form(max_length=MAX_YAML)] = DEFAULT_SCENARIO,
) -> HTMLResponse:
    """Run the automation's current definition on a fresh database filled from the scenario
    (never the live one) and draw the days; the part is swapped under the form."""
    automation = automations.get_automation(session, automation_id)
    definition = automations.definition_of(session, automation)
    context: dict[str, Any] = {"days": days, "scenario": scenario}
    if request.headers.get("HX-Request"):
        context["automation"] = automation
    else:  # without JavaScript the whole page comes back, the result in its place
        context |= _page_context(session, automation_id)
    template = "partials/simulation.html" if "flow" not in context else "automation.html"
    try:
        parsed = yaml.safe_load(scenario) if scenario.strip() else {}
        if not isinstance(parsed, dict):
            raise ValidationFailed("scenario: must be a mapping")
        result = simulate(definition, days=days, scenario=parsed)
    except (yaml.YAMLError, TidingsError) as exc:
        detail = exc.detail if isinstance(exc, TidingsError) else f"not valid YAML: {exc}"
        errors = {"scenario": detail}
        return render(request, template, context, nav="automations", errors=errors, status=422)
    context |= {"result": result, "chart": simulation_chart(result)}
    return render(request, template, context, nav="automations")
