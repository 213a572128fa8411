"""Renewal reminders (R11, R12): which reminder each tenant is owed, who owns each email and
its sending, at most once.

Every reminder has a SentReminder row, unique per (tenant, milestone, expiry date): the run
that inserts it owns the reminder (the reminder job at 09:00, or the expiry job handing over
its expiry-date notice), and a sender leases the row before building its emails, so one
reminder is built per row however many runs, workers and retries overlap.

Building a reminder stores one email per owner and admin, each in their language, in the
email outbox (console.emails, R13) in the same transaction that marks the row sent: the
row is "sent" exactly when its emails are stored, and the outbox delivers them (retrying
while the mail server is down). The reminder job never talks to the mail server itself.

What an email says is licensing.reminder_content. Sends are queued by task name
(console.celery.enqueue): licensing.tasks imports this module, never the reverse.
"""

import datetime as dt
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from console.celery import enqueue
from console.emails import tenant_recipients
from console.models import Membership, NotificationRecipient, Tenant
from console.notify_settings import notification_recipients
from console.outbox import outbound_emails_deliver
from console.timeutils import business_date, start_of_business_day
from licensing import rules
from licensing.models import License, SentReminder
from licensing.reminder_content import reminder_content, reminder_emails_store
from licensing.webhook_events import expiring_event_record, webhooks_enabled_q

logger = logging.getLogger(__name__)

# R11: days before the expiry date (the date of expires_at, the first day without service).
# 1 day before is the last day of service; 0 is the expiry date itself.
MILESTONES = (30, 7, 1, 0)
# An expiry-date notice the jobs missed (they were down) is still sent this many days late;
# older expiries are history, not news, and are not announced.
LATE_NOTICE_DAYS = 30
# A sender holds a reminder this long while it builds and stores its emails. Longer than
# the hard time limit of any task that does it (licensing.tasks), so a hung task is killed
# before anyone else may try; shorter than the broker's visibility timeout, so the task
# of a worker that was killed, redelivered after that timeout, finds the lease lapsed.
SEND_LEASE = dt.timedelta(minutes=4)
# Reminders per send task: publishing is per message, so the job queues chunks.
SEND_CHUNK = 100
# A chunk takes no new reminder after this many seconds and queues the rest as a chunk of
# their own: every task stays a few seconds to a minute, whatever the database's pace.
SEND_CHUNK_BUDGET = 30.0
# The first retry of a reminder that could not be stored (a database error) waits this long
# (then Celery's exponential backoff). Mail server failures are the outbox's to retry.
RETRY_FIRST_DELAY = 30
# A pending reminder queued longer ago than this, with no live lease, is queued again by
# the next run: its message was lost (broker flushed, worker died before acking).
REQUEUE_AFTER = dt.timedelta(minutes=30)

# The send tasks (licensing.tasks), queued by name.
SEND_CHUNK_TASK = "licensing.tasks.send_reminder_emails"
SEND_ONE_TASK = "licensing.tasks.send_reminder_email"


def milestone_due(days_left: int) -> int | None:
    """R11: the latest milestone that has come when the expiry date is `days_left` business
    days away, or None when none has (more than 30 days). Earlier milestones are superseded
    by it; on and after the expiry date only the expiry-date notice (0) is owed."""
    if days_left > MILESTONES[0]:
        return None
    return next(m for m in reversed(MILESTONES) if m >= days_left)


# --- claims ----------------------------------------------------------------------------------


def reminders_claim(*, wanted: Iterable[tuple[int, dt.date, int]]) -> dict[int, int]:
    """Insert a SentReminder for each (tenant id, expiry date, milestone) and return the rows
    this call inserted, id → milestone, in id order. A row that exists already (another run,
    the other job) is left alone: the unique constraint decides who owns each email."""
    wanted = list(dict.fromkeys(wanted))
    if not wanted:
        return {}
    token = uuid.uuid4().hex
    now = timezone.now()
    if connection.vendor == "postgresql":
        return _claim_postgresql(wanted, token=token, now=now)
    SentReminder.objects.bulk_create(
        [
            SentReminder(
                tenant_id=tenant_id,
                expiry_date=expiry_date,
                milestone=milestone,
                claim_token=token,
                created_at=now,
                queued_at=now,
            )
            for tenant_id, expiry_date, milestone in wanted
        ],
        batch_size=1000,
        ignore_conflicts=True,
    )
    # ignore_conflicts hides which rows were inserted; the run's token tells.
    dates = [expiry_date for _tenant_id, expiry_date, _milestone in wanted]
    return dict(
        SentReminder.objects.filter(
            expiry_date__gte=min(dates), expiry_date__lte=max(dates), claim_token=token
        )
        .order_by("id")
        .values_list("id", "milestone")
    )


