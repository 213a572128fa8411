"""Licensing's scheduled jobs (R5, R11, R12): the nightly expiry and the renewal reminders.

The Celery tasks in licensing/tasks.py and the `expirelicenses` / `sendrenewalreminders`
commands call these functions and nothing else.

Both jobs are safe to re-run and to run twice at once:
- the expiry job claims licenses with a compare-and-set update (status active → expired),
  so only the run that changed a row audits it: one audit event per tenant and expiry date
  per batch, listing the license ids (one row per license cost as much as the UPDATE itself
  at a million licenses; bench/RESULTS.md);
- every email has a SentReminder row, unique per (tenant, milestone, expiry date): the run
  that inserts it owns the email, and a sender leases the row before sending, so one email
  goes out per row however many runs, workers and retries overlap.
"""

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Prefetch, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.emails import render_templated_email
from console.models import AuditEvent, Membership, Tenant, User
from console.timeutils import BUSINESS_TZ, business_date, start_of_business_day
from devices.models import Camera, FieldDevice
from licensing.models import License, SentReminder
from licensing.selectors import device_requirement
from licensing.services import choose_cameras

logger = logging.getLogger(__name__)

# R11: days before the expiry date (the date of expires_at, the first day without service).
# 1 day before is the last day of service; 0 is the expiry date itself.
MILESTONES = (30, 7, 1, 0)
# An expiry-date notice the jobs missed (they were down) is still sent this many days late;
# older expiries are history, not news, and are not announced.
LATE_NOTICE_DAYS = 30
# Licenses expired per statement: bounds lock time (and on SQLite memory) whatever the
# backlog. On PostgreSQL no license row reaches Python, only one row per tenant and expiry
# date, and each batch pays a fixed cost: 100,000 due licenses took 3.3 s in batches of
# 10,000 and 1.9 s in one batch (bench/expiry.py).
EXPIRY_BATCH_SIZE = 100_000
# A sender holds a reminder this long. Longer than the hard time limit of any task that
# sends (licensing.tasks), so a hung send is killed before anyone else may try.
SEND_LEASE = dt.timedelta(minutes=15)
# Reminders per send task: publishing is per message, so the job queues chunks.
SEND_CHUNK = 100
# The first retry of a failed send waits this long (then Celery's exponential backoff).
RETRY_FIRST_DELAY = 30
# A pending reminder queued longer ago than this, with no live lease, is queued again by
# the next run: its message was lost (broker flushed, worker died before acking).
REQUEUE_AFTER = dt.timedelta(minutes=30)
# An email lists at most this many licenses and devices, then "and N more".
MAX_LISTED = 100

EXPIRED_ACTION = "license.expired"


def milestone_due(days_left: int) -> int | None:
    """R11: the latest milestone that has come when the expiry date is `days_left` business
    days away, or None when none has (more than 30 days). Earlier milestones are superseded
    by it; on and after the expiry date only the expiry-date notice (0) is owed."""
    if days_left > MILESTONES[0]:
        return None
    return next(m for m in reversed(MILESTONES) if m >= days_left)


# --- R5: the nightly expiry -------------------------------------------------------------


@dataclass
class ExpiryRun:
    expired: int = 0
    notices: int = 0
    requeued: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"expired": self.expired, "notices": self.notices, "requeued": self.requeued}


# (tenant id, expiry date) → number of licenses the batch expired
Groups = dict[tuple[int, dt.date], int]


