"""Staff's side of billing (R13): cancelling an order with a reason the customer is told,
and the morning digest of what waits (the new-refund-request notice is
billing.services.notifications.refund_request_notify_staff, sent by the request itself).

Every email is sent inside the transaction of the change it tells of, so it is stored with
the change (console.emails) and goes out only if the change commits.
"""

import datetime as dt

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.models import Order
from billing.services.notifications import (
    order_cancelled_notify,
    refund_request_notify_staff,  # noqa: F401 - re-export
)
from billing.staff_selectors import OVERDUE_AFTER, billing_queue, overdue_orders, review_queue
from console.emails import send_templated_email
from console.services import Actor
from console.staff import BILLING, REVIEWERS, staff_notice_recipients
from console.timeutils import business_date


def order_cancel_by_staff(*, order: Order | int, actor: Actor, reason: str = "") -> Order:
    """Cancel an order pending payment and tell the tenant's owners and admins and its extra
    recipients for orders and payments (as every order email), with the reason when staff
    gave one. The order lock (in order_cancel) makes a second click or a second staff member
    find it cancelled already: one cancellation, one email each."""
    reason = (reason or "").strip()
    with transaction.atomic():
        cancelled = services.order_cancel(order=order, reason=reason, actor=actor)
        order_cancelled_notify(cancelled, reason=reason)
    return cancelled


def staff_digest_send(*, at: dt.datetime | None = None) -> int:
    """R13: each morning, what waits — applications to review, orders unpaid for more than
    seven days, open refund requests — to Reviewers and Billing (or STAFF_NOTIFY_EMAILS),
    each their part; nothing when nothing waits. Returns the number of emails."""
    at = at or timezone.now()
    reviews = review_queue()
    billing = billing_queue(now=at)
    late_orders = overdue_orders(now=at) if billing.overdue_orders else []
    parts = {
        REVIEWERS: {"reviews": reviews} if reviews.total else {},
        BILLING: (
            {"billing": billing, "late_orders": late_orders}
            if billing.overdue_orders or billing.open_refunds
            else {}
        ),
    }
    # One email per address with all its parts: with STAFF_NOTIFY_EMAILS both groups'
    # parts go to the same people.
    per_address: dict[str, tuple[str, str, dict]] = {}
    for group, part in parts.items():
        if not part:
            continue
        for address, language in staff_notice_recipients(group):
            to, lang, context = per_address.get(address.lower(), (address, language, {}))
            per_address[address.lower()] = (to, lang, {**context, **part})
    sent = 0
    with transaction.atomic():
        for address, language, context in per_address.values():
            send_templated_email(
                to=[address],
                template_prefix="emails/staff_digest",
                context={
                    **context,
                    "date": business_date(at),
                    "overdue_days": OVERDUE_AFTER.days,
                    "admin_url": settings.SITE_URL + reverse("admin:index"),
                },
                language=language,
                # A re-run the same morning sends nothing new.
                dedup_key=f"staff-digest:{business_date(at).isoformat()}",
            )
            sent += 1
    return sent
