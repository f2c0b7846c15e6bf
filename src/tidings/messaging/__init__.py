"""Email: templates, the outbox, SMTP delivery with DKIM, bounces, complaints, unsubscribe,
double opt-in and broadcasts (issue 5). New messages are queued through the outbox's one
writer: queue_many (a query of recipients), queue_each (contact and key pairs), queue_email
(one message)."""

from tidings.messaging.outbox import QueueResult, queue_each, queue_email, queue_many

__all__ = ["QueueResult", "queue_each", "queue_email", "queue_many"]
