"""Idempotent order creation (CONTRACT.md): one order per (tenant, Idempotency-Key).

The same key with the same body returns the first order; with another body it is refused.
Keys are kept at least the 24 hours the contract promises; the purge keeps them a week.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import IdempotencyKey, Order
from console.errors import Conflict, InvalidInput
from console.models import Tenant
from console.services import Actor

MAX_IDEMPOTENCY_KEY_LENGTH = 255
# CONTRACT.md: keys are kept at least 24 hours; the purge keeps them a week.
IDEMPOTENCY_KEY_RETENTION = dt.timedelta(days=7)


def body_hash(body: Any) -> str:
    """The canonical form of a JSON body: same data, same hash, whatever the key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(tenant: Tenant, key: str, digest: str) -> Order | None:
    row = IdempotencyKey.objects.select_related("order").filter(tenant=tenant, key=key).first()
    if row is None:
        return None
    if row.body_hash != digest:
        raise Conflict(
            _("This Idempotency-Key was already used with another request body."),
            code="IDEMPOTENCY_KEY_REUSED",
            extra={"order": row.order_id},
        )
    return row.order


def order_create_idempotent(
    *,
    tenant: Tenant,
    idempotency_key: str | None,
    body: Any,
    create: Callable[[], Order],
    actor: Actor = None,
) -> tuple[Order, bool]:
    """Create the order `create()` makes, once per (tenant, key): the same key with the same
    body returns the first order (created=False); with another body it is refused.

    Two requests racing with one key both try to insert the key row; the unique constraint
    lets one win, the loser's savepoint (its order included) rolls back, and it returns the
    winner's order. Nothing is stored for a request that fails, so a corrected retry with
    the same key goes through."""
    key = (idempotency_key or "").strip()
    if not key:
        raise InvalidInput(
            _("The Idempotency-Key header is required."), code="IDEMPOTENCY_KEY_REQUIRED"
        )
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            _("The Idempotency-Key header is at most %(max)d characters.")
            % {"max": MAX_IDEMPOTENCY_KEY_LENGTH},
            code="IDEMPOTENCY_KEY_INVALID",
        )
    digest = body_hash(body)
    existing = _replay(tenant, key, digest)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            order = create()
            IdempotencyKey.objects.create(
                tenant=tenant, key=key, body_hash=digest, order=order, created_at=timezone.now()
            )
    except IntegrityError:
        existing = _replay(tenant, key, digest)
        if existing is None:
            raise
        return existing, False
    return order, True


def idempotency_keys_purge(
    *, older_than: dt.timedelta = IDEMPOTENCY_KEY_RETENTION, now: dt.datetime | None = None
) -> int:
    """Delete keys older than `older_than` (never less than the 24 hours CONTRACT.md keeps)."""
    older_than = max(older_than, dt.timedelta(hours=24))
    cutoff = (now or timezone.now()) - older_than
    deleted, _detail = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted
