"""/api/3 automations (with entered/exited counts) and contactAutomations: enrol a contact,
list and read runs, end a run (through tidings.automations.service)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import case, func, select

from tidings.activecampaign import deal_shapes
from tidings.activecampaign.bodies import AcId, ACModel
from tidings.activecampaign.deps import SessionDep
from tidings.activecampaign.envelopes import ac_id, ac_time, id_filter, meta, page
from tidings.activecampaign.errors import ac_json
from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.automations import service as automations
from tidings.automations.models import Automation, Enrolment
from tidings.contacts import service as contacts
from tidings.errors import NotFound, field_error

router = APIRouter()
AC_STATUS = {"active": "1"}


def automation(row: Automation, entered: int, exited: int) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "name": row.name,
        "status": AC_STATUS.get(row.status, "2"),
        "tidings_status": row.status,
        "cdate": ac_time(row.created_at),
        "mdate": ac_time(row.updated_at),
        "userid": "1",
        "entered": str(entered),
        "exited": str(exited),
        "hidden": "0",
        "defaultscreenshot": "",
        "screenshot": "",
        "links": {
            "campaigns": f"/api/3/automations/{row.id}/campaigns",
            "contactGoals": f"/api/3/automations/{row.id}/contactGoals",
            "contactAutomations": f"/api/3/automations/{row.id}/contactAutomations",
        },
    }


def _counts(session: Any, ids: list[int]) -> dict[int, tuple[int, int]]:
    if not ids:
        return {}
    rows = session.execute(
        select(
            Enrolment.automation_id,
            func.count(),
            func.sum(case((Enrolment.state != "active", 1), else_=0)),
        )
        .where(Enrolment.automation_id.in_(ids))
        .group_by(Enrolment.automation_id)
    ).all()
    return {a: (int(n), int(ended or 0)) for a, n, ended in rows}


@router.get("/automations")
def list_automations(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session,
        select(Automation),
        request,
        id_column=Automation.id,
        filters={"name": lambda raw: Automation.name.ilike(f"%{raw.strip()}%")},
        orders={
            "name": Automation.name,
            "cdate": Automation.created_at,
            "mdate": Automation.updated_at,
        },
    )
    counts = _counts(session, [r[0].id for r in rows])
    items = [automation(r[0], *counts.get(r[0].id, (0, 0))) for r in rows]
    return ac_json({"automations": items, "meta": meta(total, starts=[], filtered=False)})


@router.get("/automations/{automation_id}")
def get_automation(automation_id: Id, session: SessionDep) -> JSONResponse:
    row = automations.get_automation(session, automation_id)
    return ac_json({"automation": automation(row, *_counts(session, [row.id]).get(row.id, (0, 0)))})


class ContactAutomationFields(ACModel):
    contact: AcId
    automation: AcId


class ContactAutomationBody(ACModel):
    contactAutomation: ContactAutomationFields


@router.post("/contactAutomations")
def enrol(body: ContactAutomationBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    """Add a contact to an automation (as enrolling by hand does: a contact already running it,
    or one it ran once for, is not started again; the answer is then its latest run)."""
    given = body.contactAutomation
    try:
        contact = contacts.get_contact(session, given.contact)
    except NotFound:
        raise field_error("contact", f"contact {given.contact} does not exist") from None
    try:
        row = automations.get_automation(session, given.automation)
    except NotFound:
        raise field_error("automation", f"automation {given.automation} does not exist") from None
    automations.enrol_contacts(session, row, now=clock.now(), contact_ids=[contact.id])
    run = session.scalar(
        select(Enrolment)
        .where(Enrolment.automation_id == row.id, Enrolment.contact_id == contact.id)
        .order_by(Enrolment.id.desc())
        .limit(1)
    )
    if run is None:
        raise field_error("automation", f"automation {row.id} cannot start for this contact now")
    return ac_json({"contacts": [], "contactAutomation": deal_shapes.contact_automation(run)}, 201)


def _run(session: Any, run_id: int) -> Enrolment:
    run = session.get(Enrolment, run_id)
    if run is None:
        raise NotFound(f"No Result found for ContactAutomation with id {run_id}")
    return run  # type: ignore[no-any-return]


@router.get("/contactAutomations/{run_id}")
def get_run(run_id: Id, session: SessionDep) -> JSONResponse:
    return ac_json({"contactAutomation": deal_shapes.contact_automation(_run(session, run_id))})


@router.delete("/contactAutomations/{run_id}")
def end_run(run_id: Id, session: SessionDep, clock: ClockDep) -> JSONResponse:
    run = _run(session, run_id)
    if run.state == "active":
        row = automations.get_automation(session, run.automation_id)
        automations.end_runs(
            session,
            row,
            now=clock.now(),
            contact_ids=[run.contact_id],
            reason="ended through /api/3",
        )
    return ac_json({})


@router.get("/contactAutomations")
def list_runs(request: Request, session: SessionDep) -> JSONResponse:
    rows, total = page(
        session,
        select(Enrolment),
        request,
        id_column=Enrolment.id,
        filters={
            "contact": id_filter(Enrolment.contact_id, "contact"),
            "seriesid": id_filter(Enrolment.automation_id, "seriesid"),
            "automation": id_filter(Enrolment.automation_id, "automation"),
        },
        orders={"adddate": Enrolment.entered_at, "remdate": Enrolment.ended_at},
    )
    items = [deal_shapes.contact_automation(r[0]) for r in rows]
    return ac_json({"contactAutomations": items, "meta": meta(total)})
