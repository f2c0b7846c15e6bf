"""Turning a deal as given (API body, CSV row) into a complete, checked deal state.

Everything a batch of deals refers to (pipelines, stages, users, contacts, field definitions)
is looked up once per batch (`Lookups.load`); `resolve` then checks one deal in Python, with
no query, and names every offending field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tidings.contacts.fields import FieldDef, coerce_all
from tidings.contacts.models import Contact
from tidings.db.bulk import in_values
from tidings.deals.currencies import CURRENCIES
from tidings.deals.fields import field_definitions
from tidings.deals.models import Deal, Pipeline, Stage, User
from tidings.deals.pipelines import stages_by_pipeline
from tidings.errors import TidingsError, ValidationFailed

MAX_VALUE = 2**53  # minor units; beyond this JSON numbers lose precision
MAX_CONTACTS = 100


class DealStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


@dataclass(slots=True)
class DealInput:
    """A deal's attributes as given; only the names in `given` are set (a PATCH may set
    some to None: no owner, no expected close date)."""

    given: set[str] = field(default_factory=set)
    title: str | None = None
    description: str | None = None
    value: int | None = None
    currency: str | None = None
    contact_id: int | None = None
    contact_ids: list[int] | None = None  # further contacts
    owner_id: int | None = None
    pipeline_id: int | None = None
    stage_id: int | None = None
    status: str | None = None
    lost_reason: str | None = None
    closed_at: datetime | None = None
    expected_close: date | None = None
    fields: dict[str, Any] | None = None
    position: int | None = None


@dataclass(slots=True)
class DealState:
    """A complete, checked deal (ids resolved)."""

    title: str
    description: str | None
    value: int
    currency: str
    contact_id: int | None
    further: tuple[int, ...]  # further contacts, without the primary one
    owner_id: int | None
    pipeline_id: int
    stage_id: int
    status: str
    lost_reason: str | None
    closed_at: datetime | None
    expected_close: date | None
    fields: dict[str, Any]
    position: int | None  # None: the deal's stage entry time (see Deal.position)

    @classmethod
    def of(cls, deal: Deal, further: Iterable[int]) -> DealState:
        return cls(
            title=deal.title,
            description=deal.description,
            value=deal.value,
            currency=deal.currency,
            contact_id=deal.contact_id,
            further=tuple(further),
            owner_id=deal.owner_id,
            pipeline_id=deal.pipeline_id,
            stage_id=deal.stage_id,
            status=deal.status,
            lost_reason=deal.lost_reason,
            closed_at=deal.closed_at,
            expected_close=deal.expected_close,
            fields=dict(deal.fields or {}),
            position=deal.position,
        )

    @property
    def contacts(self) -> tuple[int, ...]:
        primary = () if self.contact_id is None else (self.contact_id,)
        return primary + self.further


@dataclass(slots=True)
class Lookups:
    pipelines: dict[int, Pipeline]
    stages: dict[int, Stage]
    first_stage: dict[int, int]
    users: dict[int, User]
    contacts: set[int]
    definitions: dict[str, FieldDef]

    @classmethod
    def load(cls, session: Session, contact_ids: Iterable[int]) -> Lookups:
        ordered = stages_by_pipeline(session)
        wanted = sorted(set(contact_ids))
        found = (
            set(session.scalars(select(Contact.id).where(in_values(session, Contact.id, wanted))))
            if wanted
            else set()
        )
        return cls(
            pipelines={p.id: p for p in session.scalars(select(Pipeline))},
            stages={s.id: s for stages in ordered.values() for s in stages},
            first_stage={pid: stages[0].id for pid, stages in ordered.items() if stages},
            users={u.id: u for u in session.scalars(select(User))},
            contacts=found,
            definitions=field_definitions(session),
        )


class _Errors:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, field_name: str, message: str) -> None:
        self.items.append({"field": field_name, "message": message})

    def raise_any(self) -> None:
        if self.items:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in self.items)
            raise ValidationFailed(detail, errors=list(self.items))


def resolve(
    item: DealInput, current: DealState | None, lookups: Lookups, *, now: datetime
) -> DealState:
    """The deal after applying `item` to `current` (None: a new deal); ValidationFailed
    names every offending field."""
    errors = _Errors()
    given = item.given

    def has(name: str) -> bool:
        return name in given

    title = _title(item.title if has("title") else (current.title if current else None), errors)
    description = item.description if has("description") else (current and current.description)
    value = current.value if current else 0
    if has("value"):
        value = _value(item.value, errors)
    pipeline_id, stage_id = _placement(item, current, lookups, errors)
    pipeline = lookups.pipelines.get(pipeline_id) if pipeline_id else None
    currency = current.currency if current else (pipeline.currency if pipeline else "")
    if has("currency") and item.currency is not None:
        currency = item.currency.strip().upper()
        if currency not in CURRENCIES:
            errors.add("currency", f"{item.currency!r} is not an ISO 4217 currency code")
    contact_id, further = _contacts(item, current, lookups, errors)
    owner_id = current.owner_id if current else None
    if has("owner_id") and item.owner_id != owner_id:
        owner_id = _owner(item.owner_id, lookups, errors)
    status, closed_at, lost_reason = _status(item, current, now, errors)
    expected_close = (
        item.expected_close
        if has("expected_close")
        else (current.expected_close if current else None)
    )
    fields = dict(current.fields) if current else {}
    if has("fields") and item.fields:
        try:
            fields.update(coerce_all(lookups.definitions, item.fields))
        except TidingsError as exc:
            for error in exc.errors:
                errors.add(error["field"], error["message"])
        fields = {k: v for k, v in fields.items() if v is not None}
    position = item.position if has("position") else (current.position if current else None)
    if current and (pipeline_id, stage_id) != (current.pipeline_id, current.stage_id):
        position = item.position if has("position") else None  # a new stage: line up last
    errors.raise_any()
    assert title is not None and pipeline_id is not None and stage_id is not None
    return DealState(
        title=title,
        description=description or None,
        value=value,
        currency=currency,
        contact_id=contact_id,
        further=further,
        owner_id=owner_id,
        pipeline_id=pipeline_id,
        stage_id=stage_id,
        status=status,
        lost_reason=lost_reason,
        closed_at=closed_at,
        expected_close=expected_close,
        fields=fields,
        position=position,
    )


def _title(raw: str | None, errors: _Errors) -> str | None:
    if raw is None or not raw.strip():
        errors.add("title", "a deal needs a title")
        return None
    if len(raw.strip()) > 300:
        errors.add("title", "at most 300 characters")
    return raw.strip()


def _value(raw: int | None, errors: _Errors) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int):
        errors.add("value", "must be a whole number of minor units (cents)")
        return 0
    if raw < 0:
        errors.add("value", "must not be negative")
    elif raw > MAX_VALUE:
        errors.add("value", f"must be at most {MAX_VALUE}")
    return raw


def _placement(
    item: DealInput, current: DealState | None, lookups: Lookups, errors: _Errors
) -> tuple[int | None, int | None]:
    """(pipeline id, stage id): a stage names its pipeline; a pipeline alone means its first
    stage (or, for a deal already in it, the stage it is in)."""
    pipeline_id = item.pipeline_id if "pipeline_id" in item.given else None
    stage_id = item.stage_id if "stage_id" in item.given else None
    if stage_id is not None:
        stage = lookups.stages.get(stage_id)
        if stage is None:
            errors.add("stage_id", f"stage {stage_id} does not exist")
            return None, None
        if pipeline_id is not None and stage.pipeline_id != pipeline_id:
            errors.add(
                "stage_id",
                f"stage {stage_id} belongs to pipeline {stage.pipeline_id}, not {pipeline_id}",
            )
            return None, None
        return stage.pipeline_id, stage_id
    if pipeline_id is not None:
        if pipeline_id not in lookups.pipelines:
            errors.add("pipeline_id", f"pipeline {pipeline_id} does not exist")
            return None, None
        if current is not None and current.pipeline_id == pipeline_id:
            return pipeline_id, current.stage_id
        first = lookups.first_stage.get(pipeline_id)
        if first is None:
            errors.add("pipeline_id", f"pipeline {pipeline_id} has no stages")
        return pipeline_id, first
    if current is not None:
        return current.pipeline_id, current.stage_id
    errors.add("pipeline_id", "a deal needs a pipeline (or a stage)")
    return None, None


def _contacts(
    item: DealInput, current: DealState | None, lookups: Lookups, errors: _Errors
) -> tuple[int | None, tuple[int, ...]]:
    primary = current.contact_id if current else None
    further = list(current.further) if current else []
    if "contact_ids" in item.given:
        further = list(item.contact_ids or [])
        if len(further) > MAX_CONTACTS:
            errors.add("contact_ids", f"at most {MAX_CONTACTS} contacts")
        for index, contact_id in enumerate(further):
            if contact_id not in lookups.contacts:
                errors.add(f"contact_ids[{index}]", f"contact {contact_id} does not exist")
    if "contact_id" in item.given:
        primary = item.contact_id
        if primary is not None and primary not in lookups.contacts:
            errors.add("contact_id", f"contact {primary} does not exist")
    if primary is None and current is None and further:
        primary = further[0]  # a new deal given only contact_ids: the first is primary
    if primary is None and (current is None or "contact_id" in item.given):
        errors.add("contact_id", "a deal needs a contact")
    unique = tuple(dict.fromkeys(c for c in further if c != primary))
    return primary, unique


def _owner(owner_id: int | None, lookups: Lookups, errors: _Errors) -> int | None:
    if owner_id is None:
        return None
    user = lookups.users.get(owner_id)
    if user is None:
        errors.add("owner_id", f"user {owner_id} does not exist")
    elif not user.active:
        errors.add("owner_id", f"user {owner_id} ({user.email}) is deactivated")
    return owner_id


def _status(
    item: DealInput, current: DealState | None, now: datetime, errors: _Errors
) -> tuple[str, datetime | None, str | None]:
    """(status, closed_at, lost_reason): closing stamps the time (or takes the given one),
    reopening clears both."""
    old = current.status if current else None
    status = old or DealStatus.OPEN.value
    if "status" in item.given and item.status is not None:
        try:
            status = DealStatus(item.status.strip().lower()).value
        except ValueError:
            errors.add("status", f"{item.status!r} is not one of open, won, lost")
    closed_at = current.closed_at if current else None
    lost_reason = current.lost_reason if current else None
    if status == DealStatus.OPEN:
        if "closed_at" in item.given and item.closed_at is not None:
            errors.add("closed_at", "an open deal has no closing time")
        if "lost_reason" in item.given and item.lost_reason:
            errors.add("lost_reason", "only a lost deal has a lost reason")
        return status, None, None
    if "closed_at" in item.given and item.closed_at is not None:
        closed_at = item.closed_at
        if closed_at.tzinfo is None:
            errors.add("closed_at", "needs a time zone (e.g. 2026-01-01T00:00:00Z)")
    elif status != old or closed_at is None:
        closed_at = now
    if status == DealStatus.WON:
        if "lost_reason" in item.given and item.lost_reason:
            errors.add("lost_reason", "only a lost deal has a lost reason")
        return status, closed_at, None
    if "lost_reason" in item.given:
        lost_reason = (item.lost_reason or "").strip() or None
    elif status != old:
        lost_reason = None
    return status, closed_at, lost_reason
