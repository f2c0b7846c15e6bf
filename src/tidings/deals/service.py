"""Writing deals: create, update and delete, each with its activity rows in the same
transaction, for one deal (the API) or a batch (the CSV import) with the same statements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from tidings.db.bulk import in_values, insert_returning_ids, insert_tuples
from tidings.deals import reach, scoring, totals
from tidings.deals.models import Deal, DealContact, StageVisit
from tidings.deals.repository import get_row
from tidings.deals.timeline import DealActivity, DealRow, deal_row, record_rows
from tidings.deals.validation import DealInput, DealState, Lookups, resolve

VISIT_COLUMNS = ("deal_id", "pipeline_id", "stage_id", "entered_at")
LINK_COLUMNS = ("deal_id", "contact_id", "created_at")


def entry_position(now: datetime) -> int:
    """The board position of a deal entering a stage now (cards line up by arrival)."""
    return int(now.timestamp() * 1_000_000)


def get_deal(session: Session, deal_id: int) -> Deal:
    return get_row(session, Deal, deal_id, "deal")


def further_contacts(session: Session, deal_ids: Sequence[int]) -> dict[int, list[int]]:
    """Each deal's contacts other than its primary one, in the order they were added."""
    if not deal_ids:
        return {}
    rows = session.execute(
        select(DealContact.deal_id, DealContact.contact_id)
        .join(Deal, Deal.id == DealContact.deal_id)
        .where(
            in_values(session, DealContact.deal_id, deal_ids),
            (Deal.contact_id.is_(None)) | (DealContact.contact_id != Deal.contact_id),
        )
        .order_by(DealContact.deal_id, DealContact.created_at, DealContact.contact_id)
    )
    grouped: dict[int, list[int]] = {}
    for deal_id, contact_id in rows:
        grouped.setdefault(deal_id, []).append(contact_id)
    return grouped


def state_of(session: Session, deal: Deal) -> DealState:
    return DealState.of(deal, further_contacts(session, [deal.id]).get(deal.id, []))


def lookups_for(session: Session, items: Sequence[DealInput]) -> Lookups:
    """Everything `items` refer to, looked up once."""
    contact_ids: list[int] = []
    for item in items:
        if item.contact_id is not None:
            contact_ids.append(item.contact_id)
        contact_ids.extend(item.contact_ids or [])
    return Lookups.load(session, contact_ids)


def create_deal(session: Session, item: DealInput, *, now: datetime, cause: str) -> Deal:
    """Create one deal (ValidationFailed names every offending field)."""
    state = resolve(item, None, lookups_for(session, [item]), now=now)
    (deal_id,) = create_deals(session, [state], now=now, cause=cause)
    return get_deal(session, deal_id)


def create_deals(
    session: Session, states: Sequence[DealState], *, now: datetime, cause: str
) -> list[int]:
    """Insert checked deals with their contacts, first stage visits and deal_created
    activities; score them. Returns the new ids in order."""
    if not states:
        return []
    position = entry_position(now)
    ids = insert_returning_ids(
        session,
        Deal.__table__,  # type: ignore[arg-type]
        [
            {
                "title": s.title,
                "description": s.description,
                "value": s.value,
                "currency": s.currency,
                "contact_id": s.contact_id,
                "owner_id": s.owner_id,
                "pipeline_id": s.pipeline_id,
                "stage_id": s.stage_id,
                "status": s.status,
                "position": position if s.position is None else s.position,
                "closed_at": s.closed_at,
                "lost_reason": s.lost_reason,
                "expected_close": s.expected_close,
                "fields": s.fields,
                "score": 0,
                "created_at": now,
                "updated_at": now,
            }
            for s in states
        ],
    )
    links = [(i, c, now) for i, s in zip(ids, states, strict=True) for c in s.contacts]
    insert_tuples(session, DealContact.__table__, LINK_COLUMNS, links)  # type: ignore[arg-type]
    totals.add(session, (_total(s, 1) for s in states))
    visits = [(i, s.pipeline_id, s.stage_id, now) for i, s in zip(ids, states, strict=True)]
    insert_tuples(session, StageVisit.__table__, VISIT_COLUMNS, visits)  # type: ignore[arg-type]
    reach.enter_each(session, [(i, p, s) for i, p, s, _ in visits], now)
    record_rows(
        session,
        [
            deal_row(
                i,
                s.contact_id,
                DealActivity.CREATED,
                cause,
                now,
                {
                    "pipeline_id": s.pipeline_id,
                    "stage_id": s.stage_id,
                    "status": s.status,
                    "value": s.value,
                    "currency": s.currency,
                    "owner_id": s.owner_id,
                    "title": s.title,
                },
            )
            for i, s in zip(ids, states, strict=True)
        ],
    )
    scoring.refresh_scores(session, ids, now, cause=cause)
    return ids


