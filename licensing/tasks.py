"""Licensing's Celery tasks (R5, R11, R12). Thin: each calls one job function of
licensing.expiry or licensing.reminders. The jobs queue the send tasks by name
(console.celery.enqueue) and never import this module.

Scheduled by django-celery-beat (rows created by migration licensing 0003_beat_schedule):
expire_licenses at 00:05 and send_renewal_reminders at 09:00, Asia/Shanghai.

Every task here is safe to run again: each claims its work with a compare-and-set update
or a unique row, so the global acks_late and reject_on_worker_lost (console.settings)
re-run it after a worker dies. Each is cut short enough (a batch, a chunk with a time
budget) that its hard time limit stays under the broker's visibility timeout
(BROKER_VISIBILITY_TIMEOUT, 300 s), so a killed worker's task comes back within minutes.
"""

import datetime as dt

from celery import shared_task
from django.db import DatabaseError

from licensing import expiry, reminders

# One batch is a few seconds (licensing.expiry.task_batch_size).
EXPIRE_SOFT_TIME_LIMIT = 100
EXPIRE_TIME_LIMIT = 120
# The claim: a few set-based statements whatever the number of tenants.
CLAIM_SOFT_TIME_LIMIT = 100
CLAIM_TIME_LIMIT = 120
# Sends fail fast: one reminder is a few statements that store its emails in the outbox; a
# chunk stops taking reminders after reminders.SEND_CHUNK_BUDGET seconds and queues the
# rest. reminders.SEND_LEASE must stay longer than both hard limits (no reminder is leased
# out while still being sent) and shorter than the visibility timeout (a killed sender's
# redelivered task finds the lease lapsed).
SEND_SOFT_TIME_LIMIT = 100
SEND_TIME_LIMIT = 120
CHUNK_SOFT_TIME_LIMIT = 100
CHUNK_TIME_LIMIT = 120


@shared_task(
    name=expiry.EXPIRE_TASK, soft_time_limit=EXPIRE_SOFT_TIME_LIMIT, time_limit=EXPIRE_TIME_LIMIT
)
def expire_licenses(at: str | None = None, batch_size: int | None = None) -> dict:
    """Beat's nightly call (no arguments) starts a chain of batches, each this same task
    with the run's instant (licensing.expiry.licenses_expire_step)."""
    return expiry.licenses_expire_step(
        at=dt.datetime.fromisoformat(at) if at else None,
        batch_size=batch_size,
        actor="task:expire_licenses",
    )


@shared_task(
    name="licensing.tasks.send_renewal_reminders",
    soft_time_limit=CLAIM_SOFT_TIME_LIMIT,
    time_limit=CLAIM_TIME_LIMIT,
)
def send_renewal_reminders() -> dict:
    return reminders.reminders_send_due().as_dict()


@shared_task(
    name=reminders.SEND_CHUNK_TASK,
    soft_time_limit=CHUNK_SOFT_TIME_LIMIT,
    time_limit=CHUNK_TIME_LIMIT,
)
def send_reminder_emails(reminder_ids: list[int]) -> dict:
    """A chunk queued by a job run; a reminder that fails goes on to send_reminder_email,
    and what the chunk's time budget leaves goes on to a new chunk."""
    return reminders.reminders_send_many(reminder_ids=reminder_ids)


@shared_task(
    name=reminders.SEND_ONE_TASK,
    # Storing a reminder's emails is database work (the outbox, R13, talks to the mail
    # server and retries its failures): a database error is retried with exponential backoff
    # (30 s, 1 min, 2 min, then every 4 min, jittered, for about an hour); once retries run
    # out the reminder stays pending and the next job run queues it again (R11: a failed
    # send is retried, not lost). The backoff stays under the broker's visibility timeout:
    # Redis hands a message waiting longer than that for its countdown to another worker.
    autoretry_for=(DatabaseError,),
    retry_backoff=30,
    retry_backoff_max=240,
    retry_jitter=True,
    max_retries=16,
    soft_time_limit=SEND_SOFT_TIME_LIMIT,
    time_limit=SEND_TIME_LIMIT,
)
def send_reminder_email(reminder_id: int) -> str:
    return reminders.reminder_send(reminder_id=reminder_id)
