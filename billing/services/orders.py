"""Orders (R2, R4): a customer's order pending payment, and its cancellation.

An order is priced at the tenant's contract price when it is placed (R2); a renewal names
licenses that must still be valid (R4). Payment is billing.services.payments, refunds
billing.services.refunds.
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import Order, OrderLicense, transfer_reference_new
from billing.pricing import MAX_AMOUNT, order_total, unit_price_for
from billing.services.common import actor_label, lock_order
from billing.services.notifications import order_placed_notify
from console.errors import Conflict, InvalidInput
from console.models import Tenant
from console.services import Actor, audit_record, tenant_require_active
from licensing import services as licensing
from licensing.models import License
from licensing.rules import check_years, whole_number

# A new-licenses order issues at most this many licenses (a large offline grant included);
# a renewal names at most MAX_RENEWAL_LICENSES licenses.
MAX_QUANTITY = 100_000
MAX_RENEWAL_LICENSES = 10_000
# Draws of a transfer reference before giving up (each collides with odds below 1e-9).
TRANSFER_REFERENCE_ATTEMPTS = 5


def _check_quantity(quantity: Any) -> None:
    if not whole_number(quantity) or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(
            _("Quantity must be a whole number from 1 to %(max)d.") % {"max": MAX_QUANTITY},
            errors={
                "quantity": [_("Enter a whole number from 1 to %(max)d.") % {"max": MAX_QUANTITY}]
            },
        )


def _renewal_licenses(tenant: Tenant, license_ids: Sequence[int], at: dt.datetime) -> list[int]:
    if not isinstance(license_ids, list | tuple) or not license_ids:
        raise InvalidInput(
            _("Name at least one license to renew."),
            errors={"licenses": [_("Name at least one license.")]},
        )
    if not all(whole_number(i) and i > 0 for i in license_ids):
        raise InvalidInput(
            _("License ids are positive whole numbers."),
            errors={"licenses": [_("License ids are positive whole numbers.")]},
        )
    if len(set(license_ids)) != len(license_ids):
        raise InvalidInput(
            _("Name each license once."), errors={"licenses": [_("Name each license once.")]}
        )
    if len(license_ids) > MAX_RENEWAL_LICENSES:
        raise InvalidInput(
            _("One renewal order renews at most %(max)d licenses.") % {"max": MAX_RENEWAL_LICENSES},
            errors={"licenses": [_("At most %(max)d licenses.") % {"max": MAX_RENEWAL_LICENSES}]},
        )
    found = {
        lic.pk: lic
        for lic in License.objects.filter(tenant=tenant, pk__in=license_ids).only(
            "id", "status", "starts_at", "expires_at"
        )
    }
    unknown = [i for i in license_ids if i not in found]
    if unknown:
        # Another tenant's license is "unknown" too: it must not be told apart from a missing one.
        raise InvalidInput(
            _("Unknown licenses: %(ids)s.") % {"ids": ", ".join(str(i) for i in unknown)},
            errors={"licenses": [_("No such license in this tenant: %(ids)s.") % {"ids": unknown}]},
        )
    licensing.licenses_check_renewable([found[i] for i in license_ids], at=at)
    return list(license_ids)


def _order_insert(**fields) -> Order:
    """Insert the order with a fresh transfer reference. Two orders drawing the same one of
    2**50 is rare but possible: the unique constraint refuses the second, which draws again
    (inside a savepoint, so the caller's transaction goes on)."""
    for attempt in range(TRANSFER_REFERENCE_ATTEMPTS):
        reference = transfer_reference_new()
        try:
            with transaction.atomic():
                return Order.objects.create(transfer_reference=reference, **fields)
        except IntegrityError:
            collided = Order.objects.filter(transfer_reference=reference).exists()
            if not collided or attempt == TRANSFER_REFERENCE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@transaction.atomic
def order_create(
    *,
    tenant: Tenant,
    kind: str,
    years: int,
    quantity: int | None = None,
    license_ids: Sequence[int] | None = None,
    channel: str = Order.Channel.ONLINE,
    actor: Actor = None,
    at: dt.datetime | None = None,
) -> Order:
    """An order pending payment, priced at the tenant's contract price now (R2).

    new: `quantity` licenses for `years`. renewal: the named licenses, each for `years`
    (quantity = their number); they must be this tenant's and still valid (R4)."""
    at = at or timezone.now()
    # R9 on the committed status, under the tenant's row lock: an order cannot slip in
    # beside a suspension (tenant_set_status takes the same lock). The price is read there too.
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    tenant_require_active(tenant)
    check_years(years)
    renew_ids: list[int] = []
    if kind == Order.Kind.NEW:
        if license_ids:
            raise InvalidInput(
                _("A new-licenses order names no licenses; use a renewal to extend some."),
                errors={"licenses": [_("Only for renewals.")]},
            )
        _check_quantity(quantity)
    elif kind == Order.Kind.RENEWAL:
        renew_ids = _renewal_licenses(tenant, license_ids or [], at)
        if quantity is not None and quantity != len(renew_ids):
            raise InvalidInput(
                _("A renewal's quantity is the number of licenses it names."),
                errors={"quantity": [_("Must equal the number of licenses.")]},
            )
        quantity = len(renew_ids)
    else:
        raise InvalidInput(
            _("Kind must be “new” or “renewal”."),
            errors={"kind": [_("Choose “new” or “renewal”.")]},
        )
    if channel not in Order.Channel.values:
        raise InvalidInput(_("Unknown channel."), errors={"channel": [_("Unknown channel.")]})
    assert quantity is not None
    unit_price = unit_price_for(tenant)
    total = order_total(unit_price=unit_price, quantity=quantity, years=years)
    if total > MAX_AMOUNT:
        raise InvalidInput(
            _("This order's total is too large for one order; split it."),
            errors={"quantity": [_("The total must not exceed %(max)s.") % {"max": MAX_AMOUNT}]},
        )
    order = _order_insert(
        tenant=tenant,
        kind=kind,
        channel=channel,
        quantity=quantity,
        years=years,
        unit_price=unit_price,
        total=total,
        currency=settings.CURRENCY,
        created_by=actor_label(actor),
        created_at=at,
    )
    if renew_ids:
        OrderLicense.objects.bulk_create(
            [OrderLicense(order=order, license_id=i) for i in renew_ids], batch_size=2000
        )
    audit_record(
        tenant=tenant,
        action="order.created",
        target=order,
        actor=actor,
        data={
            "kind": kind,
            "channel": channel,
            "quantity": quantity,
            "years": years,
            "unit_price": str(unit_price),
            "total": str(order.total),
            **({"licenses": renew_ids} if renew_ids else {}),
        },
    )
    # R13: stored with the order, sent once it commits.
    order_placed_notify(order)
    return order


@transaction.atomic
def order_cancel(*, order: Order | int, reason: str = "", actor: Actor = None) -> Order:
    """Cancel an order still pending payment (a paid one is refunded instead)."""
    order = lock_order(order)
    if order.status != Order.Status.PENDING_PAYMENT:
        raise Conflict(
            _("Order #%(id)s is %(status)s; only an order pending payment can be cancelled.")
            % {"id": order.pk, "status": order.get_status_display()},
            code="ORDER_NOT_PENDING",
        )
    order_mark_cancelled(
        order, reason=reason or _("Cancelled by staff."), actor=actor, at=timezone.now()
    )
    return order


def order_mark_cancelled(order: Order, *, reason: str, actor: Actor, at: dt.datetime) -> None:
    """Record a locked order's cancellation, in the caller's transaction."""
    order.status = Order.Status.CANCELLED
    order.cancelled_at = at
    order.cancel_reason = reason[:500]
    order.save(update_fields=["status", "cancelled_at", "cancel_reason"])
    audit_record(
        tenant=order.tenant,
        action="order.cancelled",
        target=order,
        actor=actor,
        data={"reason": order.cancel_reason},
    )
