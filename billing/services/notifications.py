"""R13: what billing tells a tenant's owners and admins (and the extra recipients it names
for orders and payments) — an order placed, a payment confirmed, an order cancelled by
staff, a refund decided.

Each function is called by the service that made the change, inside its transaction, so the
email is stored with the change (console.emails) and goes out only if it commits. One email
per recipient, in the recipient's language (their saved language, else the tenant's).
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.urls import reverse

from billing.models import Order, OrderLicense, Payment, RefundRequest
from console.emails import send_templated_email
from console.models import NotificationRecipient, Tenant
from console.notify_settings import tenant_recipients_for
from console.staff import BILLING, staff_notice_recipients
from licensing.models import License
from licensing.rules import last_service_date

# A grant may issue 100,000 licenses: an email names the first ones of each expiry.
LICENSE_IDS_SHOWN = 20


def payee() -> dict[str, str]:
    """Where every tenant transfers money (PAYEE_*)."""
    return {
        "name": settings.PAYEE_NAME,
        "bank": settings.PAYEE_BANK,
        "account": settings.PAYEE_ACCOUNT,
    }


def seller() -> dict[str, str]:
    """Who sells, as receipts print it (SELLER_*)."""
    return {
        "name": settings.SELLER_NAME,
        "address": settings.SELLER_ADDRESS,
        "tax_id": settings.SELLER_TAX_ID,
    }


def order_payment_deadline(order: Order) -> dt.datetime | None:
    """R4: a renewal is paid in time only while all its licenses are valid, so its deadline
    is the earliest expiry among them. A new-licenses order has none."""
    if order.kind != Order.Kind.RENEWAL:
        return None
    return License.objects.filter(order_links__order=order).aggregate(first=Min("expires_at"))[
        "first"
    ]


@dataclass(frozen=True)
class LicenseGroup:
    """Licenses of one order that share an expiry: what a payment email lists."""

    count: int
    expires_at: dt.datetime
    last_service_date: dt.date
    license_ids: list[int]

    @property
    def more(self) -> int:
        return self.count - len(self.license_ids)


def order_license_groups(order: Order) -> list[LicenseGroup]:
    """The order's licenses by expiry (for a renewal, the expiry after it), earliest first."""
    licenses = License.objects.filter(order_links__order=order)
    groups = []
    for row in licenses.values("expires_at").annotate(count=Count("id")).order_by("expires_at"):
        ids = list(
            licenses.filter(expires_at=row["expires_at"])
            .order_by("id")
            .values_list("id", flat=True)[:LICENSE_IDS_SHOWN]
        )
        groups.append(
            LicenseGroup(
                count=row["count"],
                expires_at=row["expires_at"],
                last_service_date=last_service_date(row["expires_at"]),
                license_ids=ids,
            )
        )
    return groups


def _absolute(url_name: str, *args: Any) -> str:
    return settings.SITE_URL + reverse(url_name, args=args)


def _send(tenant: Tenant, template_prefix: str, context: dict[str, Any], dedup_key: str) -> int:
    """One email per active owner and admin, each in their language (R13), and per extra
    recipient the tenant names for orders and payments. `dedup_key` names the notice, so one
    that a retried caller repeats is stored once per recipient."""
    recipients = tenant_recipients_for(tenant, kind=NotificationRecipient.Kind.BILLING)
    send_templated_email(
        recipients=recipients,
        template_prefix=template_prefix,
        context={"tenant": tenant, **context},
        dedup_key=dedup_key,
    )
    return len(recipients)


def order_placed_notify(order: Order) -> int:
    """R13: an order awaits the customer's bank transfer: amount, payee, transfer reference,
    and for a renewal the moment by which the payment must be confirmed (R4)."""
    if order.channel != Order.Channel.ONLINE:
        # An offline grant was settled outside the console: there is nothing to transfer.
        return 0
    return _send(
        order.tenant,
        "emails/order_placed",
        {
            "order": order,
            "payee": payee(),
            "deadline": order_payment_deadline(order),
            "renewed_licenses": list(
                OrderLicense.objects.filter(order=order)
                .order_by("license_id")
                .values_list("license_id", flat=True)[:LICENSE_IDS_SHOWN]
            ),
            "order_url": _absolute("order-detail", order.pk),
        },
        dedup_key=f"order-placed:{order.pk}",
    )


def payment_confirmed_notify(order: Order, payment: Payment) -> int:
    """R13: the order is paid; its licenses are issued (R3) or renewed (R4) until…"""
    return _send(
        order.tenant,
        "emails/payment_confirmed",
        {
            "order": order,
            "payment": payment,
            "groups": order_license_groups(order),
            "order_url": _absolute("order-detail", order.pk),
            "receipt_url": _absolute("billing:order-receipt", order.pk),
            "licenses_url": _absolute("licenses"),
        },
        dedup_key=f"order-paid:{order.pk}",
    )


def order_cancelled_notify(order: Order, *, reason: str) -> int:
    """R13: staff cancelled an order pending payment; the reason when staff gave one."""
    return _send(
        order.tenant,
        "emails/order_cancelled",
        {"order": order, "reason": reason, "order_url": _absolute("order-detail", order.pk)},
        dedup_key=f"order-cancelled:{order.pk}",
    )


def refund_decided_notify(refund_request: RefundRequest, order: Order) -> int:
    """R13: staff approved or rejected a refund request; the reason is staff's note (required
    for a rejection, R13)."""
    return _send(
        order.tenant,
        "emails/refund_decided",
        {
            "order": order,
            "refund": refund_request,
            "approved": refund_request.status == RefundRequest.Status.APPROVED,
            "reason": refund_request.decision_note,
            "order_url": _absolute("order-detail", order.pk),
            "receipt_url": _absolute("billing:order-receipt", order.pk),
        },
        dedup_key=f"refund-decided:{refund_request.pk}",
    )


def refund_request_notify_staff(refund_request: RefundRequest) -> int:
    """R13: Billing (or STAFF_NOTIFY_EMAILS) hears of a new refund request. Called in the
    request's transaction. Returns the number of emails."""
    recipients = staff_notice_recipients(BILLING)
    url = settings.SITE_URL + reverse(
        "admin:billing_refundrequest_change", args=[refund_request.pk]
    )
    send_templated_email(
        recipients=recipients,
        template_prefix="emails/staff_refund_requested",
        context={
            "refund": refund_request,
            "order": refund_request.order,
            "tenant": refund_request.order.tenant,
            "admin_url": url,
        },
        dedup_key=f"refund-requested:{refund_request.pk}:staff",
    )
    return len(recipients)
