"""Which activity types a subscription can choose, natively and in ActiveCampaign's names."""

from __future__ import annotations

import re

from tidings.activities.service import ActivityType
from tidings.deals.timeline import ContactWorkActivity, DealActivity
from tidings.events.validation import BUILTIN_TYPES as EVENT_TYPES
from tidings.messaging.outbox import EmailActivity

# Every activity type a native subscription may name ("custom:<name>" events too).
NATIVE_EVENTS = frozenset(
    {t.value for t in ActivityType}
    | {t.value for t in DealActivity}
    | {t.value for t in ContactWorkActivity}
    | {t.value for t in EmailActivity}
    | set(EVENT_TYPES)
)
CUSTOM_EVENT = re.compile(r"custom:[A-Za-z0-9_.\-]{1,56}")

# ActiveCampaign's webhook events -> the activity types that deliver them.
AC_EVENTS: dict[str, tuple[str, ...]] = {
    "subscribe": ("list_subscribed",),
    "unsubscribe": ("list_unsubscribed",),
    "update": ("field_changed", "contact_updated"),
    "contact_tag_added": ("tag_added",),
    "contact_tag_removed": ("tag_removed",),
    "bounce": ("email_bounced",),
    "open": ("email_opened",),
    "click": ("link_clicked",),
    "sent": ("email_sent",),
    "subscriber_note": ("note_added",),
    "contact_task_add": ("task_created",),
    "deal_add": ("deal_created",),
    "deal_update": (
        "deal_stage_changed",
        "deal_status_changed",
        "deal_owner_changed",
        "deal_value_changed",
        "deal_field_changed",
    ),
    "deal_note_add": ("deal_note_added",),
    "deal_task_add": ("deal_task_created",),
    "deal_task_complete": ("deal_task_completed",),
}
AC_EVENT_OF = {activity: event for event, types in AC_EVENTS.items() for activity in types}
# ActiveCampaign's sources -> the causes of Tidings activities.
AC_SOURCES = {
    "public": ("tracking",),
    "admin": ("admin", "import"),
    "api": ("api",),
    "system": ("automation", "system"),
}
# deal_update's updated_fields, by activity type.
UPDATED_FIELD = {
    "deal_stage_changed": "stage",
    "deal_status_changed": "status",
    "deal_owner_changed": "owner",
    "deal_value_changed": "value",
    "deal_field_changed": "fields",
}


def is_native_event(name: str) -> bool:
    return name in NATIVE_EVENTS or CUSTOM_EVENT.fullmatch(name) is not None


def activity_types(format_: str, events: list[str]) -> set[str]:
    """The activity types a subscription listens to."""
    if format_ == "activecampaign":
        return {t for e in events for t in AC_EVENTS.get(e, ())}
    return set(events)
