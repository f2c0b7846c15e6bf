"""What a delivery carries, built when the activity is dispatched.

- Native ("json"): `{"id", "type", "occurred_at", "cause", "contact": {...}, "deal": {...},
  "data": {...}}`, sent as JSON and signed (see deliver.py).
- ActiveCampaign ("activecampaign"): the flat PHP-style form fields ActiveCampaign posts:
  `type`, `date_time`, `initiated_from`, `initiated_by`, `list`, `contact[id]`,
  `contact[email]`, `contact[first_name]`, `contact[tags]`, `contact[fields][key]`, `tag`,
  `deal[id]`, `deal[stageid]`, `deal[pipelineid]`, `deal[value]`, `updated_fields[0]`, ...
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tidings.contacts import repository as contacts_repository
from tidings.contacts.models import Contact
from tidings.deals.models import Deal, Pipeline, Stage, User
from tidings.webhooks.events import AC_EVENT_OF, UPDATED_FIELD

DEAL_STATUS = {"open": "0", "won": "1", "lost": "2"}
INITIATED = {"tracking": "public", "admin": "admin", "import": "admin", "api": "api"}


def _contact(session: Session, contact_id: int | None) -> dict[str, Any] | None:
    if contact_id is None:
        return None
    row = session.get(Contact, contact_id)
    if row is None:
        return {"id": contact_id}
    return {
        "id": row.id,
        "email": row.email,
        "first_name": row.first_name,
        "last_name": row.last_name,
        "phone": row.phone,
        "status": row.status,
        "score": row.score,
        "fields": row.fields or {},
        "tags": contacts_repository.tag_names(session, row.id),
    }


def _deal(session: Session, deal_id: int | None) -> dict[str, Any] | None:
    if deal_id is None:
        return None
    row = session.get(Deal, deal_id)
    if row is None:
        return {"id": deal_id}
    stage = session.get(Stage, row.stage_id)
    pipeline = session.get(Pipeline, row.pipeline_id)
    owner = session.get(User, row.owner_id) if row.owner_id is not None else None
    return {
        "id": row.id,
        "title": row.title,
        "value": row.value,
        "currency": row.currency,
        "status": row.status,
        "pipeline_id": row.pipeline_id,
        "pipeline": pipeline.name if pipeline else None,
        "stage_id": row.stage_id,
        "stage": stage.title if stage else None,
        "owner_id": row.owner_id,
        "owner": owner.name if owner else None,
        "contact_id": row.contact_id,
        "score": row.score,
        "created_at": row.created_at.isoformat(),
    }


def native(session: Session, activity: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": activity.id,
        "type": activity.type,
        "occurred_at": activity.occurred_at.isoformat(),
        "cause": activity.cause,
        "contact": _contact(session, activity.contact_id),
        "data": activity.data or {},
    }
    if activity.deal_id is not None:
        body["deal"] = _deal(session, activity.deal_id)
    return body


def _flat(prefix: str, values: dict[str, Any], into: dict[str, str]) -> None:
    for key, value in values.items():
        name = f"{prefix}[{key}]"
        if isinstance(value, dict):
            _flat(name, value, into)
        elif isinstance(value, list):
            into[name] = ", ".join(str(v) for v in value)
        elif value is not None:
            into[name] = str(value).lower() if isinstance(value, bool) else str(value)
        else:
            into[name] = ""


def activecampaign(session: Session, activity: Any) -> dict[str, str]:
    """The form fields, in ActiveCampaign's names, of one activity."""
    data = activity.data or {}
    form: dict[str, str] = {
        "type": AC_EVENT_OF.get(activity.type, activity.type),
        "date_time": activity.occurred_at.isoformat(),
        "initiated_from": INITIATED.get(activity.cause, "system"),
        "initiated_by": INITIATED.get(activity.cause, "system"),
    }
    contact = _contact(session, activity.contact_id)
    if contact is not None:
        _flat("contact", contact, form)
    if "list_id" in data:
        form["list"] = str(data["list_id"])
    if "tag" in data:
        form["tag"] = str(data["tag"])
    if activity.deal_id is not None:
        deal = _deal(session, activity.deal_id) or {}
        owner = (deal.get("owner") or "").partition(" ")
        _flat(
            "deal",
            {
                "id": deal.get("id"),
                "title": deal.get("title"),
                "create_date": deal.get("created_at"),
                "orgid": 0,
                "stageid": deal.get("stage_id"),
                "stage_title": deal.get("stage"),
                "pipelineid": deal.get("pipeline_id"),
                "pipeline_title": deal.get("pipeline"),
                "value": deal.get("value"),
                "value_raw": (deal.get("value") or 0) / 100,
                "currency": (deal.get("currency") or "").lower(),
                "status": DEAL_STATUS.get(deal.get("status") or "", "0"),
                "owner": deal.get("owner_id"),
                "owner_firstname": owner[0],
                "owner_lastname": owner[2],
                "contactid": deal.get("contact_id"),
                "contact_email": (contact or {}).get("email"),
                "contact_firstname": (contact or {}).get("first_name"),
                "contact_lastname": (contact or {}).get("last_name"),
            },
            form,
        )
        if activity.type in UPDATED_FIELD:
            form["updated_fields[0]"] = UPDATED_FIELD[activity.type]
    if "task_id" in data:
        form["task[id]"] = str(data["task_id"])
        form["task[type_title]"] = str(data.get("task_type", ""))
    if "note_id" in data:
        form["note[id]"] = str(data["note_id"])
    return form
