"""Console background jobs. Thin: each calls a helper and does nothing else."""

from smtplib import SMTPException

from celery import shared_task

from console import outbox, webhooks
from console.emails import EMAIL_SEND_TASK, message_from_payload

# A sweep stops claiming new batches after SWEEP_BUDGET seconds (the next minute's sweep
# goes on), well inside the hard time limit; outbox.LEASE outlives the hard limit, so no
# email is leased out while a killed task might still be sending it.
SWEEP_BUDGET = 120
# The hard limit stays under the broker's visibility timeout (console.settings).
SEND_SOFT_TIME_LIMIT = 200
SEND_TIME_LIMIT = 240


@shared_task(
    name=outbox.SEND_TASK, soft_time_limit=SEND_SOFT_TIME_LIMIT, time_limit=SEND_TIME_LIMIT
)
def send_outbound_emails(message_ids: list[str] | None = None) -> dict:
    """R13: deliver stored emails: those of `message_ids` (queued when their change
    committed), or every due one (the periodic sweep, beat every minute)."""
    return outbox.outbound_emails_deliver(
        message_ids=message_ids, time_budget=SWEEP_BUDGET
    ).as_dict()


@shared_task(
    name=webhooks.DELIVER_TASK, soft_time_limit=SEND_SOFT_TIME_LIMIT, time_limit=SEND_TIME_LIMIT
)
def deliver_webhooks(event_ids: list[str] | None = None) -> dict:
    """R15: deliver webhook events: those of `event_ids` (queued when their change
    committed), or every due delivery (the periodic sweep, beat every minute, which also
    disables endpoints failing for 72 hours)."""
    return webhooks.webhook_deliveries_deliver(
        event_ids=event_ids, time_budget=SWEEP_BUDGET
    ).as_dict()


@shared_task(
    name=EMAIL_SEND_TASK,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=30,
    # Under the broker's visibility timeout: Redis hands a message that waits longer for
    # its countdown to another worker as well.
    retry_backoff_max=240,
    max_retries=16,
)
def email_send(payload: dict) -> int:
    """Messages queued by earlier versions, before the outbox: still delivered after an
    upgrade. Nothing queues this task any more."""
    return message_from_payload(payload).send()
