"""Imports every model so Base.metadata knows all tables (for Alembic and tests)."""

from tidings.activities.models import Activity
from tidings.auth.models import ApiKey
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

__all__ = [
    "Activity",
    "ApiKey",
    "Base",
    "Contact",
    "ContactTag",
    "CustomField",
    "ListMembership",
    "MailingList",
    "Suppression",
    "Tag",
]
