"""REST: /deal-scoring-rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from tidings.activities.service import Cause
from tidings.api.deps import ClockDep, SessionDep
from tidings.api.schemas import Id, InputModel
from tidings.deals import scoring
from tidings.deals.api.common import Orm
from tidings.deals.models import Deal

router = APIRouter(tags=["deal scoring"])
POINTS = Field(description="added while the condition holds; negative subtracts")
EXPIRY = Field(default=None, ge=1, le=scoring.MAX_EXPIRY_DAYS, description="points last N days")


class RuleIn(InputModel):
    name: str = Field(min_length=1, max_length=200)
    condition: Any = Field(description="a segment condition; {'deal': {...}} compares the deal")
    points: int = POINTS
    expires_after_days: int | None = EXPIRY
    active: bool = True


class RulePatch(InputModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    condition: Any = None
    points: int | None = None
    expires_after_days: int | None = EXPIRY
    active: bool | None = None


class RuleOut(Orm):
    id: int
    name: str
    condition: Any
    points: int
    expires_after_days: int | None
    active: bool
    created_at: datetime
    updated_at: datetime


class RefreshOut(BaseModel):
    refreshed: bool


@router.get("/deal-scoring-rules")
def list_rules(session: SessionDep) -> list[RuleOut]:
    return [RuleOut.model_validate(r) for r in scoring.list_rules(session)]


@router.post("/deal-scoring-rules", status_code=201)
def create_rule(body: RuleIn, session: SessionDep, clock: ClockDep) -> RuleOut:
    """Create a rule; every deal is scored by it before the answer."""
    rule = scoring.create_rule(
        session,
        body.name,
        body.condition,
        body.points,
        expires_after_days=body.expires_after_days,
        active=body.active,
        now=clock.now(),
        cause=Cause.API,
    )
    return RuleOut.model_validate(rule)


@router.post("/deal-scoring-rules/refresh")
def refresh(session: SessionDep, clock: ClockDep) -> RefreshOut:
    """Re-evaluate every rule for every deal and take off expired points."""
    now = clock.now()
    scoring.refresh_scores(session, select(Deal.id), now, cause=Cause.API)
    scoring.expire_scores(session, now, cause=Cause.API)
    return RefreshOut(refreshed=True)


@router.get("/deal-scoring-rules/{rule_id}")
def get_rule(rule_id: Id, session: SessionDep) -> RuleOut:
    return RuleOut.model_validate(scoring.get_rule(session, rule_id))


@router.patch("/deal-scoring-rules/{rule_id}")
def patch_rule(rule_id: Id, body: RulePatch, session: SessionDep, clock: ClockDep) -> RuleOut:
    """Change a rule; every deal is rescored by it before the answer."""
    given = body.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(body, name) for name in ("condition", "expires_after_days") if name in given
    }
    rule = scoring.update_rule(
        session,
        scoring.get_rule(session, rule_id),
        now=clock.now(),
        cause=Cause.API,
        name=body.name,
        points=body.points,
        active=body.active,
        **changes,
    )
    return RuleOut.model_validate(rule)


@router.delete("/deal-scoring-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: Id, session: SessionDep, clock: ClockDep) -> Response:
    """Delete a rule and take its points off every deal."""
    scoring.delete_rule(
        session, scoring.get_rule(session, rule_id), now=clock.now(), cause=Cause.API
    )
    return Response(status_code=204)
