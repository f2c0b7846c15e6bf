"""Built-in automation templates (`tidings templates install NAME`)."""

from tidings.automations.templates.engagement import (
    ENGAGEMENT_EVENTS,
    EngagementPeriods,
    engagement_definitions,
    install_engagement_tagging,
)

TEMPLATES = ("engagement-tagging",)

__all__ = [
    "ENGAGEMENT_EVENTS",
    "TEMPLATES",
    "EngagementPeriods",
    "engagement_definitions",
    "install_engagement_tagging",
]
