"""Email: templates, the outbox, SMTP delivery with DKIM, bounces, complaints, unsubscribe,
double opt-in and broadcasts (issue 5)."""

from tidings.messaging.outbox import QueueResult, queue_email

__all__ = ["QueueResult", "queue_email"]
