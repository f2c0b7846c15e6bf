"""Card order within a board column: put a deal just before or just after another deal of its
column (same pipeline, stage and status).

A pure reorder: no activity, no stage visit, no trigger, no score; `updated_at` stays. Positions
are entry times in microseconds, so two neighbours are nearly always far apart and the deal
takes the midpoint (one UPDATE). Only when they are adjacent or tied (deals created in one batch
share a position) is room made: the run of crowded cards after the place (up to the first free
gap: a range of the column) is spread out over the room before the next card, once, so the
drops that follow into it take midpoints again; when that room is too small the run is shifted
by 2."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, literal, select, tuple_, update
from sqlalchemy.orm import Session, aliased

from tidings.deals.models import Deal
from tidings.errors import field_error

# The room put before the first card or after the last one (a second, in microseconds).
EDGE_GAP = 1_000_000
SHIFT = 2  # positions made free after the place when its neighbours are crowded
SPREAD = 1_000_000  # the widest spacing a crowded run is spread out to


@dataclass(frozen=True, slots=True)
class Slot:
    """A card's place in its column's order."""

    position: int
    id: int


def reposition(
    session: Session, deal: Deal, *, before_id: int | None = None, after_id: int | None = None
) -> bool:
    """Put `deal` just before `before_id` or just after `after_id` (exactly one), a deal of its
    column. False when it was there already (nothing written): a repeated drop is harmless."""
    if (before_id is None) == (after_id is None):
        raise field_error("before_id", "give before_id or after_id (one of them)")
    field = "before_id" if before_id is not None else "after_id"
    anchor_id = before_id if before_id is not None else after_id
    assert anchor_id is not None
    if anchor_id == deal.id:
        raise field_error(field, "a deal cannot be placed next to itself")
    anchor = session.get(Deal, anchor_id)
    if anchor is None:
        raise field_error(field, f"no such deal: {anchor_id}")
    column = _column(deal)
    if (anchor.pipeline_id, anchor.stage_id, anchor.status) != (
        deal.pipeline_id,
        deal.stage_id,
        deal.status,
    ):
        raise field_error(field, f"deal {anchor_id} is not in the column of deal {deal.id}")
    mark = Slot(anchor.position, anchor.id)
    if before_id is not None:
        if _neighbour(session, column, mark, earlier=True, skip=None) == deal.id:
            return False
        low = _neighbour_slot(session, column, mark, earlier=True, skip=deal.id)
        high: Slot | None = mark
    else:
        if _neighbour(session, column, mark, earlier=False, skip=None) == deal.id:
            return False
        low = mark
        high = _neighbour_slot(session, column, mark, earlier=False, skip=deal.id)
    position = _place(session, column, deal.id, low, high)
    session.execute(
        update(Deal)
        .where(Deal.id == deal.id)
        .values(position=position)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()  # the shift may have moved cards loaded in this session
    return True


def _column(deal: Deal) -> list[ColumnElement[bool]]:
    return [
        Deal.pipeline_id == deal.pipeline_id,
        Deal.status == deal.status,
        Deal.stage_id == deal.stage_id,
    ]


# Row values, not "position > p OR (position = p AND id > i)": both databases walk the board
# index from the slot with them (SQLite scans half the column for the OR).
def _after(slot: Slot) -> ColumnElement[bool]:
    return tuple_(Deal.position, Deal.id) > tuple_(literal(slot.position), literal(slot.id))


def _before(slot: Slot) -> ColumnElement[bool]:
    return tuple_(Deal.position, Deal.id) < tuple_(literal(slot.position), literal(slot.id))


def _neighbour_row(
    session: Session,
    column: list[ColumnElement[bool]],
    mark: Slot,
    *,
    earlier: bool,
    skip: int | None,
) -> tuple[int, int] | None:
    """The card next to `mark` (one step of ix_deals_board), leaving `skip` out."""
    query = select(Deal.position, Deal.id).where(
        *column, _before(mark) if earlier else _after(mark)
    )
    if skip is not None:
        query = query.where(Deal.id != skip)
    order = (Deal.position.desc(), Deal.id.desc()) if earlier else (Deal.position, Deal.id)
    row = session.execute(query.order_by(*order).limit(1)).first()
    return (int(row[0]), int(row[1])) if row is not None else None


def _neighbour(
    session: Session,
    column: list[ColumnElement[bool]],
    mark: Slot,
    *,
    earlier: bool,
    skip: int | None,
) -> int | None:
    row = _neighbour_row(session, column, mark, earlier=earlier, skip=skip)
    return row[1] if row is not None else None


def _neighbour_slot(
    session: Session, column: list[ColumnElement[bool]], mark: Slot, *, earlier: bool, skip: int
) -> Slot | None:
    row = _neighbour_row(session, column, mark, earlier=earlier, skip=skip)
    return Slot(*row) if row is not None else None


def _place(
    session: Session,
    column: list[ColumnElement[bool]],
    moving: int,
    low: Slot | None,
    high: Slot | None,
) -> int:
    """A free position strictly between `low` and `high` (either may be the column's end)."""
    if low is None:
        assert high is not None
        return high.position - EDGE_GAP
    if high is None:
        return low.position + EDGE_GAP
    if high.position - low.position >= 2:
        return (low.position + high.position) // 2
    return _make_room(session, column, moving, low)


def _make_room(session: Session, column: list[ColumnElement[bool]], moving: int, low: Slot) -> int:
    """The neighbours are adjacent or tied: take the crowded run of cards after `low` (up to
    the first position `end` with two free positions after it) and spread it out over the room
    before the next card, so the next drops into it take midpoints; a run too long for that
    room is shifted by 2 instead. Returns the moving deal's position, just after `low`."""
    other = aliased(Deal)
    end = session.scalar(
        select(Deal.position + 1)
        .where(*column, Deal.id != moving, Deal.position >= low.position)
        .where(
            ~exists().where(
                other.pipeline_id == Deal.pipeline_id,
                other.status == Deal.status,
                other.stage_id == Deal.stage_id,
                other.id != moving,
                other.position > Deal.position,
                other.position <= Deal.position + SHIFT,
            )
        )
        .order_by(Deal.position)
        .limit(1)
    )
    assert end is not None  # `low` itself, or the last card, qualifies
    crowded = [*column, Deal.id != moving, _after(low), Deal.position < end]
    run = list(session.scalars(select(Deal.id).where(*crowded).order_by(Deal.position, Deal.id)))
    limit = session.scalar(
        select(Deal.position)
        .where(*column, Deal.id != moving, Deal.position >= end)
        .order_by(Deal.position)
        .limit(1)
    )
    room = SPREAD if limit is None else (limit - low.position) // (len(run) + 2)
    spacing = min(SPREAD, room)
    if spacing >= 2:
        session.execute(
            update(Deal),
            [{"id": i, "position": low.position + spacing * (n + 2)} for n, i in enumerate(run)],
        )
        return low.position + spacing
    session.execute(
        update(Deal)
        .where(*crowded)
        .values(position=Deal.position + SHIFT)
        .execution_options(synchronize_session=False)
    )
    return low.position + 1
