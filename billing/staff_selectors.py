"""What waits for staff (R13): the admin index's work queue and the morning digest.

A constant number of queries whatever the table sizes: one aggregate of counts per kind of
work and a few of the oldest rows each (the state and status columns are indexed for the
changelists' filters). Billing sits on top of console, so it reads beta applications too.
"""

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Q, QuerySet

from billing.models import Order, RefundRequest
from console.models import BetaApplication

# An order still unpaid after this long is flagged in the queue and listed in the digest.
OVERDUE_AFTER = dt.timedelta(days=7)
ROWS_SHOWN = 5

WAITING_STATES = (
    BetaApplication.State.SUBMITTED,
    BetaApplication.State.IN_REVIEW,
    BetaApplication.State.APPROVED,
)


@dataclass
class ReviewQueue:
    # state → count, for the states that wait for a reviewer (approved: to be confirmed)
    counts: dict[str, int]
    oldest: list[BetaApplication] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class BillingQueue:
    pending_orders: int
    overdue_orders: int
    oldest_orders: list[Order]
    open_refunds: int
    oldest_refunds: list[RefundRequest]

    @property
    def total(self) -> int:
        return self.pending_orders + self.open_refunds


def review_queue(*, rows: int = ROWS_SHOWN) -> ReviewQueue:
    counts = BetaApplication.objects.aggregate(
        **{state: Count("pk", filter=Q(state=state)) for state in WAITING_STATES}
    )
    oldest = list(
        BetaApplication.objects.filter(state__in=WAITING_STATES)
        .order_by("state_changed_at", "pk")
        .only("pk", "company_name", "state", "state_changed_at", "created_at")[:rows]
    )
    return ReviewQueue(counts=counts, oldest=oldest)


def _pending_orders() -> QuerySet[Order]:
    return Order.objects.filter(status=Order.Status.PENDING_PAYMENT)


def billing_queue(*, now: dt.datetime, rows: int = ROWS_SHOWN) -> BillingQueue:
    overdue_before = now - OVERDUE_AFTER
    orders = _pending_orders().aggregate(
        pending=Count("pk"), overdue=Count("pk", filter=Q(created_at__lt=overdue_before))
    )
    refunds = RefundRequest.objects.filter(status=RefundRequest.Status.REQUESTED)
    return BillingQueue(
        pending_orders=orders["pending"],
        overdue_orders=orders["overdue"],
        oldest_orders=list(
            _pending_orders().select_related("tenant").order_by("created_at", "pk")[:rows]
        ),
        open_refunds=refunds.count(),
        oldest_refunds=list(
            refunds.select_related("order__tenant").order_by("requested_at", "pk")[:rows]
        ),
    )


def overdue_orders(*, now: dt.datetime, rows: int = 50) -> list[Order]:
    """Orders unpaid for more than OVERDUE_AFTER, oldest first (the digest lists them)."""
    return list(
        _pending_orders()
        .filter(created_at__lt=now - OVERDUE_AFTER)
        .select_related("tenant")
        .order_by("created_at", "pk")[:rows]
    )
