"""Tidings rows as ActiveCampaign represents them (ids as strings, ISO times, its names)."""

from __future__ import annotations

from typing import Any

from tidings.activecampaign.envelopes import ac_id, ac_time, pair
from tidings.contacts.models import Contact, CustomField, MailingList, Tag

# Tidings list membership status <-> ActiveCampaign's contactList status.
LIST_STATUS = {"pending": "0", "active": "1", "unsubscribed": "2"}
FIELD_TYPES = {
    "text": "text",
    "number": "text",
    "date": "date",
    "boolean": "checkbox",
    "single_choice": "dropdown",
    "multi_choice": "listbox",
}


def links(kind: str, id_: int, *names: str) -> dict[str, str]:
    return {name: f"/api/3/{kind}/{id_}/{name}" for name in names}


def contact(row: Contact) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "email": row.email,
        "firstName": row.first_name or "",
        "lastName": row.last_name or "",
        "phone": row.phone or "",
        "cdate": ac_time(row.created_at),
        "udate": ac_time(row.updated_at),
        "created_timestamp": ac_time(row.created_at),
        "updated_timestamp": ac_time(row.updated_at),
        "orgid": "0",
        "deleted": "0",
        "anonymized": "0",
        "bounced_hard": "1" if row.status == "bounced" else "0",
        "bounced_soft": "0",
        "sentcnt": "0",
        "email_local": row.email.partition("@")[0],
        "email_domain": row.email.partition("@")[2],
        "last_open_date": ac_time(row.last_open_at),
        "last_click_date": ac_time(row.last_click_at),
        "status": row.status,  # Tidings' contact status (C1): an addition to ActiveCampaign's
        "score": str(row.score),
        "scoreValues": [],
        "links": links(
            "contacts",
            row.id,
            "contactAutomations",
            "contactLists",
            "contactTags",
            "deals",
            "fieldValues",
            "notes",
        ),
        "organization": None,
    }


def tag(row: Tag, count: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": ac_id(row.id),
        "tag": row.name,
        "tagType": "contact",
        "description": row.description or "",
        "cdate": ac_time(row.created_at),
        "links": {"contactGoalTags": f"/api/3/tags/{row.id}/contactGoalTags"},
    }
    if count is not None:
        out["subscriber_count"] = str(count)
    return out


def contact_tag(contact_id: int, tag_id: int, created_at: Any) -> dict[str, Any]:
    return {
        "id": ac_id(pair(contact_id, tag_id)),
        "contact": ac_id(contact_id),
        "tag": ac_id(tag_id),
        "cdate": ac_time(created_at),
        "created_timestamp": ac_time(created_at),
        "links": {
            "contact": f"/api/3/contactTags/{pair(contact_id, tag_id)}/contact",
            "tag": f"/api/3/contactTags/{pair(contact_id, tag_id)}/tag",
        },
    }


def mailing_list(row: MailingList) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "name": row.name,
        "stringid": row.name.lower().replace(" ", "-"),
        "description": row.description or "",
        "double_optin": "1" if row.double_opt_in else "0",
        "cdate": ac_time(row.created_at),
        "sender_url": "",
        "sender_reminder": "",
        "links": links("lists", row.id, "contactGoalLists", "user", "addressLists"),
    }


def contact_list(
    contact_id: int, list_id: int, status: str, created_at: Any, updated_at: Any
) -> dict[str, Any]:
    unsubscribed = status == "unsubscribed"
    return {
        "id": ac_id(pair(contact_id, list_id)),
        "contact": ac_id(contact_id),
        "list": ac_id(list_id),
        "status": LIST_STATUS.get(status, "1"),
        "sdate": ac_time(created_at),
        "udate": ac_time(updated_at),
        "unsubreason": "",
        "unsubscribeAutomation": None,
        "unsubdate": ac_time(updated_at) if unsubscribed else None,
        "links": {},
    }


def field(row: CustomField, position: int = 0) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "title": row.label,
        "descript": "",
        "type": FIELD_TYPES.get(row.type, "text"),
        "perstag": row.key.upper(),
        "isrequired": "0",
        "visible": "1",
        "ordernum": str(position),
        "defval": "",
        "options": [
            field_option(row.id, index, label) for index, label in enumerate(row.options or [])
        ],
        "cdate": ac_time(row.created_at),
        "udate": ac_time(row.created_at),
        "tidings_type": row.type,
        "links": links("fields", row.id, "options", "relations"),
    }


def field_option(field_id: int, index: int, label: str) -> dict[str, Any]:
    return {
        "id": ac_id(pair(field_id, index + 1)),
        "field": ac_id(field_id),
        "orderid": str(index + 1),
        "value": label,
        "label": label,
        "isdefault": "0",
    }


def field_text(value: Any) -> str:
    """A stored field value as ActiveCampaign writes values: text, lists as `||a||b||`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list):
        return "||" + "||".join(str(v) for v in value) + "||" if value else ""
    return str(value)


def field_value(
    contact_id: int, field_id: int, value: Any, contact_row: Contact | None
) -> dict[str, Any]:
    stamp = ac_time(contact_row.updated_at) if contact_row is not None else None
    return {
        "id": ac_id(pair(contact_id, field_id)),
        "contact": ac_id(contact_id),
        "field": ac_id(field_id),
        "value": field_text(value),
        "cdate": stamp,
        "udate": stamp,
        "links": {},
        "owner": ac_id(contact_id),
    }
