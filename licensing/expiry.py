"""The nightly expiry job (R5, R12): record every license whose expiry instant has passed
as expired, with its audit, and hand each (tenant, expiry date) to the expiry-date notice.

It only records the change: validity is computed from expires_at on every read
(licensing.rules), so a license stops counting at its expiry instant whether or not this
job has run.

Safe to re-run and to run twice at once: licenses are claimed with a compare-and-set update
(status active → expired), so only the run that changed a row audits it: one audit event
per tenant and expiry date per batch, listing the license ids (one row per license cost as
much as the UPDATE itself at a million licenses; bench/RESULTS.md). The notices are
SentReminder rows (licensing.reminders), unique per tenant, milestone and expiry date.
"""

import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from console.celery import enqueue
from console.models import AuditEvent, Tenant
from console.timeutils import BUSINESS_TZ
from licensing import rules
from licensing.models import License
from licensing.reminders import expiry_notices_claim, reminders_dispatch, reminders_requeue_stale
from licensing.webhook_events import expired_events_record, expiry_listening_tenants

logger = logging.getLogger(__name__)

# Licenses expired per statement: bounds lock time (and on SQLite memory) whatever the
# backlog. On PostgreSQL no license row reaches Python, only one row per tenant and expiry
# date, and each batch pays a fixed cost: 100,000 due licenses took 3.3 s in batches of
# 10,000 and 1.9 s in one batch (bench/expiry.py).
EXPIRY_BATCH_SIZE = 100_000

EXPIRED_ACTION = "license.expired"
# The worker's batch task (licensing.tasks), queued by name: tasks import this module.
EXPIRE_TASK = "licensing.tasks.expire_licenses"


@dataclass
class ExpiryRun:
    expired: int = 0
    notices: int = 0
    requeued: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"expired": self.expired, "notices": self.notices, "requeued": self.requeued}


# (tenant id, expiry date) → number of licenses the batch expired
Groups = dict[tuple[int, dt.date], int]


def _expire_batch_postgresql(
    *, at: dt.datetime, limit: int, actor_label: str, listening: set[int], hooked: list
) -> Groups:
    """One statement per batch: claim, update, audit.

    The batch is picked through the partial index license_active_exp_idx and updated by
    row address (ctid = ANY(ARRAY(…))): a TID scan whatever the table's size, where a join
    back on id lets the planner choose a hash join over every license. SKIP LOCKED lets a
    concurrent run take other rows instead of waiting; the `status = 'active'` re-check
    makes the UPDATE a compare-and-set, so a row another run expired meanwhile is neither
    counted nor audited. The audit rows (one per tenant and expiry date, with the license
    ids) come from UPDATE … RETURNING in the same statement: no license row travels to
    Python (memory and time grow with the batch, not with all licenses).

    `status = active AND expires_at <= at` is a stored status that rules.status_at no longer
    shows; `(expires_at AT TIME ZONE …)::date` is rules.expiry_date (both tested against
    the portable version, which calls the rules)."""
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
            RETURNING id, tenant_id, expires_at, device_id
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
        SELECT tenant_id, (expires_at AT TIME ZONE %(tz)s)::date, count(*),
               array_agg(ARRAY[id, coalesce(device_id, 0)] ORDER BY id)
                   FILTER (WHERE tenant_id = ANY(%(listening)s))
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
        # R15: the licenses of tenants with a listening webhook endpoint come back too (an
        # empty list, so no license row, when none listens).
        "listening": sorted(listening),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        groups = {}
        for tenant_id, day, n, pairs in cursor.fetchall():
            groups[(tenant_id, day)] = n
            hooked += [(pk, tenant_id, device_id or None, day) for pk, device_id in pairs or ()]
        return groups


def _expire_batch_portable(
    *, at: dt.datetime, limit: int, actor_label: str, listening: set[int], hooked: list
) -> Groups:
    """SQLite (the embedded default) and any other database. The selected rows are locked
    (select_for_update; on SQLite the IMMEDIATE transaction already holds the write lock),
    so the compare-and-set update changes exactly the rows read here."""
    skip_locked = connection.features.has_select_for_update_skip_locked
    rows = list(
        License.objects.select_for_update(skip_locked=skip_locked)
        .filter(status=License.Status.ACTIVE, expires_at__lte=at)
        .values_list("id", "tenant_id", "expires_at", "device_id")[:limit]
    )
    if not rows:
        return {}
    License.objects.filter(pk__in=[r[0] for r in rows], status=License.Status.ACTIVE).update(
        status=License.Status.EXPIRED
    )
    now = timezone.now()
    by_group: dict[tuple[int, dt.date], list[tuple[int, dt.datetime]]] = defaultdict(list)
    for pk, tenant_id, expires_at, device_id in rows:
        by_group[(tenant_id, rules.expiry_date(expires_at))].append((pk, expires_at))
        if tenant_id in listening:
            hooked.append((pk, tenant_id, device_id, rules.expiry_date(expires_at)))
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


@dataclass
class ExpiryBatch:
    """One batch's outcome: what it expired and whether more may be due."""

    expired: int
    notices: int
    more: bool


