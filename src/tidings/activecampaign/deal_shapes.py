"""Deals CRM rows as ActiveCampaign represents them: value in cents, lower-case currency,
status 0 open / 1 won / 2 lost, group = pipeline, stage, owner = user."""

from __future__ import annotations

from typing import Any

from tidings.activecampaign.envelopes import ac_id, ac_time
from tidings.activecampaign.shapes import links
from tidings.automations.models import Enrolment
from tidings.deals.models import Deal, Note, Pipeline, Stage, Task, TaskType, User

DEAL_STATUS = {"open": "0", "won": "1", "lost": "2"}
STATUS_OF = {v: k for k, v in DEAL_STATUS.items()}


def deal(row: Deal) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "title": row.title,
        "description": row.description or "",
        "value": str(row.value),
        "currency": row.currency.lower(),
        "contact": ac_id(row.contact_id),
        "owner": ac_id(row.owner_id),
        "group": ac_id(row.pipeline_id),
        "stage": ac_id(row.stage_id),
        "status": DEAL_STATUS.get(row.status, "0"),
        "percent": "0",
        "score": str(row.score),
        "cdate": ac_time(row.created_at),
        "mdate": ac_time(row.updated_at),
        "edate": ac_time(row.closed_at),
        "nextdate": None,
        "nextid": None,
        "winProbability": None,
        "isDisabled": False,
        "account": None,
        "organization": None,
        "hash": "",
        "links": links("deals", row.id, "notes", "dealActivities", "contact", "stage", "group"),
    }


def pipeline(row: Pipeline, stage_ids: list[int]) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "title": row.name,
        "currency": row.currency.lower(),
        "allgroups": "1",
        "allusers": "1",
        "autoassign": "0",
        "cdate": ac_time(row.created_at),
        "udate": ac_time(row.updated_at),
        "stages": [str(s) for s in stage_ids],
        "links": links("dealGroups", row.id, "stages", "dealGroupUsers"),
    }


def stage(row: Stage) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "title": row.title,
        "group": ac_id(row.pipeline_id),
        "order": str(row.position + 1),
        "color": row.colour.lstrip("#").upper(),
        "probability": str(row.probability),
        "width": "280",
        "cardRegion1": "title",
        "cardRegion2": "next-action",
        "cardRegion3": "show-avatar",
        "cardRegion4": "contact-fullname-orgname",
        "cardRegion5": "value",
        "dealOrder": "next-action DESC",
        "cdate": ac_time(row.created_at),
        "udate": ac_time(row.updated_at),
        "links": links("dealStages", row.id, "group"),
    }


def task(row: Task, type_ids: dict[str, int]) -> dict[str, Any]:
    on_deal = row.deal_id is not None
    return {
        "id": ac_id(row.id),
        "title": row.title,
        "note": row.note or "",
        "relid": ac_id(row.deal_id if on_deal else row.contact_id),
        "reltype": "Deal" if on_deal else "Subscriber",
        "ownerType": "Deal" if on_deal else "Contact",
        "status": "1" if row.done_at is not None else "0",
        "duedate": ac_time(row.due_at),
        "edate": ac_time(row.due_at),
        "dealTasktype": ac_id(type_ids.get(row.type)),
        "assignee": ac_id(row.assignee_id),
        "cdate": ac_time(row.created_at),
        "udate": ac_time(row.updated_at),
        "done": 1 if row.done_at is not None else 0,
        "links": links("dealTasks", row.id, "activities", "taskType", "assignee"),
    }


def task_type(row: TaskType) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "title": row.name,
        "status": "0",
        "cdate": ac_time(row.created_at),
        "links": {},
    }


def note(row: Note) -> dict[str, Any]:
    on_deal = row.deal_id is not None
    return {
        "id": ac_id(row.id),
        "note": row.body,
        "relid": ac_id(row.deal_id if on_deal else row.contact_id),
        "reltype": "Deal" if on_deal else "Subscriber",
        "userid": ac_id(row.author_id),
        "cdate": ac_time(row.created_at),
        "mdate": ac_time(row.updated_at),
        "links": links("notes", row.id, "activities", "owner", "user"),
    }


def user(row: User) -> dict[str, Any]:
    first, _, last = row.name.partition(" ")
    return {
        "id": ac_id(row.id),
        "username": row.email,
        "email": row.email,
        "firstName": first,
        "lastName": last,
        "phone": "",
        "signature": None,
        "lang": "english",
        "localZoneid": "UTC",
        "mfaEnabled": "0",
        "role": row.role,
        "active": "1" if row.active else "0",
        "cdate": ac_time(row.created_at),
        "udate": ac_time(row.updated_at),
        "links": links("users", row.id, "lists", "userGroup", "dealGroupTotals"),
    }


def contact_automation(row: Enrolment, total_steps: int = 0) -> dict[str, Any]:
    active = row.state == "active"
    completed = row.state == "completed"
    return {
        "id": ac_id(row.id),
        "contact": ac_id(row.contact_id),
        "automation": ac_id(row.automation_id),
        "seriesid": ac_id(row.automation_id),
        "startid": "0",
        "status": "1" if active else "2",
        "batchid": None,
        "adddate": ac_time(row.entered_at),
        "remdate": ac_time(row.ended_at),
        "timespan": None,
        "lastblock": row.step or "",
        "lastlogid": "0",
        "lastdate": ac_time(row.ended_at or row.wake_at or row.entered_at),
        "completedElements": "0",
        "totalElements": str(total_steps),
        "completed": 1 if completed else 0,
        "completeValue": 100 if completed else 0,
        "state": row.state,  # Tidings' run state: an addition
        "links": links("contactAutomations", row.id, "automation", "contact", "contactGoals"),
    }
