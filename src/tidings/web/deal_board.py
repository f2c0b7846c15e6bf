"""Reads for the deals board: a column per stage with its count and value, and its first
cards with their contact, owner and next open task. Every query is as small as the board."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from tidings.contacts.models import Contact
from tidings.deals import pipelines, reports
from tidings.deals.models import Deal, Task, User

CARDS = 50  # cards shown per column; the count and value cover every deal of the stage


def columns(session: Session, pipeline_id: int, owner_id: int | None) -> list[dict[str, Any]]:
    """The open deals' board; with an owner, only that owner's deals (counted here, since
    the stage totals are kept per stage, not per owner)."""
    if owner_id is None:
        return list(reports.board(session, pipeline_id, cards=CARDS)["stages"])
    stages = pipelines.stages_of(session, pipeline_id)
    mine = (Deal.pipeline_id == pipeline_id, Deal.status == "open", Deal.owner_id == owner_id)
    money: dict[int, reports.Money] = defaultdict(reports.Money)
    sums = (
        select(Deal.stage_id, Deal.currency, func.count(), func.coalesce(func.sum(Deal.value), 0))
        .where(*mine)
        .group_by(Deal.stage_id, Deal.currency)
    )
    for stage_id, currency, count, total in session.execute(sums):
        money[stage_id].add(currency, int(count), int(total))
    by_stage: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if stages:
        firsts = [
            select(*reports.CARD_COLUMNS)
            .where(*mine, Deal.stage_id == s.id)
            .order_by(Deal.position, Deal.id)
            .limit(CARDS)
            .subquery()
            for s in stages
        ]
        for row in session.execute(union_all(*(select(first) for first in firsts))):
            card = dict(zip(reports.CARD_KEYS, row, strict=True))
            by_stage[card.pop("stage_id")].append(card)
    return [
        {
            "stage": {"id": s.id, "title": s.title, "colour": s.colour},
            **money[s.id].out(),
            "cards": by_stage[s.id],
        }
        for s in stages
    ]


def contact_names(session: Session, ids: Sequence[int]) -> dict[int, str]:
    rows = session.execute(
        select(Contact.id, Contact.email, Contact.first_name, Contact.last_name).where(
            Contact.id.in_(ids)
        )
    )
    return {i: " ".join(p for p in (first, last) if p) or email for i, email, first, last in rows}


def user_names(session: Session) -> dict[int, str]:
    return {i: n for i, n in session.execute(select(User.id, User.name).order_by(User.name))}


def next_tasks(session: Session, deal_ids: Sequence[int]) -> dict[int, Task]:
    """Each deal's open task due first (an undated task comes after the dated ones)."""
    found: dict[int, Task] = {}
    tasks = session.scalars(
        select(Task)
        .where(Task.deal_id.in_(deal_ids), Task.done_at.is_(None))
        .order_by(Task.due_at.is_(None), Task.due_at, Task.id)
    )
    for task in tasks:
        if task.deal_id is not None:
            found.setdefault(task.deal_id, task)
    return found


def decorate(session: Session, cols: list[dict[str, Any]], now: datetime) -> None:
    """Put on every card its contact's and owner's names and its next task (overdue or not)."""
    cards = [card for col in cols for card in col["cards"]]
    contacts = contact_names(session, [c["contact_id"] for c in cards if c["contact_id"]])
    owners = user_names(session)
    tasks = next_tasks(session, [c["id"] for c in cards])
    for card in cards:
        task = tasks.get(card["id"])
        card["contact"] = contacts.get(card["contact_id"] or 0, "")
        card["owner"] = owners.get(card["owner_id"] or 0, "")
        card["task"] = task
        card["overdue"] = bool(task and task.due_at and task.due_at < now)
