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

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tidings.automations.system_triggers import (
    SYSTEM_TRIGGERS,
    BroadcastFinishedTrigger,
    ExportFinishedTrigger,
    ImportFinishedTrigger,
    JobFinishedTrigger,
    ScheduleTrigger,
    SystemTrigger,
)
from tidings.errors import ValidationFailed
from tidings.jobs.specs import parse_spec

STEP_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$"
# The actions a system automation may take: nothing that needs a contact.
SYSTEM_ACTIONS = ("notify",)
JOB_STATUSES = ("succeeded", "failed")
__all__ = [
    "SYSTEM_TRIGGERS",
    "BroadcastFinishedTrigger",
    "ExportFinishedTrigger",
    "ImportFinishedTrigger",
    "JobFinishedTrigger",
    "ScheduleTrigger",
    "SystemTrigger",
]


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
