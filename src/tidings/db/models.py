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
    ContactStatusCount,
    ContactTag,
    CustomField,
    ListMembership,
    MailingList,
    Suppression,
    Tag,
)
from tidings.coupons.models import CouponCode, CouponPool
from tidings.db.base import Base
from tidings.deals.models import (
    Deal,
    DealContact,
    DealEmail,
    DealEmailReply,
    DealField,
    Note,
    Pipeline,
    ScoreMatch,
    ScoringRule,
    Stage,
    StageReach,
    StageVisit,
    Task,
    TaskType,
    User,
)
from tidings.events.models import EventDaily
from tidings.jobs.models import HygieneAudit, ImportedFile, JobRun
from tidings.messaging.models import Broadcast, EmailTemplate, OutboxMessage
from tidings.segments.models import Segment
from tidings.system.models import SystemRun, SystemTick
from tidings.web.models import LoginAttempt, UserSession
from tidings.webhooks.models import WebhookDelivery, WebhookState, WebhookSubscription

__all__ = [
    "Activity",
    "ApiKey",
    "Automation",
    "AutomationVersion",
    "Base",
    "Broadcast",
    "Contact",
    "ContactStatusCount",
    "ContactTag",
    "CouponCode",
    "CouponPool",
    "CustomField",
    "Deal",
    "DealContact",
    "DealEmail",
    "DealEmailReply",
    "DealField",
    "Effect",
    "EmailTemplate",
    "EngineState",
    "Enrolment",
    "EventDaily",
    "HygieneAudit",
    "ImportedFile",
    "JobRun",
    "ListMembership",
    "LoginAttempt",
    "MailingList",
    "Note",
    "OutboxMessage",
    "Pipeline",
    "ScoreMatch",
    "ScoringRule",
    "Segment",
    "SigningKey",
    "Stage",
    "StageReach",
    "StageVisit",
    "StepCount",
    "StepLog",
    "Suppression",
    "SystemRun",
    "SystemTick",
    "Tag",
    "Task",
    "TaskType",
    "User",
    "UserSession",
    "WebhookDelivery",
    "WebhookState",
    "WebhookSubscription",
]
