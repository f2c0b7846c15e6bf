"""The deals package's REST routers, gathered in `router`."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import ColumnElement, select

from tidings.activities.models import Activity
from tidings.deals.api import deals, emails, pipelines, reports, scoring, users, work
from tidings.deals.models import DealContact
from tidings.events.api import timeline_extensions

router = APIRouter()
for module in (users, pipelines, deals, emails, work, scoring, reports):
    router.include_router(module.router)


def _deal_activities(contact_id: int) -> ColumnElement[bool]:
    """A contact's timeline shows the activities of every deal it is a contact of (those of
    deals where it is the primary contact already carry its id)."""
    return Activity.deal_id.in_(
        select(DealContact.deal_id).where(DealContact.contact_id == contact_id)
    )


if _deal_activities not in timeline_extensions:
    timeline_extensions.append(_deal_activities)
