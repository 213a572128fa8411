"""The transactional email outbox (R13): store with the change, deliver after it.

    store   console.emails.send_templated_email renders each email and stores one
            OutboundEmail per recipient in the caller's transaction (a rolled-back change
            stores nothing), then, on commit, queues the send task for those emails.
    deliver outbound_emails_deliver: claim due rows with a compare-and-set, send each with
            its stored Message-ID, mark it sent or schedule its next attempt.

Three things deliver, and may run at the same moment: the task queued on commit (the fast
path), the periodic sweep (beat, every minute: emails whose task was lost with the broker,
and retries) and the `sendpendingemails` command. The claim is one conditional UPDATE, as in
healthchecks' sendalerts: a row goes to whichever sender's UPDATE matched it, with a lease
and that sender's claim token; the others skip it. So no email is sent by two senders at
once. Delivery is at least once: a sender that dies after the mail server accepted an email
and before its row says "sent" leaves it to be sent again once the lease lapses, with the
same Message-ID.

Retries: 1 min, 5 min, 30 min, 2 h, then every 6 h; after MAX_ATTEMPTS (about three days)
the email is failed, visible to staff in the admin, who may retry it.
"""

import datetime as dt
import logging
import smtplib
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from console import claims
from console.celery import enqueue
from console.models import OutboundEmail

logger = logging.getLogger(__name__)

# The Celery task (console.tasks), queued by name: console.tasks imports this module.
SEND_TASK = "console.tasks.send_outbound_emails"

# After the n-th failed attempt the next one waits RETRY_DELAYS[n - 1], then RETRY_EVERY.
RETRY_DELAYS = (
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
)
RETRY_EVERY = dt.timedelta(hours=6)
# 4 quick retries (2.6 h), then twelve 6-hour ones: the email is given up after ~3 days.
MAX_ATTEMPTS = 17
# A sender holds its batch this long. Longer than the send task's hard time limit
# (console.tasks), so a hung task is killed before anyone else may send its emails; a
# sender stops sending a batch after half of it (BATCH_SEND_WINDOW) and hands the rest back.
LEASE = dt.timedelta(minutes=10)
BATCH_SEND_WINDOW = LEASE / 2
BATCH_SIZE = 50
ERROR_MAX_LENGTH = 1000

Status = OutboundEmail.Status

# The mail server refused this message (not the connection): the next one may go through.
MESSAGE_ERRORS = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)


@dataclass
class DeliveryRun:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "retrying": self.retrying, "failed": self.failed}


# --- store ------------------------------------------------------------------------------------


def outbound_emails_store(*, emails: Sequence[OutboundEmail]) -> list[OutboundEmail]:
    """Store `emails` (unsaved) in the current transaction and queue their delivery once it
    commits. An email whose (recipient, dedup_key) is stored already is not stored again.

    One INSERT for all of them, part of the caller's transaction (its own one outside a
    transaction): if that rolls back, nothing is stored and nothing is queued. No savepoint
    of its own: a failure here fails the caller's change, which is the point."""
    emails = list(emails)
    if not emails:
        return []
    with transaction.atomic(savepoint=False):
        # ignore_conflicts: a duplicate (dedup key) is skipped by the database itself,
        # without an IntegrityError that would break the caller's transaction.
        OutboundEmail.objects.bulk_create(emails, ignore_conflicts=True)
        message_ids = [email.message_id for email in emails]
        transaction.on_commit(lambda: outbound_emails_queue(message_ids=message_ids), robust=True)
    return emails


def outbound_emails_queue(*, message_ids: list[str]) -> None:
    """Ask the worker to deliver these emails now. Best effort: with the broker down they
    wait for the periodic sweep or `sendpendingemails`; nothing is lost, so no error."""
    try:
        enqueue(SEND_TASK, message_ids)
    except Exception:
        logger.warning(
            "email queue unavailable: %d stored email(s) wait for the sweep",
            len(message_ids),
            exc_info=True,
        )


# --- deliver ----------------------------------------------------------------------------------


def _due(now: dt.datetime) -> QuerySet[OutboundEmail]:
    return claims.due(OutboundEmail.objects.all(), now=now)


def outbound_emails_claim(
    *, message_ids: Sequence[str] | None = None, limit: int = BATCH_SIZE
) -> tuple[str, list[OutboundEmail]]:
    """Claim up to `limit` due emails (only those of `message_ids` when given), oldest due
    first. Returns the claim token and the rows this call claimed.

    Compare-and-set: the UPDATE repeats the "due and not leased" condition, so of two
    senders that read the same ids only one UPDATE matches each row (on PostgreSQL the
    second waits for the first to commit, then finds the row leased)."""
    now = timezone.now()
    due = _due(now)
    if message_ids is not None:
        due = due.filter(message_id__in=list(message_ids))
    token, ids = claims.claim(due, now=now, lease=LEASE, limit=limit)
    if not ids:
        return token, []
    return token, list(OutboundEmail.objects.filter(pk__in=ids, claim_token=token).order_by("id"))


