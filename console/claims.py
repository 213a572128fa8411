"""The one claim of the work queues kept in the database: the email outbox (R13) and webhook
deliveries (R15). A row is due when it is pending, its next attempt has come and no sender
holds its lease.

Compare-and-set, as healthchecks' `sendalerts` claims its flips: the UPDATE repeats the "due
and not leased" condition, so of two senders that read the same ids only one UPDATE matches
each row (on PostgreSQL the second waits for the first to commit, then finds the row
leased). Only the holder of the claim token may then mark a row done."""

import datetime as dt
import uuid

from django.db.models import F, Q, QuerySet

PENDING = "pending"


def due(rows: QuerySet, *, now: dt.datetime) -> QuerySet:
    """The rows of `rows` that are due at `now`."""
    return rows.filter(status=PENDING, next_attempt_at__lte=now).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    )


def claim(
    candidates: QuerySet, *, now: dt.datetime, lease: dt.timedelta, limit: int
) -> tuple[str, list[int]]:
    """Lease up to `limit` of `candidates` (due rows, narrowed by the caller), oldest due
    first, and count the attempt. Returns the claim token ("" when nothing was due) and the
    ids claimed with it (none when another sender took them first)."""
    ids = list(candidates.order_by("next_attempt_at", "id").values_list("id", flat=True)[:limit])
    if not ids:
        return "", []
    token = uuid.uuid4().hex
    claimed = (
        due(candidates.model.objects.all(), now=now)
        .filter(pk__in=ids)
        .update(lease_until=now + lease, claim_token=token, attempts=F("attempts") + 1)
    )
    return token, ids if claimed else []
