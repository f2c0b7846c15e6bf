"""Naming pipelines, stages and users by id or by name in SQL: what automation conditions
and deal actions compare deals with. A name compares case-insensitively (a pipeline's name, a
stage's title — in whatever pipeline the deal is in — a user's email)."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select

from tidings.deals.models import Deal, Pipeline, Stage, User

Ref = int | str


def pipeline_is(ref: Ref) -> ColumnElement[bool]:
    if isinstance(ref, int):
        return Deal.pipeline_id == ref
    named = select(Pipeline.id).where(func.lower(Pipeline.name) == ref.strip().lower())
    return Deal.pipeline_id.in_(named)


def stage_is(ref: Ref) -> ColumnElement[bool]:
    if isinstance(ref, int):
        return Deal.stage_id == ref
    named = select(Stage.id).where(func.lower(Stage.title) == ref.strip().lower())
    return Deal.stage_id.in_(named)


def owner_is(ref: Ref) -> ColumnElement[bool]:
    if isinstance(ref, int):
        return Deal.owner_id == ref
    named = select(User.id).where(User.email == ref.strip().lower())
    return Deal.owner_id.in_(named)