_CLAIM_KEYS = ("tenant_id", "expiry_date", "milestone")


def _claim_postgresql(
    wanted: list[tuple[int, dt.date, int]], *, token: str, now: dt.datetime
) -> dict[int, int]:
    """One INSERT … SELECT FROM unnest(…) ON CONFLICT DO NOTHING RETURNING id: the rows this
    statement inserted are exactly the ones returned (ten thousand claims in one statement,
    instead of model instances, batches and a read-back). Every other column takes the
    model's value for a new row, so the statement follows the model."""
    template = SentReminder(claim_token=token, created_at=now, queued_at=now)
    columns, values, params = [], [], {}
    for fld in SentReminder._meta.concrete_fields:
        if fld.primary_key:
            continue
        columns.append(connection.ops.quote_name(fld.column))
        if fld.attname in _CLAIM_KEYS:
            values.append(f"u.{fld.attname}")
        else:
            params[fld.attname] = fld.get_db_prep_save(getattr(template, fld.attname), connection)
            values.append(f"%({fld.attname})s")
    tenants, dates, milestones = (list(column) for column in zip(*wanted, strict=True))
    params.update(claim_tenants=tenants, claim_dates=dates, claim_milestones=milestones)
    sql = f"""
        INSERT INTO {connection.ops.quote_name(SentReminder._meta.db_table)} ({", ".join(columns)})
        SELECT {", ".join(values)}
        FROM unnest(%(claim_tenants)s::bigint[], %(claim_dates)s::date[],
                    %(claim_milestones)s::smallint[]) AS u(tenant_id, expiry_date, milestone)
        ON CONFLICT (tenant_id, milestone, expiry_date) DO NOTHING
        RETURNING id, milestone
    """  # noqa: S608 — names from model metadata, values are parameters
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(sorted(cursor.fetchall()))


def expiry_notices_claim(*, groups: Iterable[tuple[int, dt.date]], at: dt.datetime) -> list[int]:
    """R11: the expiry-date notice of each (tenant id, expiry date) the expiry job handed
    over. The reminder job claims the same notice when it finds it unsent; the unique row
    makes it one email whichever job gets there first."""
    today = business_date(at)
    earliest = today - dt.timedelta(days=LATE_NOTICE_DAYS)
    claimed = reminders_claim(
        wanted=sorted(
            (tenant_id, day, SentReminder.Milestone.EXPIRY_DATE)
            for tenant_id, day in groups
            if earliest <= day <= today
        )
    )
    return list(claimed)


def reminders_requeue_stale(*, at: dt.datetime) -> list[int]:
    """Pending reminders whose send never finished (message lost, worker killed): queue them
    again. Safe even if the first message still arrives: the sender's lease and the
    pending-only update mean one of them sends and the other finds nothing to do."""
    stale = SentReminder.objects.filter(status=SentReminder.Status.PENDING).filter(
        Q(queued_at__isnull=True) | Q(queued_at__lt=at - REQUEUE_AFTER),
        Q(lease_until__isnull=True) | Q(lease_until__lte=at),
    )
    ids = list(stale.order_by("id").values_list("id", flat=True)[:10_000])
    if ids:
        SentReminder.objects.filter(pk__in=ids, status=SentReminder.Status.PENDING).update(
            queued_at=at
        )
    return ids


def reminders_dispatch(*, reminder_ids: list[int], inline: bool = False) -> None:
    """Queue the sends once the claims are committed: one task per SEND_CHUNK reminders, so
    ten thousand notices cost a hundred messages, not ten thousand, on the job's clock. Each
    reminder in a chunk is still claimed, sent and retried on its own (reminders_send_many).
    Inline (the commands' --send-now, for a machine without a worker) stores them here and
    delivers the outbox's due emails in this process too."""
    if not reminder_ids:
        return
    ids = list(reminder_ids)

    def queue() -> None:
        for start in range(0, len(ids), SEND_CHUNK):
            chunk = ids[start : start + SEND_CHUNK]
            try:
                enqueue(SEND_CHUNK_TASK, chunk)
            except Exception:
                # Broker down: these stay pending and the next run queues them again.
                logger.exception("reminders %s…: could not queue their send", chunk[:3])

    def send_now() -> None:
        for reminder_id in ids:
            try:
                reminder_send(reminder_id=reminder_id)
            except Exception:
                # Left pending: the next run queues it again.
                logger.exception("reminder %s: send failed", reminder_id)
        # No worker to deliver what was stored: the outbox's sweep, here (R13).
        outbound_emails_deliver()

    transaction.on_commit(send_now if inline else queue)