def outbound_email_message(email: OutboundEmail, *, connection=None) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body_text,
        from_email=email.from_email or settings.DEFAULT_FROM_EMAIL,
        to=[email.to],
        reply_to=list(email.reply_to) or None,
        # The stored Message-ID, not a new one per attempt: a resend is the same email.
        headers={"Message-ID": email.message_id},
        connection=connection,
    )
    if email.body_html:
        message.attach_alternative(email.body_html, "text/html")
    return message


def next_attempt_delay(attempts: int) -> dt.timedelta | None:
    """The wait after the `attempts`-th failed attempt, or None when it is the last."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else RETRY_EVERY


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:ERROR_MAX_LENGTH]


def _permanent(exc: BaseException) -> bool:
    """A 5xx refusal of every recipient: the address will not start working by itself."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(code >= 500 for code, _msg in exc.recipients.values())
    return False


def _mine(email: OutboundEmail, token: str) -> QuerySet[OutboundEmail]:
    # Only the claim that holds the row may finish it: after a lapsed lease another sender
    # may own it now.
    return OutboundEmail.objects.filter(pk=email.pk, claim_token=token, status=Status.PENDING)


def _mark_sent(email: OutboundEmail, token: str) -> None:
    if not _mine(email, token).update(
        status=Status.SENT, sent_at=timezone.now(), lease_until=None, last_error=""
    ):
        logger.warning("email %s: sent after its lease lapsed", email.message_id)


def _mark_failed_attempt(email: OutboundEmail, token: str, exc: BaseException) -> str:
    delay = None if _permanent(exc) else next_attempt_delay(email.attempts)
    now = timezone.now()
    fields = {"lease_until": None, "last_error": _error_text(exc)}
    if delay is None:
        fields["status"] = Status.FAILED
    else:
        fields["next_attempt_at"] = now + delay
    _mine(email, token).update(**fields)
    return "failed" if delay is None else "retrying"


def _hand_back(emails: Sequence[OutboundEmail], token: str) -> None:
    """Release claimed emails that were not tried: not an attempt."""
    OutboundEmail.objects.filter(
        pk__in=[e.pk for e in emails], claim_token=token, status=Status.PENDING
    ).update(lease_until=None, attempts=F("attempts") - 1)


def _send_batch(emails: list[OutboundEmail], token: str, run: DeliveryRun) -> None:
    deadline = time.monotonic() + BATCH_SEND_WINDOW.total_seconds()
    connection = get_connection()
    try:
        for index, email in enumerate(emails):
            if time.monotonic() > deadline:
                _hand_back(emails[index:], token)
                return
            try:
                if not connection.send_messages([outbound_email_message(email)]):
                    raise smtplib.SMTPException("the mail backend accepted no message")
            except MESSAGE_ERRORS as exc:
                logger.warning("email %s to %s: %s", email.message_id, email.to, exc)
                outcome = _mark_failed_attempt(email, token, exc)
                setattr(run, outcome, getattr(run, outcome) + 1)
            except Exception as exc:
                # The connection (server down, refused, timed out, authentication): the
                # rest of the batch would fail the same way; all wait for the next attempt.
                logger.warning("mail server unavailable (%s): %d email(s) wait", exc, len(emails))
                for rest in emails[index:]:
                    outcome = _mark_failed_attempt(rest, token, exc)
                    setattr(run, outcome, getattr(run, outcome) + 1)
                return
            else:
                _mark_sent(email, token)
                run.sent += 1
    finally:
        try:
            connection.close()
        except Exception:
            logger.debug("closing the mail connection failed", exc_info=True)


def outbound_emails_deliver(
    *,
    message_ids: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
    time_budget: float | None = None,
) -> DeliveryRun:
    """Send every due email (only those of `message_ids` when given), batch by batch, until
    none is left or `time_budget` seconds have passed (then the next sweep goes on).

    Safe to run any number of times at once: each batch is claimed (outbound_emails_claim).
    Failures are recorded on the rows, never raised."""
    run = DeliveryRun()
    started = time.monotonic()
    while True:
        token, emails = outbound_emails_claim(message_ids=message_ids, limit=batch_size)
        if not emails:
            break
        _send_batch(emails, token, run)
        if time_budget is not None and time.monotonic() - started > time_budget:
            break
    if run.sent or run.retrying or run.failed:
        logger.info("outbound emails: %s", run.as_dict())
    return run


# --- staff --------------------------------------------------------------------------------------


def outbound_emails_retry_now(*, emails: QuerySet[OutboundEmail]) -> int:
    """Staff's "retry now": pending and failed emails become due at once. A failed one gets
    one more attempt (failing again, it is failed again); sent ones are left alone."""
    return emails.filter(status__in=[Status.PENDING, Status.FAILED]).update(
        status=Status.PENDING, next_attempt_at=timezone.now()
    )
