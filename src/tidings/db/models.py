"""Imports every model so Base.metadata knows all tables (for Alembic and tests)."""

from tidings.activities.models import Activity
from tidings.auth.models import ApiKey, SigningKey
from tidings.automations.models import (
    Automation,
    AutomationVersion,
    Effect,
    EngineState,
    Enrolment,
    StepCount,
    StepLog,
)
from tidings.contacts.models import (
    Contact,
    ContactTag,
    CustomField,
    ListMembership,
    MailingList,
    Suppression,
    Tag,
)
from tidings.db.base import Base
from tidings.events.models import EventDaily
from tidings.messaging.models import Broadcast, EmailTemplate, OutboxMessage
from tidings.segments.models import Segment

__all__ = [
    "Activity",
    "ApiKey",
    "Automation",
    "AutomationVersion",
    "Base",
    "Broadcast",
    "Contact",
    "ContactTag",
    "CustomField",
    "Effect",
    "EmailTemplate",
    "EngineState",
    "Enrolment",
    "EventDaily",
    "ListMembership",
    "MailingList",
    "OutboxMessage",
    "Segment",
    "SigningKey",
    "StepCount",
    "StepLog",
    "Suppression",
    "Tag",
]