@dataclass(slots=True)
class DealChange:
    deal: Deal
    old: DealState
    new: DealState


def update_deal(
    session: Session, deal: Deal, item: DealInput, *, now: datetime, cause: str
) -> Deal:
    """Apply a partial update to one deal (ValidationFailed names every offending field)."""
    old = state_of(session, deal)
    new = resolve(item, old, lookups_for(session, [item]), now=now)
    update_deals(session, [DealChange(deal, old, new)], now=now, cause=cause)
    session.refresh(deal)
    return deal


_PLAIN = ("title", "description", "currency", "expected_close")


def update_deals(
    session: Session, changes: Sequence[DealChange], *, now: datetime, cause: str
) -> int:
    """Write checked changes, an activity per changed aspect; returns how many deals
    changed (a change that changes nothing writes nothing)."""
    rows: list[DealRow] = []
    counted: list[totals.Change] = []
    moved: list[tuple[int, int, int]] = []
    links_added: list[tuple[int, int, datetime]] = []
    links_removed: list[tuple[int, int]] = []
    changed: list[int] = []
    for change in changes:
        activities = _activities(change, cause, now)
        deal, old, new = change.deal, change.old, change.new
        if (new.pipeline_id, new.stage_id) != (old.pipeline_id, old.stage_id):
            moved.append((deal.id, new.pipeline_id, new.stage_id))
        added = set(new.contacts) - set(old.contacts)
        links_added.extend((deal.id, c, now) for c in new.contacts if c in added)
        links_removed.extend((deal.id, c) for c in set(old.contacts) - set(new.contacts))
        if not activities and new.position == old.position:
            continue
        rows.extend(activities)
        changed.append(deal.id)
        counted.extend((_total(old, -1), _total(new, 1)))
        _assign(deal, new, now)
    session.flush()
    if links_removed:
        links = cast(Table, DealContact.__table__)
        session.execute(
            delete(links).where(
                links.c.deal_id == bindparam("d"), links.c.contact_id == bindparam("c")
            ),
            [{"d": d, "c": c} for d, c in links_removed],
        )
    insert_tuples(session, DealContact.__table__, LINK_COLUMNS, links_added)  # type: ignore[arg-type]
    _enter_stages(session, moved, now)
    totals.add(session, counted)
    record_rows(session, rows)
    if changed:
        scoring.refresh_scores(session, changed, now, cause=cause)
    return len(changed)


def _total(state: DealState | Deal, sign: int) -> totals.Change:
    """What a deal adds to (sign 1) or takes from (-1) its stage's totals."""
    return (
        state.pipeline_id,
        state.stage_id,
        state.status,
        state.currency,
        totals.close_month(state.expected_close),
        sign,
        sign * state.value,
    )


