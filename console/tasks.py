"""Console background jobs. Thin: each calls a helper and does nothing else."""

from smtplib import SMTPException

from celery import shared_task

from console.emails import EMAIL_SEND_TASK, message_from_payload


@shared_task(
    name=EMAIL_SEND_TASK,
    autoretry_for=(SMTPException, OSError),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=8,
)
def email_send(payload: dict) -> int:
    """Send one message built by console.emails (retried when the mail server fails)."""
    return message_from_payload(payload).send()
