"""Licensing's scheduled jobs (R5, R11, R12), by concern:

- licensing.expiry: the nightly expiry (00:05 Asia/Shanghai);
- licensing.reminders: which renewal reminders are due, their claims and their sending
  (09:00 Asia/Shanghai, and the expiry-date notices the expiry job hands over);
- licensing.reminder_content: what a reminder email says.

This module keeps the names the commands, tasks and scripts have imported from here.
"""

from licensing.expiry import (
    EXPIRED_ACTION,
    EXPIRY_BATCH_SIZE,
    ExpiryRun,
    licenses_expire_due,
)
from licensing.reminder_content import (
    MAX_LISTED,
    SERVICE_LEVELS,
    DeviceChange,
    ListedLicense,
    ReminderContent,
    reminder_content,
    reminder_message,
)
from licensing.reminders import (
    LATE_NOTICE_DAYS,
    MILESTONES,
    REQUEUE_AFTER,
    RETRY_FIRST_DELAY,
    SEND_CHUNK,
    SEND_LEASE,
    ReminderRun,
    expiry_notices_claim,
    milestone_due,
    reminder_recipients,
    reminder_send,
    reminders_claim,
    reminders_dispatch,
    reminders_requeue_stale,
    reminders_send_due,
    reminders_send_many,
)

__all__ = [
    "EXPIRED_ACTION",
    "EXPIRY_BATCH_SIZE",
    "LATE_NOTICE_DAYS",
    "MAX_LISTED",
    "MILESTONES",
    "REQUEUE_AFTER",
    "RETRY_FIRST_DELAY",
    "SEND_CHUNK",
    "SEND_LEASE",
    "SERVICE_LEVELS",
    "DeviceChange",
    "ExpiryRun",
    "ListedLicense",
    "ReminderContent",
    "ReminderRun",
    "expiry_notices_claim",
    "licenses_expire_due",
    "milestone_due",
    "reminder_content",
    "reminder_message",
    "reminder_recipients",
    "reminder_send",
    "reminders_claim",
    "reminders_dispatch",
    "reminders_requeue_stale",
    "reminders_send_due",
    "reminders_send_many",
]
