"""Licensing's Celery tasks (R5, R11, R12). Thin: each calls one job function of
licensing.expiry or licensing.reminders. The jobs queue the send tasks by name
(console.celery.enqueue) and never import this module.

Scheduled by django-celery-beat (rows created by migration licensing 0003_beat_schedule):
expire_licenses at 00:05 and send_renewal_reminders at 09:00, Asia/Shanghai.
"""

from celery import shared_task
from django.db import DatabaseError

from licensing import expiry, reminders

# Sends fail fast instead of holding a worker for the global 30-minute limit: one reminder
# is a few statements that store its emails in the outbox, a chunk at most
# reminders.SEND_CHUNK of them.
# reminders.SEND_LEASE must stay longer than both hard limits, so no reminder is leased out
# while still being sent.
SEND_SOFT_TIME_LIMIT = 240
SEND_TIME_LIMIT = 300
CHUNK_SOFT_TIME_LIMIT = 600
CHUNK_TIME_LIMIT = 660


@shared_task(name="licensing.tasks.expire_licenses")
def expire_licenses() -> dict:
    return expiry.licenses_expire_due(actor="task:expire_licenses").as_dict()


@shared_task(name="licensing.tasks.send_renewal_reminders")
def send_renewal_reminders() -> dict:
    return reminders.reminders_send_due().as_dict()


@shared_task(
    name=reminders.SEND_CHUNK_TASK,
    soft_time_limit=CHUNK_SOFT_TIME_LIMIT,
    time_limit=CHUNK_TIME_LIMIT,
)
def send_reminder_emails(reminder_ids: list[int]) -> dict:
    """A chunk queued by a job run; a reminder that fails goes on to send_reminder_email."""
    return reminders.reminders_send_many(reminder_ids=reminder_ids)


@shared_task(
    name=reminders.SEND_ONE_TASK,
    # Storing a reminder's emails is database work (the outbox, R13, talks to the mail
    # server and retries its failures): a database error is retried with exponential backoff
    # (30 s, 1 min, 2 min … capped at 1 h, jittered); once retries run out the reminder stays
    # pending and the next job run queues it again (R11: a failed send is retried, not lost).
    autoretry_for=(DatabaseError,),
    retry_backoff=30,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=8,
    soft_time_limit=SEND_SOFT_TIME_LIMIT,
    time_limit=SEND_TIME_LIMIT,
)
def send_reminder_email(reminder_id: int) -> str:
    return reminders.reminder_send(reminder_id=reminder_id)
