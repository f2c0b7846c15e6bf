"""What only a `kind: system` automation holds: its triggers (a schedule, a job or broadcast
finishing) and its steps (a job step, an `if` on the previous job's outcome).

    kind: system
    name: Nightly export
    trigger: {type: schedule, cron: "0 6 * * MON", timezone: Europe/Berlin, catch_up: once}
    steps:
      - {id: export, job: {kind: export, export: {type: contacts}}}
      - {id: ok, if: {status: succeeded, min_written: 1}, then: tell, else: alarm}
      - {id: tell, action: notify, to: ops@example.com, subject: Export ready}
      - {id: alarm, action: notify, to: ops@example.com, subject: Export failed}

A system automation runs once per tick or finished event, with no contact; contact actions and
contact conditions are refused in it, and job steps in a contact automation (tidings.automations.
definition.parse names the path).
"""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tidings.automations.triggers import TriggerSpec, register
from tidings.errors import ValidationFailed
from tidings.jobs.specs import parse_spec

STEP_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$"
# The actions a system automation may take: nothing that needs a contact.
SYSTEM_ACTIONS = ("notify",)
SYSTEM_TRIGGERS = (
    "schedule",
    "job_finished",
    "broadcast_finished",
    "import_finished",
    "export_finished",
)
JOB_STATUSES = ("succeeded", "failed")


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleTrigger(_Trigger):
    """A cron line in a time zone (local wall-clock times, DST handled by croniter), or
    `every: N` minutes; `catch_up: once` runs a tick missed while no worker ran once at
    start-up, `skip` records it as skipped."""

    type: Literal["schedule"]
    cron: str | None = None
    timezone: str = "UTC"
    every: int | None = Field(default=None, ge=1, le=525_600, description="minutes")
    catch_up: Literal["once", "skip"] = "once"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and not croniter.is_valid(value):
            raise ValueError(f"not a cron line (minute hour day month weekday): {value!r}")
        return value

    @model_validator(mode="after")
    def _one(self) -> ScheduleTrigger:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give exactly one of: cron, every")
        return self


class JobFinishedTrigger(_Trigger):
    """A job run finished: of a kind, started by a named automation, with a status (default
    succeeded: an automation chained on another is skipped when the first fails)."""

    type: Literal["job_finished"]
    job: str | None = Field(default=None, description="job kind: send, export, import, ...")
    automation: str | None = Field(default=None, description="the automation that ran the job")
    status: Literal["succeeded", "failed", "any"] = "succeeded"


class BroadcastFinishedTrigger(_Trigger):
    type: Literal["broadcast_finished"]
    status: Literal["succeeded", "failed", "any"] = "succeeded"


class ImportFinishedTrigger(_Trigger):
    """A contact import finished; `min_percent`: only when at least that share of the rows read
    was imported."""

    type: Literal["import_finished"]
    min_percent: float = Field(default=0, ge=0, le=100)
    status: Literal["succeeded", "failed", "any"] = "succeeded"


class ExportFinishedTrigger(_Trigger):
    type: Literal["export_finished"]
    status: Literal["succeeded", "failed", "any"] = "succeeded"


def _never(*_args: Any) -> bool:
    return False


# The contact engine knows these types and starts nothing with them (tidings.system does).
for _type in SYSTEM_TRIGGERS:
    register(TriggerSpec(_type, activity_types=lambda _t: [], matches=_never))

SystemTrigger = (
    ScheduleTrigger
    | JobFinishedTrigger
    | BroadcastFinishedTrigger
    | ImportFinishedTrigger
    | ExportFinishedTrigger
)


class StepBase(BaseModel):
    """The same `id`/`next` as every step (schema.StepBase, which imports this module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=STEP_ID)
    next: str | None = None


class JobStep(StepBase):
    """Run a job of tidings.jobs (send, export, import, membership, hygiene) to its end."""

    job: dict[str, Any]

    @field_validator("job")
    @classmethod
    def _spec(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            parse_spec(value)
        except ValidationFailed as exc:
            raise ValueError(exc.detail) from None
        return value


class JobOutcome(BaseModel):
    """A test of the previous job's outcome: its status and counts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["succeeded", "failed"] | None = None
    min_written: int | None = Field(default=None, ge=0)
    max_rejected: int | None = Field(default=None, ge=0)
    min_read: int | None = Field(default=None, ge=0)

    def holds(self, job: dict[str, Any] | None) -> bool:
        if job is None:
            return False
        checks = (
            self.status is None or job.get("status") == self.status,
            self.min_written is None or int(job.get("written", 0)) >= self.min_written,
            self.max_rejected is None or int(job.get("rejected", 0)) <= self.max_rejected,
            self.min_read is None or int(job.get("read", 0)) >= self.min_read,
        )
        return all(checks)


class JobIfStep(StepBase):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    if_: JobOutcome = Field(alias="if")
    then: str | None = None
    else_: str | None = Field(default=None, alias="else")


SYSTEM_STEP_KEYS = ("job",)
CONTACT_ONLY_STEP_KEYS = ("split",)


def kind_problems(data: dict[str, Any]) -> list[dict[str, str]]:
    """What the automation's kind forbids, each with its path."""
    kind = data.get("kind", "contact")
    if kind not in ("contact", "system"):
        return [{"field": "kind", "message": "must be contact or system"}]
    problems = []
    trigger = data.get("trigger")
    trigger_type = trigger.get("type") if isinstance(trigger, dict) else None
    if trigger_type is not None and (trigger_type in SYSTEM_TRIGGERS) != (kind == "system"):
        problems.append(
            {"field": "trigger.type", "message": f"{trigger_type!r} is not a {kind} trigger"}
        )
    for index, raw in enumerate(data.get("steps") or []):
        if not isinstance(raw, dict):
            continue
        path = f"steps[{index}]"
        action = raw.get("action")
        if kind == "system" and action is not None and action not in SYSTEM_ACTIONS:
            problems.append(
                {
                    "field": f"{path}.action",
                    "message": f"{action!r} needs a contact; "
                    f"a system automation may only: {', '.join(SYSTEM_ACTIONS)}",
                }
            )
        for key in SYSTEM_STEP_KEYS if kind == "contact" else CONTACT_ONLY_STEP_KEYS:
            if key in raw:
                problems.append(
                    {"field": f"{path}.{key}", "message": f"not a step of a {kind} automation"}
                )
    return problems
