"""Queries: deals by filter, a page of them, the deals of a contact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.orm import Session

from tidings.deals.models import Deal, DealContact
from tidings.errors import NotFound

Row = TypeVar("Row")


def get_row(session: Session, model: type[Row], row_id: int, what: str) -> Row:
    """The row with this id, or a 404 naming it ("deal 7 does not exist")."""
    row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{what} {row_id} does not exist")
    return row


@dataclass(slots=True)
class DealFilter:
    pipeline_id: int | None = None
    stage_id: int | None = None
    status: str | None = None
    owner_id: int | None = None
    contact_id: int | None = None  # a primary or further contact of the deal
    value_min: int | None = None
    value_max: int | None = None
    created_since: datetime | None = None
    updated_since: datetime | None = None
    closed_since: datetime | None = None
    text: str | None = None  # in the title, case-insensitive

    def where(self) -> list[ColumnElement[bool]]:
        parts: list[ColumnElement[bool]] = []
        if self.pipeline_id is not None:
            parts.append(Deal.pipeline_id == self.pipeline_id)
        if self.stage_id is not None:
            parts.append(Deal.stage_id == self.stage_id)
        if self.status is not None:
            parts.append(Deal.status == self.status)
        if self.owner_id is not None:
            parts.append(Deal.owner_id == self.owner_id)
        if self.contact_id is not None:
            parts.append(
                exists().where(
                    DealContact.deal_id == Deal.id, DealContact.contact_id == self.contact_id
                )
            )
        if self.value_min is not None:
            parts.append(Deal.value >= self.value_min)
        if self.value_max is not None:
            parts.append(Deal.value <= self.value_max)
        if self.created_since is not None:
            parts.append(Deal.created_at >= self.created_since)
        if self.updated_since is not None:
            parts.append(Deal.updated_at >= self.updated_since)
        if self.closed_since is not None:
            parts.append(Deal.closed_at >= self.closed_since)
        if self.text:
            parts.append(func.lower(Deal.title).contains(self.text.lower(), autoescape=True))
        return parts


def deal_page(
    session: Session, where: DealFilter, *, after_id: int | None, limit: int
) -> list[Deal]:
    """Deals matching the filter in id order, after `after_id` (keyset pagination)."""
    query = select(Deal).where(*where.where())
    if after_id is not None:
        query = query.where(Deal.id > after_id)
    return list(session.scalars(query.order_by(Deal.id).limit(limit)))


def pairs(session: Session, statement: Select[Any, Any]) -> dict[Any, Any]:
    """A two-column query's rows as a dict (first column -> second)."""
    return {key: value for key, value in session.execute(statement)}
