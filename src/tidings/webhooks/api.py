"""REST: /webhooks — subscriptions delivered as signed JSON (see tidings.webhooks.deliver)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from tidings.api.deps import ClockDep, SessionDep
from tidings.api.schemas import Id, InputModel
from tidings.webhooks import service
from tidings.webhooks.events import NATIVE_EVENTS
from tidings.webhooks.models import WebhookSubscription

router = APIRouter(tags=["webhooks"])


class WebhookIn(InputModel):
    url: str = Field(max_length=2000, description="http(s) URL that receives the POSTs")
    events: list[str] = Field(
        min_length=1, max_length=service.MAX_EVENTS, description="activity types, e.g. tag_added"
    )
    name: str | None = Field(default=None, max_length=200)
    active: bool = True


class WebhookPatch(InputModel):
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=service.MAX_EVENTS)
    name: str | None = Field(default=None, max_length=200)
    active: bool | None = Field(default=None, description="true again clears the failures")


class WebhookOut(BaseModel):
    id: int
    name: str
    url: str
    events: list[str]
    active: bool
    failures: int
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = Field(
        default=None, description="the signing secret: shown when created, keep it"
    )


class DeliveryOut(BaseModel):
    id: int
    activity_id: int
    event: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime


def _out(row: WebhookSubscription, *, secret: bool = False) -> WebhookOut:
    return WebhookOut(
        id=row.id,
        name=row.name,
        url=row.url,
        events=row.events,
        active=row.active,
        failures=row.failures,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
        secret=row.secret if secret else None,
    )


def _input(body: WebhookIn | WebhookPatch) -> service.SubscriptionInput:
    given = set(body.model_fields_set) | ({"active"} if isinstance(body, WebhookIn) else set())
    values: dict[str, Any] = {name: getattr(body, name) for name in given}
    return service.SubscriptionInput(given=given, **values)


@router.get("/webhooks/events")
def webhook_events() -> dict[str, list[str]]:
    """The activity types a subscription can choose (and `custom:<name>` events)."""
    return {"events": sorted(NATIVE_EVENTS)}


@router.post("/webhooks", status_code=201)
def create_webhook(body: WebhookIn, session: SessionDep, clock: ClockDep) -> WebhookOut:
    row = service.create_subscription(session, _input(body), format_="json", now=clock.now())
    return _out(row, secret=True)


@router.get("/webhooks")
def list_webhooks(session: SessionDep) -> list[WebhookOut]:
    return [_out(r) for r in service.list_subscriptions(session, "json")]


@router.get("/webhooks/{webhook_id}")
def get_webhook(webhook_id: Id, session: SessionDep) -> WebhookOut:
    return _out(service.get_subscription(session, webhook_id, "json"))


@router.patch("/webhooks/{webhook_id}")
def update_webhook(
    webhook_id: Id, body: WebhookPatch, session: SessionDep, clock: ClockDep
) -> WebhookOut:
    row = service.get_subscription(session, webhook_id, "json")
    return _out(service.update_subscription(session, row, _input(body), now=clock.now()))


@router.delete("/webhooks/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: Id, session: SessionDep) -> Response:
    service.delete_subscription(session, service.get_subscription(session, webhook_id, "json"))
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries")
def webhook_deliveries(webhook_id: Id, session: SessionDep) -> list[DeliveryOut]:
    """The latest 50 deliveries, newest first."""
    service.get_subscription(session, webhook_id, "json")
    return [
        DeliveryOut.model_validate(d, from_attributes=True)
        for d in service.recent_deliveries(session, webhook_id)
    ]
