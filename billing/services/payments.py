"""Payment confirmation (R3, R4): staff confirm a bank transfer, or a grant is paid offline.

A payment issues a new-licenses order's licenses, valid from the payment instant (R3), or
extends a renewal's licenses from their current last service date (R4), through
licensing.services, in the transaction that locks the order and records the Payment.
"""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import Order, OrderLicense, Payment
from billing.services.common import actor_label, actor_user, lock_order
from billing.services.notifications import payment_confirmed_notify
from billing.services.orders import order_create, order_mark_cancelled
from console.errors import Conflict, InvalidInput, ServiceError
from console.models import Tenant
from console.services import Actor, audit_record
from console.webhooks import webhook_event_record
from licensing import services as licensing

MAX_REFERENCE_LENGTH = 100
OFFLINE_GRANT_REFERENCE = "offline-grant"


def _link_licenses(order_id: int, license_ids: list[int]) -> None:
    """Record which licenses an order issued. A grant may issue 100,000: bulk_create would
    build as many model objects (seconds of Python), so this is one set-based statement on
    PostgreSQL and a C-level executemany elsewhere."""
    table = connection.ops.quote_name(OrderLicense._meta.db_table)
    order_col = connection.ops.quote_name(OrderLicense._meta.get_field("order").column)
    license_col = connection.ops.quote_name(OrderLicense._meta.get_field("license").column)
    # Identifiers come from the model's metadata, values are bound parameters.
    columns = f"{table} ({order_col}, {license_col})"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {columns} SELECT %s, unnest(%s::bigint[])",
                [order_id, license_ids],
            )
        else:
            cursor.executemany(
                f"INSERT INTO {columns} VALUES (%s, %s)",  # noqa: S608
                [(order_id, i) for i in license_ids],
            )


@dataclass
class Confirmation:
    order: Order
    payment: Payment
    license_ids: list[int] = field(default_factory=list)


def _check_reference(reference: Any) -> str:
    reference = (reference or "").strip() if isinstance(reference, str | None) else ""
    if not reference:
        raise InvalidInput(
            _("Enter the payment's bank reference."),
            errors={"reference": [_("This field is required.")]},
        )
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidInput(
            _("The reference is at most %(max)d characters.") % {"max": MAX_REFERENCE_LENGTH},
            errors={
                "reference": [_("At most %(max)d characters.") % {"max": MAX_REFERENCE_LENGTH}]
            },
        )
    return reference


def order_confirm_payment(
    *,
    order: Order | int,
    reference: str,
    actor: Actor = None,
    at: dt.datetime | None = None,
) -> Confirmation:
    """Staff confirm an order's bank transfer: in one transaction, lock the order, record
    the Payment and issue its licenses (new: valid from this instant, R3) or extend them
    (renewal: from their current last service date, R4).

    The order lock makes a second confirmation — later or at the same moment — wait and
    then find the order paid (ORDER_ALREADY_PAID): nothing is issued twice. A renewal paid
    after any of its licenses expired is refused and the order cancelled (R4); that
    cancellation is committed before the refusal is raised."""
    reference = _check_reference(reference)
    error: ServiceError | None = None
    with transaction.atomic():
        order = lock_order(order)
        if order.status == Order.Status.PAID:
            payment = Payment.objects.filter(order=order).first()
            raise Conflict(
                _("Order #%(id)s is already paid (reference %(ref)s); nothing was changed.")
                % {"id": order.pk, "ref": payment.reference if payment else "?"},
                code="ORDER_ALREADY_PAID",
            )
        if order.status != Order.Status.PENDING_PAYMENT:
            raise Conflict(
                _("Order #%(id)s is %(status)s, not pending payment; nothing was changed.")
                % {"id": order.pk, "status": order.get_status_display()},
                code="ORDER_NOT_PENDING",
            )
        # The payment instant is taken under the lock: it is when the order became paid.
        paid_at = at or timezone.now()
        audit_data = {"order": order.pk}
        license_ids: list[int] = []
        if order.kind == Order.Kind.NEW:
            issued = licensing.licenses_issue(
                tenant=order.tenant,
                quantity=order.quantity,
                years=order.years,
                paid_at=paid_at,
                actor=actor,
                audit_data=audit_data,
            )
            license_ids = [lic.pk for lic in issued]
            _link_licenses(order.pk, license_ids)
        else:
            links = list(OrderLicense.objects.filter(order=order).order_by("license_id"))
            try:
                with transaction.atomic():
                    extensions = licensing.licenses_renew(
                        tenant=order.tenant,
                        license_ids=[link.license_id for link in links],
                        years=order.years,
                        at=paid_at,
                        actor=actor,
                    )
            except Conflict as exc:
                # R4: a renewal paid too late is cancelled; the customer buys new licenses.
                reason = _(
                    "Renewal refused: %(detail)s The order has been cancelled; "
                    "return the payment or let the customer buy new licenses."
                ) % {"detail": exc.detail}
                order_mark_cancelled(order, reason=reason, actor=actor, at=paid_at)
                error = Conflict(reason, code="LICENSE_EXPIRED", extra=exc.extra)
            else:
                # Record each license's expiry before and after, so a refund can take exactly
                # this extension back (R10). One UPDATE per distinct pair of expiries.
                pairs: dict[tuple[dt.datetime, dt.datetime], list[int]] = {}
                for ext in extensions:
                    key = (ext.previous_expires_at, ext.new_expires_at)
                    pairs.setdefault(key, []).append(ext.license_id)
                for (previous, new), ids in pairs.items():
                    OrderLicense.objects.filter(order=order, license_id__in=ids).update(
                        previous_expires_at=previous, new_expires_at=new
                    )
                license_ids = [link.license_id for link in links]
        if error is None:
            payment = Payment.objects.create(
                order=order,
                reference=reference,
                amount=order.total,
                currency=order.currency,
                confirmed_by_user=actor_user(actor),
                confirmed_by=actor_label(actor),
                confirmed_at=paid_at,
            )
            order.status = Order.Status.PAID
            order.paid_at = paid_at
            order.save(update_fields=["status", "paid_at"])
            audit_record(
                tenant=order.tenant,
                action="order.paid",
                target=order,
                actor=actor,
                data={
                    "reference": reference,
                    "amount": str(order.total),
                    "kind": order.kind,
                    "licenses": len(license_ids),
                },
            )
            # R13: stored with the payment, sent once it commits.
            payment_confirmed_notify(order, payment)
            # R15: with the payment too.
            webhook_event_record(
                tenant=order.tenant,
                type="order.paid",
                data={
                    "order": order.pk,
                    "kind": order.kind,
                    "total": str(order.total),
                    "currency": order.currency,
                    "paid_at": paid_at,
                    "licenses": license_ids,
                },
            )
    if error is not None:
        raise error
    return Confirmation(order=order, payment=payment, license_ids=license_ids)


@transaction.atomic
def order_grant_offline(
    *,
    tenant: Tenant,
    quantity: int,
    years: int = 1,
    reference: str = OFFLINE_GRANT_REFERENCE,
    actor: Actor = None,
) -> Confirmation:
    """`grantlicenses`: a deal settled outside the console is recorded as a real order
    (channel "offline", at the tenant's contract price) and paid through the same
    confirmation as a bank transfer, so its licenses follow R3 and show in the totals."""
    order = order_create(
        tenant=tenant,
        kind=Order.Kind.NEW,
        quantity=quantity,
        years=years,
        channel=Order.Channel.OFFLINE,
        actor=actor,
    )
    return order_confirm_payment(order=order, reference=reference, actor=actor)
