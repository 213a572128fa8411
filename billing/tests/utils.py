"""Helpers for billing tests: orders through the real services."""

import datetime as dt

from billing import services
from billing.models import Order
from console.timeutils import BUSINESS_TZ


def cst(*args) -> dt.datetime:
    """An aware Asia/Shanghai instant: cst(2026, 3, 15, 10)."""
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


def new_order(tenant, *, quantity: int = 2, years: int = 1, at=None) -> Order:
    return services.order_create(
        tenant=tenant, kind=Order.Kind.NEW, quantity=quantity, years=years, actor="test", at=at
    )


def renewal_order(tenant, licenses, *, years: int = 1, at=None) -> Order:
    return services.order_create(
        tenant=tenant,
        kind=Order.Kind.RENEWAL,
        license_ids=[lic if isinstance(lic, int) else lic.pk for lic in licenses],
        years=years,
        actor="test",
        at=at,
    )


def pay(order: Order, *, at=None, reference: str = "BANK-REF-1") -> services.Confirmation:
    result = services.order_confirm_payment(
        order=order.pk, reference=reference, actor="test", at=at
    )
    order.refresh_from_db()
    return result


def paid_new_order(tenant, *, quantity: int = 2, years: int = 1, at=None) -> Order:
    order = new_order(tenant, quantity=quantity, years=years, at=at)
    pay(order, at=at)
    return order