def _expire_batch_postgresql(*, at: dt.datetime, limit: int, actor_label: str) -> Groups:
    """One statement per batch: claim, update, audit.

    The batch is picked through the partial index license_active_exp_idx and updated by
    row address (ctid = ANY(ARRAY(…))): a TID scan whatever the table's size, where a join
    back on id lets the planner choose a hash join over every license. SKIP LOCKED lets a
    concurrent run take other rows instead of waiting; the `status = 'active'` re-check
    makes the UPDATE a compare-and-set, so a row another run expired meanwhile is neither
    counted nor audited. The audit rows (one per tenant and expiry date, with the license
    ids) come from UPDATE … RETURNING in the same statement: no license row travels to
    Python (memory and time grow with the batch, not with all licenses)."""
    lic = License._meta.db_table
    audit = AuditEvent._meta.db_table
    sql = f"""
        WITH expired AS (
            UPDATE {lic} SET status = %(expired)s
            WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM {lic}
                WHERE status = %(active)s AND expires_at <= %(at)s
                LIMIT %(limit)s
                FOR UPDATE SKIP LOCKED
            ))
            AND status = %(active)s
            RETURNING id, tenant_id, expires_at
        ), audited AS (
            INSERT INTO {audit}
                (tenant_id, actor_id, actor_label, action, target_type, target_id, data,
                 created_at)
            SELECT tenant_id, NULL, %(actor)s, %(action)s, %(target_type)s, tenant_id::text,
                   jsonb_build_object(
                       'expires_at', min(expires_at),
                       'count', count(*),
                       'licenses', jsonb_agg(id ORDER BY id)
                   ),
                   %(now)s
            FROM expired
            GROUP BY tenant_id, (expires_at AT TIME ZONE %(tz)s)::date
        )
        SELECT tenant_id, (expires_at AT TIME ZONE %(tz)s)::date, count(*)
        FROM expired
        GROUP BY 1, 2
    """  # noqa: S608 — table names come from model metadata, values are parameters
    params = {
        "active": License.Status.ACTIVE,
        "expired": License.Status.EXPIRED,
        "at": at,
        "limit": limit,
        "actor": actor_label,
        "action": EXPIRED_ACTION,
        "target_type": Tenant._meta.label_lower,
        "now": timezone.now(),
        "tz": str(BUSINESS_TZ),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {(tenant_id, day): n for tenant_id, day, n in cursor.fetchall()}


def _expire_batch_portable(*, at: dt.datetime, limit: int, actor_label: str) -> Groups:
    """SQLite (the embedded default) and any other database. The selected rows are locked
    (select_for_update; on SQLite the IMMEDIATE transaction already holds the write lock),
    so the compare-and-set update changes exactly the rows read here."""
    skip_locked = connection.features.has_select_for_update_skip_locked
    rows = list(
        License.objects.select_for_update(skip_locked=skip_locked)
        .filter(status=License.Status.ACTIVE, expires_at__lte=at)
        .values_list("id", "tenant_id", "expires_at")[:limit]
    )
    if not rows:
        return {}
    License.objects.filter(pk__in=[r[0] for r in rows], status=License.Status.ACTIVE).update(
        status=License.Status.EXPIRED
    )
    now = timezone.now()
    by_group: dict[tuple[int, dt.date], list[tuple[int, dt.datetime]]] = defaultdict(list)
    for pk, tenant_id, expires_at in rows:
        by_group[(tenant_id, business_date(expires_at))].append((pk, expires_at))
    # The same audit rows as the PostgreSQL statement: one per tenant and expiry date.
    AuditEvent.objects.bulk_create(
        [
            AuditEvent(
                tenant_id=tenant_id,
                actor_label=actor_label,
                action=EXPIRED_ACTION,
                target_type=Tenant._meta.label_lower,
                target_id=str(tenant_id),
                data={
                    "expires_at": min(e for _pk, e in items).isoformat(),
                    "count": len(items),
                    "licenses": sorted(pk for pk, _e in items),
                },
                created_at=now,
            )
            for (tenant_id, _day), items in by_group.items()
        ],
        batch_size=2000,
    )
    return {key: len(items) for key, items in by_group.items()}


def licenses_expire_due(
    *,
    at: dt.datetime | None = None,
    batch_size: int = EXPIRY_BATCH_SIZE,
    actor: str = "job:expirelicenses",
    send_inline: bool = False,
) -> ExpiryRun:
    """R5: record every license whose expiry instant has passed as expired, with its audit
    event, and hand each (tenant, expiry date) to the expiry-date notice.

    This job only records the change: validity is computed from expires_at on every read,
    so a license stops counting at its expiry instant whether or not the job has run.
    Cost grows with the licenses due (the partial index license_active_exp_idx holds only
    stored-active rows), not with all licenses."""
    at = at or timezone.now()
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    expire_batch = (
        _expire_batch_postgresql if connection.vendor == "postgresql" else _expire_batch_portable
    )
    run = ExpiryRun()
    groups: set[tuple[int, dt.date]] = set()
    while True:
        with transaction.atomic():
            batch = expire_batch(at=at, limit=batch_size, actor_label=actor)
        expired = sum(batch.values())
        run.expired += expired
        groups.update(batch)
        if expired < batch_size:
            # A short batch means no unlocked due row was left: rows a concurrent run holds
            # are that run's to finish (its lock, then the status re-check, keep them from
            # being expired or audited twice). A row changed by someone else during the
            # statement is left for the next run: the stored status is a record, never
            # what makes a license invalid (R5).
            break
    notices = expiry_notices_claim(groups=groups, at=at)
    requeued = reminders_requeue_stale(at=at)
    run.notices, run.requeued = len(notices), len(requeued)
    reminders_dispatch(reminder_ids=notices + requeued, inline=send_inline)
    logger.info("expirelicenses: %s", run.as_dict())
    return run


# --- R11: claims ----------------------------------------------------------------------------


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
    Inline (the commands' --send-now, for a machine without a worker) sends them here."""
    if not reminder_ids:
        return
    ids = list(reminder_ids)

    def queue() -> None:
        from licensing.tasks import send_reminder_emails

        for start in range(0, len(ids), SEND_CHUNK):
            chunk = ids[start : start + SEND_CHUNK]
            try:
                send_reminder_emails.delay(chunk)
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

    transaction.on_commit(send_now if inline else queue)


def reminders_send_many(*, reminder_ids: list[int]) -> dict[str, int]:
    """Send a chunk of reminders one by one. One that fails is handed to the single-reminder
    task, which retries it with backoff, and the chunk goes on with the others."""
    outcomes: dict[str, int] = defaultdict(int)
    for reminder_id in reminder_ids:
        try:
            outcomes[reminder_send(reminder_id=reminder_id)] += 1
        except Exception:
            logger.warning("reminder %s: send failed; retrying on its own", reminder_id)
            outcomes["retrying"] += 1
            _retry_later(reminder_id)
    return dict(outcomes)


def _retry_later(reminder_id: int) -> None:
    from licensing.tasks import send_reminder_email

    try:
        send_reminder_email.apply_async((reminder_id,), countdown=RETRY_FIRST_DELAY)
    except Exception:
        # Broker down, or (eager tasks) the retries failed too: it stays pending and the
        # next run queues it again.
        logger.exception("reminder %s: could not queue its retry", reminder_id)


# --- R11: the reminder job ------------------------------------------------------------------


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
        License.objects.exclude(status=License.Status.REFUNDED)
        .filter(
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
        day = business_date(expires_at)
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


# --- R11: one email -------------------------------------------------------------------------

FULL, DEGRADED, NONE = "full", "degraded", "none"
SERVICE_LEVELS = {
    FULL: _("full service"),
    DEGRADED: _("degraded service"),
    NONE: _("no service"),
}


def service_level(*, licenses_valid: int, licenses_required: int) -> str:
    """R6 in one word: no valid license → none; enough for its cameras → full; else degraded."""
    if licenses_valid <= 0:
        return NONE
    return FULL if licenses_valid >= licenses_required else DEGRADED


@dataclass
class DeviceChange:
    """What one device has before the expiry date and keeps on it."""

    device: FieldDevice
    licenses_required: int
    licenses_before: int
    licenses_after: int
    level_before: str
    level_after: str
    cameras_enabled: int
    cameras_before: int
    cameras_after: int
    expiring: int  # of its licenses, those of this expiry date

    @property
    def changes(self) -> bool:
        return self.level_before != self.level_after or self.cameras_before != self.cameras_after

    @property
    def level_before_display(self) -> str:
        return str(SERVICE_LEVELS[self.level_before])

    @property
    def level_after_display(self) -> str:
        return str(SERVICE_LEVELS[self.level_after])


@dataclass(frozen=True)
class ListedLicense:
    label: str
    device: str  # the bound device's serial, or "" when unbound


@dataclass
class ReminderContent:
    licenses: list[ListedLicense]  # at most MAX_LISTED
    license_count: int
    unbound_count: int
    devices: list[DeviceChange]  # at most MAX_LISTED
    device_count: int

    @property
    def more_licenses(self) -> int:
        return self.license_count - len(self.licenses)

    @property
    def more_devices(self) -> int:
        return self.device_count - len(self.devices)


def reminder_content(*, tenant: Tenant, expiry_date: dt.date) -> ReminderContent:
    """The licenses of `tenant` expiring on `expiry_date` (not refunded; renewed ones have
    moved to a later date) and, for each device they are bound to, its service before the
    expiry date and on it (R6): licenses valid through the last service date vs those still
    valid after this expiry date, in the device's current binding. Three statements."""
    starts = start_of_business_day(expiry_date)
    ends = start_of_business_day(expiry_date + dt.timedelta(days=1))
    rows = list(
        License.objects.filter(tenant=tenant, expires_at__gte=starts, expires_at__lt=ends)
        .exclude(status=License.Status.REFUNDED)
        .order_by("id")
        .values_list("id", "device_id", "device__serial")
    )
    expiring_per_device: dict[int, int] = defaultdict(int)
    for _pk, device_id, _serial in rows:
        if device_id is not None:
            expiring_per_device[device_id] += 1
    counted = Q(licenses__status__in=[License.Status.ACTIVE, License.Status.EXPIRED])
    devices = list(
        FieldDevice.objects.filter(tenant=tenant, pk__in=list(expiring_per_device))
        .annotate(
            lic_before=Count("licenses", filter=counted & Q(licenses__expires_at__gte=starts)),
            lic_after=Count("licenses", filter=counted & Q(licenses__expires_at__gte=ends)),
        )
        .prefetch_related(Prefetch("cameras", queryset=Camera.objects.order_by("id")))
        .order_by("serial")[:MAX_LISTED]
    )
    changes = []
    for device in devices:
        required = device_requirement(device).licenses
        enabled = [c for c in device.cameras.all() if c.enabled]
        k = device.max_concurrent_streams
        before = choose_cameras(enabled, licenses_valid=device.lic_before, max_concurrent_streams=k)
        after = choose_cameras(enabled, licenses_valid=device.lic_after, max_concurrent_streams=k)
        changes.append(
            DeviceChange(
                device=device,
                licenses_required=required,
                licenses_before=device.lic_before,
                licenses_after=device.lic_after,
                level_before=service_level(
                    licenses_valid=device.lic_before, licenses_required=required
                ),
                level_after=service_level(
                    licenses_valid=device.lic_after, licenses_required=required
                ),
                cameras_enabled=len(enabled),
                cameras_before=len(before[0]),
                cameras_after=len(after[0]),
                expiring=expiring_per_device[device.pk],
            )
        )
    return ReminderContent(
        licenses=[ListedLicense(f"L-{pk}", serial or "") for pk, _d, serial in rows[:MAX_LISTED]],
        license_count=len(rows),
        unbound_count=sum(1 for _pk, device_id, _serial in rows if device_id is None),
        devices=changes,
        device_count=len(expiring_per_device),
    )


def reminder_recipients(*, tenant: Tenant) -> list[str]:
    """R11: every active owner and admin of the tenant."""
    return list(
        User.objects.filter(
            is_active=True,
            memberships__tenant=tenant,
            memberships__role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
        )
        .order_by("email")
        .values_list("email", flat=True)
        .distinct()
    )


def _reminder_finish(reminder: SentReminder, *, status: str, at: dt.datetime, **fields) -> bool:
    # Pending-only: a row another sender already finished is never rewritten.
    return bool(
        SentReminder.objects.filter(pk=reminder.pk, status=SentReminder.Status.PENDING).update(
            status=status, sent_at=at, lease_until=None, **fields
        )
    )


def reminder_send(*, reminder_id: int, at: dt.datetime | None = None) -> str:
    """Send one reminder, at most once. Returns what happened: "sent", "skipped" (nothing to
    say any more, or no one to tell) or "not_claimed" (finished already, or another sender
    holds it). A failed send raises after releasing the lease, so the Celery task retries
    it and, failing that, the next run queues it again."""
    now = at or timezone.now()
    # Compare-and-set claim (as healthchecks' sendalerts): only one sender gets 1 here.
    claimed = (
        SentReminder.objects.filter(pk=reminder_id, status=SentReminder.Status.PENDING)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .update(lease_until=now + SEND_LEASE, attempts=F("attempts") + 1)
    )
    if claimed != 1:
        return "not_claimed"
    reminder = SentReminder.objects.select_related("tenant").get(pk=reminder_id)
    tenant = reminder.tenant
    due = milestone_due((reminder.expiry_date - business_date(now)).days)
    if due is not None and due < reminder.milestone:
        # Its time passed unsent (the job or the mail server was down) and a later
        # milestone has come: that one is sent instead (R11).
        _reminder_finish(
            reminder,
            status=SentReminder.Status.SKIPPED,
            at=now,
            note="superseded by a later milestone",
        )
        return "skipped"
    content = reminder_content(tenant=tenant, expiry_date=reminder.expiry_date)
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
    message = reminder_message(reminder=reminder, content=content, recipients=recipients)
    try:
        message.send()
    except Exception as exc:
        SentReminder.objects.filter(pk=reminder.pk, status=SentReminder.Status.PENDING).update(
            lease_until=None, note=f"{type(exc).__name__}: {exc}"[:500]
        )
        raise
    # The mail server has it. Were the process to die right here, the row would stay
    # pending and be sent again after its lease: at-least-once is the most any mail
    # protocol allows; the lease keeps it to that one case.
    _reminder_finish(
        reminder,
        status=SentReminder.Status.SENT,
        at=now,
        recipients=recipients,
        license_count=content.license_count,
        note="",
    )
    return "sent"


def reminder_message(*, reminder: SentReminder, content: ReminderContent, recipients: list[str]):
    """The email, in the tenant's language: the renewal reminder (30, 7, 1 days before) or
    the expiry-date notice (which devices lost or reduced service)."""
    expiry_date = reminder.expiry_date
    prefix = (
        "emails/expiry_notice"
        if reminder.milestone == SentReminder.Milestone.EXPIRY_DATE
        else "emails/renewal_reminder"
    )
    return render_templated_email(
        to=recipients,
        template_prefix=prefix,
        language=reminder.tenant.language,
        context={
            "tenant": reminder.tenant,
            "milestone": reminder.milestone,
            "expiry_date": expiry_date,
            "last_service_date": expiry_date - dt.timedelta(days=1),
            "content": content,
            "licenses_url": f"{settings.SITE_URL}/licenses/",
        },
    )
