"""Reads owned by billing. The tenant is the first argument of every selector."""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, DecimalField, Prefetch, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from billing.models import MONEY_DIGITS, MONEY_PLACES, Order, OrderLicense, RefundRequest
from billing.pricing import order_total, unit_price_for
from console.models import Membership, Tenant, User
from licensing.rules import STANDARD_PIXELS, requirement


@dataclass(frozen=True)
class Quote:
    aggregate_pixels: int
    standard_pixels: int
    ratio: str
    licenses: int
    unit_price: Decimal
    years: int
    total: Decimal
    currency: str


def quote_compute(
    tenant: Tenant,
    *,
    cameras: Sequence[tuple[int, int]],
    max_concurrent_streams: int | None,
    years: int,
) -> Quote:
    """R1 + R2: how many licenses these cameras need and what they cost this tenant.

    Inputs are validated by the caller (the API's serializer holds the R1 limits)."""
    req = requirement([w * h for w, h in cameras], max_concurrent_streams)
    unit_price = unit_price_for(tenant)
    return Quote(
        aggregate_pixels=req.aggregate_pixels,
        standard_pixels=STANDARD_PIXELS,
        ratio=req.ratio_display,
        licenses=req.licenses,
        unit_price=unit_price,
        years=years,
        total=order_total(unit_price=unit_price, quantity=req.licenses, years=years),
        currency=settings.CURRENCY,
    )


def _with_links(qs: QuerySet[Order]) -> QuerySet[Order]:
    links = OrderLicense.objects.order_by("license_id").only("id", "order_id", "license_id")
    refunds = RefundRequest.objects.order_by("-requested_at", "-id")
    return qs.prefetch_related(
        Prefetch("order_licenses", queryset=links),
        Prefetch("refund_requests", queryset=refunds),
    ).select_related("payment")


def order_list(
    tenant: Tenant, *, status: str | None = None, kind: str | None = None
) -> QuerySet[Order]:
    qs = Order.objects.filter(tenant=tenant)
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    return _with_links(qs.order_by("-created_at", "-id"))


ORDER_SORTS = {
    "-created": ("-created_at", "-id"),
    "created": ("created_at", "id"),
    "-total": ("-total", "-id"),
    "total": ("total", "id"),
}


def order_search(
    tenant: Tenant, *, q: str = "", status: str = "", kind: str = "", sort: str = "-created"
) -> QuerySet[Order]:
    """The order list: an order number ("#12", "12") or a transfer reference, status, kind,
    sort; the page shows columns of the order row only."""
    qs = Order.objects.filter(tenant=tenant)
    q = q.strip()
    if q:
        number = q.removeprefix("#")
        match = Q(transfer_reference__iexact=q)
        if number.isdigit() and len(number) <= 18:
            match |= Q(pk=int(number))
        qs = qs.filter(match)
    if status:
        qs = qs.filter(status=status)
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by(*ORDER_SORTS.get(sort, ORDER_SORTS["-created"]))


def order_get(tenant: Tenant, order_id: int) -> Order | None:
    return _with_links(Order.objects.filter(tenant=tenant, pk=order_id)).first()


def order_tenant_of_member(user: User, order_id: int) -> int | None:
    """The tenant id of an order of a tenant `user` is a member of; None otherwise."""
    return (
        Order.objects.filter(
            pk=order_id, tenant_id__in=Membership.objects.filter(user=user).values("tenant_id")
        )
        .values_list("tenant_id", flat=True)
        .first()
    )


def order_for_receipt(user: User, order_id: int) -> Order | None:
    """A paid (or since refunded) order of a tenant `user` is a member of; None otherwise,
    so another tenant's order is a 404 like a missing one."""
    tenant_ids = Membership.objects.filter(user=user).values("tenant_id")
    return (
        Order.objects.filter(
            pk=order_id,
            tenant_id__in=tenant_ids,
            status__in=[Order.Status.PAID, Order.Status.REFUNDED],
        )
        .select_related("tenant", "payment")
        .first()
    )


_MONEY = DecimalField(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES)
_ZERO = Value(Decimal("0.00"), output_field=_MONEY)


def tenants_with_totals(queryset: QuerySet[Tenant] | None = None) -> QuerySet[Tenant]:
    """Each tenant with its paid orders' count and total, and its refunded total.

    The sums run in the database: exact NUMERIC on PostgreSQL; on SQLite the column has
    numeric affinity and Django quantizes the result to the field's two places, which is
    exact for any realistic sum of two-place amounts."""
    qs = queryset if queryset is not None else Tenant.objects.all()
    paid = Q(orders__status=Order.Status.PAID)
    refunded = Q(orders__status=Order.Status.REFUNDED)
    return qs.annotate(
        paid_orders=Count("orders", filter=paid),
        paid_total=Coalesce(Sum("orders__total", filter=paid), _ZERO, output_field=_MONEY),
        refunded_total=Coalesce(Sum("orders__total", filter=refunded), _ZERO, output_field=_MONEY),
        pending_total=Coalesce(
            Sum("orders__total", filter=Q(orders__status=Order.Status.PENDING_PAYMENT)),
            _ZERO,
            output_field=_MONEY,
        ),
    )


@dataclass(frozen=True)
class ReceiptLine:
    description: str
    quantity: int
    years: int
    unit_price: Decimal
    amount: Decimal
    license_ids: list[int]
    more_licenses: int


RECEIPT_LICENSE_IDS_SHOWN = 50


def receipt_lines(order: Order) -> list[ReceiptLine]:
    """The receipt's lines: one per order (licenses × years at the unit price)."""
    from django.utils.translation import gettext as _

    if order.kind == Order.Kind.NEW:
        description = _("Video-stream license")
    else:
        description = _("License renewal")
    links = OrderLicense.objects.filter(order=order).order_by("license_id")
    ids = list(links.values_list("license_id", flat=True)[:RECEIPT_LICENSE_IDS_SHOWN])
    return [
        ReceiptLine(
            description=description,
            quantity=order.quantity,
            years=order.years,
            unit_price=order.unit_price,
            amount=order.total,
            license_ids=ids,
            more_licenses=max(0, order.quantity - len(ids)),
        )
    ]


def totals_sum(tenants: QuerySet[Tenant]) -> dict[str, Decimal]:
    """Grand totals over a set of tenants (the admin's filtered totals list)."""
    tenant_ids = tenants.order_by().values("pk")
    qs = Order.objects.filter(tenant_id__in=tenant_ids)

    def total(status: str):
        return Coalesce(Sum("total", filter=Q(status=status)), _ZERO, output_field=_MONEY)

    return qs.aggregate(
        paid_total=total(Order.Status.PAID),
        refunded_total=total(Order.Status.REFUNDED),
        pending_total=total(Order.Status.PENDING_PAYMENT),
    )
