"""/api/3 webhooks (+ webhooks/events, webhook/events): subscriptions delivered as
ActiveCampaign delivers them (form-encoded, PHP-style keys; tidings.webhooks)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from tidings.activecampaign.bodies import ACModel, OptionalId
from tidings.activecampaign.deps import SessionDep
from tidings.activecampaign.envelopes import ac_id, ac_time, meta
from tidings.activecampaign.errors import ac_json
from tidings.api.deps import ClockDep
from tidings.api.schemas import Id
from tidings.errors import NotFound
from tidings.webhooks import service
from tidings.webhooks.events import AC_EVENTS
from tidings.webhooks.models import WebhookSubscription

router = APIRouter()
FORMAT = "activecampaign"


class WebhookFields(ACModel):
    name: str | None = Field(default=None, max_length=200)
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = Field(default=None, max_length=service.MAX_EVENTS)
    sources: list[str] | None = Field(default=None, max_length=10)
    listid: OptionalId = None


class WebhookBody(ACModel):
    webhook: WebhookFields


def webhook(row: WebhookSubscription) -> dict[str, Any]:
    return {
        "id": ac_id(row.id),
        "name": row.name,
        "url": row.url,
        "events": row.events,
        "sources": row.sources,
        "listid": str(row.list_id or 0),
        "state": "1" if row.active else "0",
        "cdate": ac_time(row.created_at),
        "disabled_reason": row.disabled_reason,
        "links": [],
    }


def _input(given: WebhookFields) -> service.SubscriptionInput:
    item = service.SubscriptionInput()
    for name in ("name", "url", "events", "sources"):
        if name in given.model_fields_set:
            setattr(item, name, getattr(given, name))
            item.given.add(name)
    if "listid" in given.model_fields_set:
        item.list_id = given.listid or None
        item.given.add("list_id")
    return item


def _row(session: Any, webhook_id: int) -> WebhookSubscription:
    try:
        return service.get_subscription(session, webhook_id, FORMAT)
    except NotFound:
        raise NotFound(f"No Result found for Webhook with id {webhook_id}") from None


@router.post("/webhooks")
def create_webhook(body: WebhookBody, session: SessionDep, clock: ClockDep) -> JSONResponse:
    row = service.create_subscription(
        session, _input(body.webhook), format_=FORMAT, now=clock.now()
    )
    return ac_json({"webhook": webhook(row)}, 201)


def _events() -> JSONResponse:
    names = sorted(AC_EVENTS)
    return ac_json({"webhookEvents": names, "meta": meta(len(names))})


@router.get("/webhooks/events")
def webhook_events() -> JSONResponse:
    return _events()


@router.get("/webhook/events")
def webhook_events_singular() -> JSONResponse:
    return _events()


@router.get("/webhooks/{webhook_id}")
def get_webhook(webhook_id: Id, session: SessionDep) -> JSONResponse:
    return ac_json({"webhook": webhook(_row(session, webhook_id))})


@router.put("/webhooks/{webhook_id}")
def update_webhook(
    webhook_id: Id, body: WebhookBody, session: SessionDep, clock: ClockDep
) -> JSONResponse:
    row = service.update_subscription(
        session, _row(session, webhook_id), _input(body.webhook), now=clock.now()
    )
    return ac_json({"webhook": webhook(row)})


@router.delete("/webhooks/{webhook_id}")
def delete_webhook(webhook_id: Id, session: SessionDep) -> JSONResponse:
    service.delete_subscription(session, _row(session, webhook_id))
    return ac_json({})


@router.get("/webhooks")
def list_webhooks(request: Request, session: SessionDep) -> JSONResponse:
    rows = list(service.list_subscriptions(session, FORMAT))
    params = request.query_params
    name, url = params.get("filters[name]"), params.get("filters[url]")
    rows = [r for r in rows if (not name or name in r.name) and (not url or url in r.url)]
    return ac_json({"webhooks": [webhook(r) for r in rows], "meta": meta(len(rows))})
