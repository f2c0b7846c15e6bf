"""Deals in a simulation scenario (tidings.automations.simulate): pipelines and users to
create in the copy, and deal events by day that create, move and close the chosen contacts'
deals through the deals package — so deal triggers fire and deal actions run as they would.

    pipelines:
      - {name: Sales, currency: EUR, stages: [Lead, Qualified, Proposal, Won]}
    users: [ann@example.com, bob@example.com]
    events:
      - {day: 1, add_deal: {pipeline: Sales, title: Upgrade, value: 50000}, percent: 40}
      - {day: 3, move_deal: {pipeline: Sales, from: Lead, to: Proposal}, percent: 50}
      - {day: 6, deal_status: {pipeline: Sales, to: won}, percent: 20}

A deal event acts on each chosen contact's open deals (as their primary contact) in the
pipeline (and, for move_deal, at the `from` stage).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from tidings.db.bulk import in_values
from tidings.deals.models import Deal, Pipeline, Stage
from tidings.deals.moves import move_deals
from tidings.deals.pipelines import StageSpec, create_pipeline
from tidings.deals.service import (
    DealChange,
    create_deals,
    further_contacts,
    lookups_for,
    update_deals,
)
from tidings.deals.users import create_user
from tidings.deals.validation import DealInput, DealState, resolve
from tidings.errors import TidingsError, ValidationFailed

DEAL_EVENTS = ("add_deal", "move_deal", "deal_status")
CAUSE = "api"


def seed_crm(session: Session, scenario: dict[str, Any], now: datetime) -> None:
    """The scenario's pipelines and users, created in the copy."""
    for index, spec in enumerate(scenario.get("pipelines") or []):
        where = f"scenario.pipelines[{index}]"
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise ValidationFailed(f"{where}: {{name, currency, stages: [titles]}}")
        stages = [StageSpec(str(title)) for title in spec.get("stages") or []]
        try:
            create_pipeline(
                session, spec["name"], str(spec.get("currency", "EUR")), stages, now=now
            )
        except TidingsError as exc:
            raise ValidationFailed(f"{where}: {exc.detail}") from None
    for index, email in enumerate(scenario.get("users") or []):
        try:
            create_user(session, str(email), str(email).split("@")[0], now=now)
        except TidingsError as exc:
            raise ValidationFailed(f"scenario.users[{index}]: {exc.detail}") from None


def apply_deal_event(
    session: Session, spec: dict[str, Any], chosen: list[int], now: datetime, where: str
) -> None:
    kind = next(k for k in DEAL_EVENTS if k in spec)
    body = spec[kind]
    if not isinstance(body, dict) or not isinstance(body.get("pipeline"), str):
        raise ValidationFailed(f"{where}.{kind}: an object naming its pipeline")
    pipeline = session.scalar(select(Pipeline).where(Pipeline.name == body["pipeline"]))
    if pipeline is None:
        raise ValidationFailed(f"{where}.{kind}.pipeline: no pipeline {body['pipeline']!r}")
    stages = {
        s.title: s for s in session.scalars(select(Stage).where(Stage.pipeline_id == pipeline.id))
    }

    def stage(key: str) -> Stage | None:
        title = body.get(key)
        if title is None:
            return None
        if title not in stages:
            raise ValidationFailed(f"{where}.{kind}.{key}: no stage {title!r} in {pipeline.name}")
        return stages[title]

    if kind == "add_deal":
        _add(session, body, chosen, pipeline.id, stage("stage"), now, where)
        return
    deals = [
        in_values(session, Deal.contact_id, chosen),
        Deal.pipeline_id == pipeline.id,
        Deal.status == "open",
    ]
    if kind == "move_deal":
        target, source = stage("to"), stage("from")
        if target is None:
            raise ValidationFailed(f"{where}.move_deal.to: the stage to move to")
        if source is not None:
            deals.append(Deal.stage_id == source.id)
        move_deals(session, and_(*deals), target, now=now, cause=CAUSE)
        return
    _close(session, body, deals, now, where)


def _add(
    session: Session,
    body: dict[str, Any],
    chosen: list[int],
    pipeline_id: int,
    stage: Stage | None,
    now: datetime,
    where: str,
) -> None:
    items = []
    for contact_id in chosen:
        given = {"title", "contact_id", "pipeline_id", "value"}
        item = DealInput(
            given,
            title=str(body.get("title", "Deal")),
            contact_id=contact_id,
            pipeline_id=pipeline_id,
            value=body.get("value", 0),
        )
        if stage is not None:
            item.given.add("stage_id")
            item.stage_id = stage.id
        items.append(item)
    lookups = lookups_for(session, items)
    try:
        states = [resolve(item, None, lookups, now=now) for item in items]
    except TidingsError as exc:
        raise ValidationFailed(f"{where}.add_deal: {exc.detail}") from None
    create_deals(session, states, now=now, cause=CAUSE)


def _close(
    session: Session, body: dict[str, Any], deals: list[Any], now: datetime, where: str
) -> None:
    status = body.get("to")
    if status not in ("won", "lost", "open"):
        raise ValidationFailed(f"{where}.deal_status.to: won, lost or open")
    found = list(session.scalars(select(Deal).where(*deals)))
    further = further_contacts(session, [d.id for d in found])
    lookups = lookups_for(session, [])
    changes = []
    for deal in found:
        old = DealState.of(deal, further.get(deal.id, []))
        new = resolve(DealInput({"status"}, status=status), old, lookups, now=now)
        changes.append(DealChange(deal, old, new))
    update_deals(session, changes, now=now, cause=CAUSE)


def deal_lines(session: Session) -> list[str]:
    """Where the copy's deals ended: per pipeline and stage, open / won / lost."""
    rows = session.execute(
        select(Pipeline.name, Stage.title, Deal.status, Stage.position)
        .join(Stage, Stage.id == Deal.stage_id)
        .join(Pipeline, Pipeline.id == Deal.pipeline_id)
    ).all()
    if not rows:
        return []
    counts: dict[tuple[str, int, str], dict[str, int]] = {}
    for pipeline, title, status, position in rows:
        cell = counts.setdefault((pipeline, position, title), {})
        cell[status] = cell.get(status, 0) + 1
    lines = ["", "deals at the end (open / won / lost):"]
    for (pipeline, _, title), cell in sorted(counts.items()):
        lines.append(
            f"{pipeline + ' / ' + title:>30}  {cell.get('open', 0):>6} {cell.get('won', 0):>6} "
            f"{cell.get('lost', 0):>6}"
        )
    return lines
