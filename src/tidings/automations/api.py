"""REST endpoints: automations (with versions), enrolment, per-step counts, a contact's runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import yaml
from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tidings.api.deps import ClockDep, SessionDep
from tidings.api.schemas import Id, InputModel
from tidings.automations import references, service
from tidings.automations.definition import parse_definition
from tidings.automations.models import Automation
from tidings.db.hooks import mark_work
from tidings.errors import ValidationFailed

router = APIRouter(tags=["automations"])


class DefinitionIn(InputModel):
    """Either `definition` (a JSON object) or `yaml` (the same as YAML text)."""

    definition: dict[str, Any] | None = None
    yaml_text: str | None = Field(default=None, alias="yaml", max_length=1_000_000)

    @model_validator(mode="after")
    def _one(self) -> DefinitionIn:
        if (self.definition is None) == (self.yaml_text is None):
            raise ValueError("give exactly one of: definition, yaml")
        return self

    def data(self) -> dict[str, Any]:
        if self.definition is not None:
            return self.definition
        try:
            loaded = yaml.safe_load(self.yaml_text or "")
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"yaml: line {mark.line + 1}" if mark is not None else "yaml"
            raise ValidationFailed(f"{where}: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(loaded, dict):
            raise ValidationFailed("yaml: must be a mapping")
        return loaded


class AutomationIn(DefinitionIn):
    status: Literal["active", "paused"] = "active"
    # Create the tags and lists the definition names that do not exist yet.
    create_missing: bool = False


class AutomationUpdate(DefinitionIn):
    # Enrolments waiting in a step of the current version move to the new version's step.
    step_mapping: dict[str, str] = Field(default_factory=dict)
    create_missing: bool = False


class StatusIn(InputModel):
    status: Literal["active", "paused"]


class EnrolIn(InputModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    contact_ids: list[Id] | None = Field(default=None, max_length=100_000)
    list_name: str | None = Field(default=None, alias="list")
    segment: Any = None
    everyone: bool = Field(default=False, alias="all")


class EndRunsIn(InputModel):
    """Which active runs to end: all, or only those at `step` and/or of `contact_ids`."""

    step: str | None = Field(default=None, min_length=1, max_length=100)
    contact_ids: list[Id] | None = Field(default=None, max_length=100_000)
    reason: str | None = Field(default=None, min_length=1, max_length=500)


class EndRunsOut(BaseModel):
    ended: int
    by_step: dict[str, int]


class StepCount(BaseModel):
    id: str
    kind: str
    waiting: int
    passed: int
    failed: int
    refused: int
    exited: int


class AutomationOut(BaseModel):
    id: int
    name: str
    status: str
    version: int
    versions: list[int]
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    enrolments: dict[str, int]
    steps: list[StepCount]
    # Tags, lists, fields, templates or automations it names that do not exist.
    warnings: list[dict[str, str]] = Field(default_factory=list)


class AutomationSummary(BaseModel):
    id: int
    name: str
    status: str
    version: int
    active_enrolments: int


def _references(session: Any, data: dict[str, Any], create: bool, now: datetime) -> list[Any]:
    problems = references.reference_problems(session, parse_definition(data))
    if create:
        references.create_missing(session, problems, now=now)
        problems = [p for p in problems if p.get("offer") != "create"]
    return problems


def _out(session: Any, automation: Automation) -> AutomationOut:
    return AutomationOut.model_validate(service.report(session, automation))


@router.post("/automations", status_code=201, response_model=AutomationOut)
def create(body: AutomationIn, session: SessionDep, clock: ClockDep) -> AutomationOut:
    data = body.data()
    automation = service.create_automation(session, data, now=clock.now(), status=body.status)
    warnings = _references(session, data, body.create_missing, clock.now())
    return _out(session, automation).model_copy(update={"warnings": warnings})


@router.get("/automations", response_model=list[AutomationSummary])
def list_automations(session: SessionDep) -> list[AutomationSummary]:
    return [AutomationSummary(**s) for s in service.summaries(session)]


@router.get("/automations/{automation_id}", response_model=AutomationOut)
def get(automation_id: Id, session: SessionDep) -> AutomationOut:
    return _out(session, service.get_automation(session, automation_id))


@router.put("/automations/{automation_id}", response_model=AutomationOut)
def update(
    automation_id: Id, body: AutomationUpdate, session: SessionDep, clock: ClockDep
) -> AutomationOut:
    automation = service.get_automation(session, automation_id)
    data = body.data()
    service.update_automation(
        session, automation, data, now=clock.now(), step_mapping=body.step_mapping
    )
    warnings = _references(session, data, body.create_missing, clock.now())
    mark_work(session)
    return _out(session, automation).model_copy(update={"warnings": warnings})


@router.get("/automations/{automation_id}/versions/{version}")
def get_version(automation_id: Id, version: Id, session: SessionDep) -> dict[str, Any]:
    automation = service.get_automation(session, automation_id)
    return {
        "automation_id": automation.id,
        "version": version,
        "definition": service.definition_of(session, automation, version),
    }


@router.post("/automations/{automation_id}/status", response_model=AutomationOut)
def set_status(
    automation_id: Id, body: StatusIn, session: SessionDep, clock: ClockDep
) -> AutomationOut:
    automation = service.get_automation(session, automation_id)
    service.set_status(session, automation, body.status, now=clock.now())
    mark_work(session)
    return _out(session, automation)


@router.post("/automations/{automation_id}/enrol")
def enrol(automation_id: Id, body: EnrolIn, session: SessionDep, clock: ClockDep) -> dict[str, int]:
    automation = service.get_automation(session, automation_id)
    count = service.enrol_contacts(
        session,
        automation,
        now=clock.now(),
        contact_ids=body.contact_ids,
        list_name=body.list_name,
        segment=body.segment,
        everyone=body.everyone,
    )
    mark_work(session)
    return {"enrolled": count}


@router.post("/automations/{automation_id}/end-runs")
def end_runs(
    automation_id: Id, session: SessionDep, clock: ClockDep, body: EndRunsIn | None = None
) -> EndRunsOut:
    """End the automation's active runs (all, or those at `step` and/or of `contact_ids`),
    each as an exit with `reason`, counted like one."""
    body = body or EndRunsIn()
    automation = service.get_automation(session, automation_id)
    by_step = service.end_runs(
        session,
        automation,
        now=clock.now(),
        step=body.step,
        contact_ids=body.contact_ids,
        reason=body.reason,
    )
    return EndRunsOut(ended=sum(by_step.values()), by_step=by_step)


@router.delete("/automations/{automation_id}", status_code=204)
def delete(automation_id: Id, session: SessionDep) -> Response:
    service.delete_automation(session, service.get_automation(session, automation_id))
    return Response(status_code=204)


@router.get("/contacts/{contact_id}/automations")
def contact_automations(contact_id: Id, session: SessionDep) -> list[dict[str, Any]]:
    return service.contact_automations(session, contact_id)
