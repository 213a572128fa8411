"""Writes owned by billing, one module per concern (R2, R3, R4, R10):

- `orders`: placing an order at the tenant's contract price, cancelling one;
- `idempotency`: one order per Idempotency-Key, and the keys' purge;
- `payments`: confirming a bank transfer (issuing or renewing licenses), offline grants;
- `refunds`: refund requests and staff's decisions;
- `notifications`: the customer's emails about its orders (placed, paid, refund decided),
  sent by the services above inside their transactions (R13);
- `common`: who acted, and the order lock every money change takes first.

Billing sits on top of licensing: a payment issues or renews licenses through
licensing.services, a refund takes them back through it; licensing never calls billing.
Every public service here that locks a row or writes more than one is its own transaction.
The names below are billing's public service API (`from billing import services`).
"""

from billing.services.common import actor_label
from billing.services.idempotency import (
    IDEMPOTENCY_KEY_RETENTION,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    body_hash,
    idempotency_keys_purge,
    order_create_idempotent,
)
from billing.services.orders import (
    MAX_QUANTITY,
    MAX_RENEWAL_LICENSES,
    order_cancel,
    order_create,
)
from billing.services.payments import (
    MAX_REFERENCE_LENGTH,
    OFFLINE_GRANT_REFERENCE,
    Confirmation,
    order_confirm_payment,
    order_grant_offline,
)
from billing.services.refunds import (
    order_refund_request,
    order_refundable,
    refund_approve,
    refund_reject,
)

__all__ = [
    "IDEMPOTENCY_KEY_RETENTION",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "MAX_QUANTITY",
    "MAX_REFERENCE_LENGTH",
    "MAX_RENEWAL_LICENSES",
    "OFFLINE_GRANT_REFERENCE",
    "Confirmation",
    "actor_label",
    "body_hash",
    "idempotency_keys_purge",
    "order_cancel",
    "order_confirm_payment",
    "order_create",
    "order_create_idempotent",
    "order_grant_offline",
    "order_refund_request",
    "order_refundable",
    "refund_approve",
    "refund_reject",
]