def reminders_send_many(
    *, reminder_ids: list[int], budget: float = SEND_CHUNK_BUDGET
) -> dict[str, int]:
    """Send a chunk of reminders one by one. One that fails is handed to the single-reminder
    task, which retries it with backoff, and the chunk goes on with the others. After
    `budget` seconds the rest goes on as a new chunk (a chunk re-run after its worker died
    finds its sent reminders finished and sends only the others)."""
    outcomes: dict[str, int] = defaultdict(int)
    deadline = time.monotonic() + budget
    for index, reminder_id in enumerate(reminder_ids):
        if index and time.monotonic() > deadline:
            rest = reminder_ids[index:]
            try:
                enqueue(SEND_CHUNK_TASK, rest)
            except Exception:
                # Broker down: they stay pending and the next run queues them again.
                logger.exception("reminders %s…: could not queue the rest", rest[:3])
            outcomes["deferred"] += len(rest)
            break
        try:
            outcomes[reminder_send(reminder_id=reminder_id)] += 1
        except Exception:
            logger.warning("reminder %s: send failed; retrying on its own", reminder_id)
            outcomes["retrying"] += 1
            _retry_later(reminder_id)
    return dict(outcomes)


def _retry_later(reminder_id: int) -> None:
    try:
        enqueue(SEND_ONE_TASK, reminder_id, countdown=RETRY_FIRST_DELAY)
    except Exception:
        # Broker down, or (eager tasks) the retries failed too: it stays pending and the
        # next run queues it again.
        logger.exception("reminder %s: could not queue its retry", reminder_id)


# --- the reminder job at 09:00 ---------------------------------------------------------------


@dataclass
class ReminderRun:
    claimed: dict[int, int] = field(default_factory=dict)  # milestone → emails claimed
    requeued: int = 0

    def as_dict(self) -> dict:
        return {"claimed": {str(m): n for m, n in self.claimed.items()}, "requeued": self.requeued}


def reminders_send_due(*, at: dt.datetime | None = None, send_inline: bool = False) -> ReminderRun:
    """R11: claim and queue every reminder that is due today (Asia/Shanghai) and not yet
    claimed: per tenant and expiry date, the latest milestone that has come, unless that
    milestone or a later one already has its record (earlier ones are superseded, never
    sent late).

    Set-based: one read of the distinct (tenant, expires_at) pairs in the window, one of
    the existing records, one insert (plus a read-back off PostgreSQL) and the re-queue
    check, whatever the number of tenants and licenses. Building and sending each email is
    the send tasks' work (a constant number of statements per email)."""
    at = at or timezone.now()
    today = business_date(at)
    first = today - dt.timedelta(days=LATE_NOTICE_DAYS)
    last = today + dt.timedelta(days=MILESTONES[0])
    pairs = (
        License.objects.filter(
            status__in=rules.NOT_REFUNDED,
            expires_at__gte=start_of_business_day(first),
            expires_at__lt=start_of_business_day(last + dt.timedelta(days=1)),
        )
        # No ordering: the model's default (expires_at, id) would put id into the
        # DISTINCT and return every license instead of every pair.
        .order_by()
        .values_list("tenant_id", "expires_at")
        .distinct()
    )
    due: dict[tuple[int, dt.date], int] = {}
    for tenant_id, expires_at in pairs:
        day = rules.expiry_date(expires_at)
        milestone = milestone_due((day - today).days)
        if milestone is not None:
            due[(tenant_id, day)] = milestone
    claimed_latest: dict[tuple[int, dt.date], int] = {}
    for tenant_id, day, milestone in SentReminder.objects.filter(
        expiry_date__gte=first, expiry_date__lte=last
    ).values_list("tenant_id", "expiry_date", "milestone"):
        key = (tenant_id, day)
        claimed_latest[key] = min(milestone, claimed_latest.get(key, milestone))
    wanted = sorted(
        (tenant_id, day, milestone)
        for (tenant_id, day), milestone in due.items()
        if claimed_latest.get((tenant_id, day), MILESTONES[0] + 1) > milestone
    )
    claimed = reminders_claim(wanted=wanted)
    run = ReminderRun()
    for milestone in claimed.values():
        run.claimed[milestone] = run.claimed.get(milestone, 0) + 1
    requeued = reminders_requeue_stale(at=at)
    run.requeued = len(requeued)
    reminders_dispatch(reminder_ids=[*claimed, *requeued], inline=send_inline)
    logger.info("sendrenewalreminders: %s", run.as_dict())
    return run


# --- one email ---------------------------------------------------------------------------------


def reminder_recipients(*, tenant: Tenant) -> list[tuple[str, str]]:
    """R11, R13: every active owner and admin of the tenant, each with their email language
    (their own, else the tenant's), and the extra reminder recipients the tenant names."""
    return [
        *tenant_recipients(tenant, roles=[Membership.Role.OWNER, Membership.Role.ADMIN]),
        *notification_recipients(tenant, kind=NotificationRecipient.Kind.REMINDERS),
    ]


def _reminder_finish(reminder: SentReminder, *, status: str, at: dt.datetime, **fields) -> bool:
    # Pending-only: a row another sender already finished is never rewritten.
    return bool(
        SentReminder.objects.filter(pk=reminder.pk, status=SentReminder.Status.PENDING).update(
            status=status, sent_at=at, lease_until=None, **fields
        )
    )


class _FinishedElsewhere(Exception):
    """Another sender finished the reminder after this one's lease lapsed: store nothing."""


def reminder_send(*, reminder_id: int, at: dt.datetime | None = None) -> str:
    """Build one reminder's emails and store them in the outbox, at most once. Returns what
    happened: "sent" (stored; the outbox delivers them), "skipped" (nothing to say any
    more, or no one to tell) or "not_claimed" (finished already, or another sender holds
    it). A failure raises after releasing the lease, so the Celery task retries it and,
    failing that, the next run queues it again."""
    now = at or timezone.now()
    # Compare-and-set claim (as healthchecks' sendalerts): only one sender gets 1 here.
    claimed = (
        SentReminder.objects.filter(pk=reminder_id, status=SentReminder.Status.PENDING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .update(lease_until=now + SEND_LEASE, attempts=F("attempts") + 1)
    )
    if claimed != 1:
        return "not_claimed"
    # R15: whether the tenant has an enabled webhook endpoint, in the same statement (no
    # extra statement per reminder for the tenants without one).
    reminder = (
        SentReminder.objects.select_related("tenant")
        .annotate(has_webhooks=webhooks_enabled_q("tenant"))
        .get(pk=reminder_id)
    )
    tenant = reminder.tenant
    days_left = (reminder.expiry_date - business_date(now)).days
    due = milestone_due(days_left)
    if due is not None and due < reminder.milestone:
        # Its time passed unsent (the job was down) and a later milestone has come: that
        # one is sent instead (R11).
        _reminder_finish(
            reminder,
            status=SentReminder.Status.SKIPPED,
            at=now,
            note="superseded by a later milestone",
        )
        return "skipped"
    content = reminder_content(tenant=tenant, expiry_date=reminder.expiry_date, at=now)
    if not content.license_count:
        _reminder_finish(
            reminder,
            status=SentReminder.Status.SKIPPED,
            at=now,
            note="no license left on this date (renewed or refunded)",
        )
        return "skipped"
    recipients = reminder_recipients(tenant=tenant)
    if not recipients:
        _reminder_finish(
            reminder,
            status=SentReminder.Status.SKIPPED,
            at=now,
            license_count=content.license_count,
            note="no active owner or admin to write to",
        )
        return "skipped"
    try:
        # The emails and the "sent" mark commit together: a reminder is sent exactly when
        # its emails are in the outbox, which delivers them after this commit.
        with transaction.atomic():
            reminder_emails_store(
                reminder=reminder, content=content, recipients=recipients, days_left=days_left
            )
            # R15: the same milestone, for the tenant's systems.
            if reminder.has_webhooks:
                expiring_event_record(
                    tenant_id=tenant.pk,
                    milestone=reminder.milestone,
                    expiry_date=reminder.expiry_date,
                )
            if not _reminder_finish(
                reminder,
                status=SentReminder.Status.SENT,
                at=now,
                recipients=[address for address, _language in recipients],
                license_count=content.license_count,
                note="",
            ):
                raise _FinishedElsewhere
    except _FinishedElsewhere:
        return "not_claimed"
    except Exception as exc:
        SentReminder.objects.filter(pk=reminder.pk, status=SentReminder.Status.PENDING).update(
            lease_until=None, note=f"{type(exc).__name__}: {exc}"[:500]
        )
        raise
    return "sent"
