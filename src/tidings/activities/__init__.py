"""The append-only activity log: every change of a contact (and later of deals) writes a row.

Automations start from these rows; a contact's history is read from them.
"""

from tidings.activities.models import Activity
from tidings.activities.service import ActivityRow, Cause, record, record_many

__all__ = ["Activity", "ActivityRow", "Cause", "record", "record_many"]