def licenses_expire_batch(
    *,
    at: dt.datetime,
    batch_size: int,
    actor: str,
    send_inline: bool = False,
    listening: set[int] | None = None,
) -> ExpiryBatch:
    """One batch in one transaction: up to `batch_size` licenses due at `at` recorded as
    expired, their audit events, and the expiry-date notices their (tenant, expiry date)
    groups are owed, claimed in the same transaction and queued once it commits.

    A re-run, whether the last one crashed before its commit or after it, does the next
    batch: a committed batch's rows are no longer stored-active and an uncommitted one
    left nothing behind, so no license is expired, audited or announced twice (the notice
    rows are unique per tenant, milestone and date). `more` is false once a batch came
    back short: no unlocked due row was left."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    expire_batch = (
        _expire_batch_postgresql if connection.vendor == "postgresql" else _expire_batch_portable
    )
    if listening is None:
        listening = expiry_listening_tenants()
    with transaction.atomic():
        hooked: list = []
        batch = expire_batch(
            at=at, limit=batch_size, actor_label=actor, listening=listening, hooked=hooked
        )
        # The batch's webhook events, set-based, in the batch's transaction.
        expired_events_record(rows=hooked, at=at)
        notices = expiry_notices_claim(groups=batch, at=at)
        reminders_dispatch(reminder_ids=notices, inline=send_inline)
    expired = sum(batch.values())
    return ExpiryBatch(expired=expired, notices=len(notices), more=expired >= batch_size)


def licenses_expire_due(
    *,
    at: dt.datetime | None = None,
    batch_size: int = EXPIRY_BATCH_SIZE,
    actor: str = "job:expirelicenses",
    send_inline: bool = False,
) -> ExpiryRun:
    """R5: record every license whose expiry instant has passed as expired, with its audit
    event, and hand each (tenant, expiry date) to the expiry-date notice; batch after batch
    in this process (the command, the benchmark). The worker runs the same batches as a
    chain of short tasks instead (licenses_expire_step).

    This job only records the change: validity is computed from expires_at on every read,
    so a license stops counting at its expiry instant whether or not the job has run.
    Cost grows with the licenses due (the partial index license_active_exp_idx holds only
    stored-active rows), not with all licenses."""
    at = at or timezone.now()
    run = ExpiryRun()
    # R15: tenants whose webhook endpoints want license.expired or device.service_changed.
    listening = expiry_listening_tenants()
    while True:
        batch = licenses_expire_batch(
            at=at,
            batch_size=batch_size,
            actor=actor,
            send_inline=send_inline,
            listening=listening,
        )
        run.expired += batch.expired
        run.notices += batch.notices
        if not batch.more:
            # A short batch means no unlocked due row was left: rows a concurrent run holds
            # are that run's to finish (its lock, then the status re-check, keep them from
            # being expired or audited twice). A row changed by someone else during the
            # statement is left for the next run: the stored status is a record, never
            # what makes a license invalid (R5).
            break
    run.requeued = _requeue_stale_reminders(at=at, send_inline=send_inline)
    logger.info("expirelicenses: %s", run.as_dict())
    return run


def _requeue_stale_reminders(*, at: dt.datetime, send_inline: bool) -> int:
    requeued = reminders_requeue_stale(at=at)
    reminders_dispatch(reminder_ids=requeued, inline=send_inline)
    return len(requeued)


# The worker's batches (licensing.tasks.expire_licenses): each a task of a few seconds, far
# inside the task's time limit and the broker's visibility timeout, so a worker killed
# mid-batch costs one batch's redelivery, not the night's job. On PostgreSQL 100,000
# licenses are one statement of about 2 s (bench/expiry.py); elsewhere every row passes
# through Python, so batches are smaller.
def task_batch_size() -> int:
    return EXPIRY_BATCH_SIZE if connection.vendor == "postgresql" else 10_000


def licenses_expire_step(
    *, at: dt.datetime | None, batch_size: int | None, actor: str
) -> dict[str, int | bool | str]:
    """One link of the worker's chain: one batch, then the next link is queued (same `at`,
    so the chain ends) or, after the last batch, stale reminders are queued again.

    The task is acknowledged late and re-run if its worker dies (Celery's acks_late and
    reject_on_worker_lost): licenses_expire_batch makes the re-run harmless. A next link
    queued twice (a worker killed between queueing it and acknowledging) makes two chains
    that share the remaining rows (SKIP LOCKED) and both end on a short batch."""
    at = at or timezone.now()
    batch_size = batch_size or task_batch_size()
    batch = licenses_expire_batch(at=at, batch_size=batch_size, actor=actor)
    result: dict[str, int | bool | str] = {
        "at": at.isoformat(),
        "expired": batch.expired,
        "notices": batch.notices,
        "more": batch.more,
    }
    if batch.more:
        enqueue(EXPIRE_TASK, at=at.isoformat(), batch_size=batch_size)
    else:
        result["requeued"] = _requeue_stale_reminders(at=at, send_inline=False)
        logger.info("expirelicenses (last batch): %s", result)
    return result