def _assign(deal: Deal, new: DealState, now: datetime) -> None:
    deal.title = new.title
    deal.description = new.description
    deal.value = new.value
    deal.currency = new.currency
    deal.contact_id = new.contact_id
    deal.owner_id = new.owner_id
    deal.pipeline_id = new.pipeline_id
    deal.stage_id = new.stage_id
    deal.status = new.status
    deal.closed_at = new.closed_at
    deal.lost_reason = new.lost_reason
    deal.expected_close = new.expected_close
    deal.fields = new.fields
    deal.position = entry_position(now) if new.position is None else new.position
    deal.updated_at = now


def _activities(change: DealChange, cause: str, now: datetime) -> list[DealRow]:
    deal_id, old, new = change.deal.id, change.old, change.new
    rows: list[DealRow] = []

    def add(type_: DealActivity, data: dict[str, Any]) -> None:
        rows.append(deal_row(deal_id, new.contact_id, type_, cause, now, data))

    if (new.pipeline_id, new.stage_id) != (old.pipeline_id, old.stage_id):
        add(
            DealActivity.STAGE_CHANGED,
            {
                "pipeline_id": new.pipeline_id,
                "from_pipeline_id": old.pipeline_id,
                "from_stage_id": old.stage_id,
                "to_stage_id": new.stage_id,
            },
        )
    if new.status != old.status:
        add(
            DealActivity.STATUS_CHANGED,
            {"old": old.status, "new": new.status, "lost_reason": new.lost_reason},
        )
    if new.owner_id != old.owner_id:
        add(DealActivity.OWNER_CHANGED, {"old": old.owner_id, "new": new.owner_id})
    if new.value != old.value:
        add(
            DealActivity.VALUE_CHANGED,
            {"old": old.value, "new": new.value, "currency": new.currency},
        )
    for name in _PLAIN:
        before, after = getattr(old, name), getattr(new, name)
        if before != after:
            add(
                DealActivity.FIELD_CHANGED,
                {"field": name, "old": _json(before), "new": _json(after)},
            )
    for key in sorted(set(old.fields) | set(new.fields)):
        if old.fields.get(key) != new.fields.get(key):
            add(
                DealActivity.FIELD_CHANGED,
                {"field": key, "old": old.fields.get(key), "new": new.fields.get(key)},
            )
    if new.contacts != old.contacts:
        add(
            DealActivity.CONTACTS_CHANGED,
            {
                "old_primary": old.contact_id,
                "new_primary": new.contact_id,
                "added": [c for c in new.contacts if c not in old.contacts],
                "removed": [c for c in old.contacts if c not in new.contacts],
            },
        )
    if new.status == old.status and new.lost_reason != old.lost_reason:
        add(
            DealActivity.FIELD_CHANGED,
            {"field": "lost_reason", "old": old.lost_reason, "new": new.lost_reason},
        )
    return rows


def _json(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _enter_stages(session: Session, moved: Sequence[tuple[int, int, int]], now: datetime) -> None:
    """Close the deals' open stage visits and open one in their new stage."""
    if not moved:
        return
    session.execute(
        update(StageVisit)
        .where(
            in_values(session, StageVisit.deal_id, [m[0] for m in moved]),
            StageVisit.left_at.is_(None),
        )
        .values(left_at=now)
        .execution_options(synchronize_session=False)
    )
    insert_tuples(
        session,
        StageVisit.__table__,  # type: ignore[arg-type]
        VISIT_COLUMNS,
        [(d, p, s, now) for d, p, s in moved],
    )
    reach.enter_each(session, moved, now)


def delete_deal(session: Session, deal: Deal, *, now: datetime, cause: str) -> None:
    """Delete a deal with its tasks, notes and links; its activities stay (history)."""
    record_rows(
        session,
        [
            deal_row(
                deal.id, deal.contact_id, DealActivity.DELETED, cause, now, {"title": deal.title}
            )
        ],
    )
    session.execute(delete(StageVisit).where(StageVisit.deal_id == deal.id))
    reach.forget_deal(session, deal.id)
    totals.add(session, [_total(deal, -1)])
    scoring.forget_deals(session, [deal.id])
    session.delete(deal)
    session.flush()
