"""The deal actions' models (tidings.automations.deal_actions runs them).

A deal action acts on the run's deal, "the triggered deal" (or the deal an earlier add_deal
step of the run created), unless it names another with `deal:` — a selector among the
contact's deals (pipeline, stage, status): the newest of them that matches. A run without a
deal and a step without `deal:` acts on the contact's newest open deal.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Ref = int | str  # an id, or a name: a pipeline's name, a stage's title, a user's email


def _ref() -> Any:
    return Field(default=None, union_mode="left_to_right")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DealSelector(_Model):
    """Which of the contact's deals (primary or further contact): the newest that matches."""

    pipeline: Ref | None = _ref()
    stage: Ref | None = _ref()
    status: Literal["open", "won", "lost"] | None = None


class RoundRobin(_Model):
    """Owners in turn: these users (ids or emails), or every active user when empty."""

    round_robin: list[Ref] = Field(default_factory=list, max_length=200)


class _DealStep(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
    next: str | None = None
    deal: DealSelector | None = None


class AddDealAction(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}$")
    next: str | None = None
    action: Literal["add_deal"]
    pipeline: Ref = Field(union_mode="left_to_right")
    stage: Ref | None = _ref()
    title: str = Field(min_length=1, max_length=300, description="{{ contact.first_name }} ...")
    value: int = Field(default=0, ge=0, le=2**53)
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    owner: Ref | RoundRobin | None = Field(default=None, union_mode="left_to_right")
    description: str | None = None


class UpdateDealAction(_DealStep):
    action: Literal["update_deal"]
    pipeline: Ref | None = _ref()  # with `stage` as a title: the stage of that pipeline
    stage: Ref | None = _ref()
    status: Literal["open", "won", "lost"] | None = None
    lost_reason: str | None = None
    owner: Ref | None = _ref()
    value: int | None = Field(default=None, ge=0, le=2**53)
    title: str | None = Field(default=None, min_length=1, max_length=300)
    fields: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _something(self) -> UpdateDealAction:
        changes = (
            self.pipeline,
            self.stage,
            self.status,
            self.owner,
            self.value,
            self.title,
            self.fields,
        )
        if all(c is None for c in changes):
            raise ValueError("give what to change: stage, status, owner, value, title or fields")
        return self


class AdjustDealScoreAction(_DealStep):
    action: Literal["adjust_deal_score"]
    by: int = Field(ge=-1_000_000, le=1_000_000)


class AddTaskAction(_DealStep):
    action: Literal["add_task"]
    type: str = Field(default="to-do", min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=300)
    note: str | None = None
    due_in_days: float | None = Field(default=None, ge=0, le=36_600)
    # A user (id or email); `owner`: the deal's owner (default); none: unassigned.
    assignee: Ref | None = Field(default="owner", union_mode="left_to_right")


class CompleteTaskAction(_DealStep):
    action: Literal["complete_task"]
    type: str | None = Field(default=None, min_length=1, max_length=64)
    title: str | None = None


class AddNoteAction(_DealStep):
    action: Literal["add_note"]
    body: str = Field(min_length=1, max_length=100_000)


DEAL_ACTION_STEPS = (
    AddDealAction
    | UpdateDealAction
    | AdjustDealScoreAction
    | AddTaskAction
    | CompleteTaskAction
    | AddNoteAction
)
DEAL_ACTIONS = (
    "add_deal",
    "update_deal",
    "adjust_deal_score",
    "add_task",
    "complete_task",
    "add_note",
)
