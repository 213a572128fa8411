"""R2: money is Decimal end to end — fields, services, totals, API strings with two
decimals — and the totals of many orders add up exactly."""

import random
from decimal import Decimal

import pytest
from django.db.models import DecimalField
from django.utils import timezone

from billing import selectors, services
from billing.models import Order, Payment, RefundRequest
from billing.pricing import MAX_AMOUNT, money, order_total
from billing.tests.utils import new_order, paid_new_order
from console.errors import InvalidInput
from console.models import Tenant

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (Order, "unit_price"),
        (Order, "total"),
        (Payment, "amount"),
        (RefundRequest, "amount"),
    ],
)
def test_money_fields_are_decimals_with_two_places(model, field):
    f = model._meta.get_field(field)
    assert isinstance(f, DecimalField)
    assert (f.max_digits, f.decimal_places) == (14, 2)


def test_money_helper_rounds_half_up_and_refuses_floats():
    assert money("2.675") == Decimal("2.68")
    assert money("0.005") == Decimal("0.01")
    assert money(3600) == Decimal("3600.00")
    assert str(money("7200")) == "7200.00"
    with pytest.raises(TypeError):
        money(0.1)


def test_order_total_is_exact_and_refuses_sub_cent_prices():
    assert order_total(unit_price=Decimal("3333.33"), quantity=3, years=7) == Decimal("69999.93")
    with pytest.raises(ValueError, match="two decimals"):
        order_total(unit_price=Decimal("3333.335"), quantity=1, years=1)


def test_values_read_back_are_decimals(tenant, admin_api):
    Tenant.objects.filter(pk=tenant.pk).update(contract_unit_price=Decimal("0.10"))
    tenant.refresh_from_db()
    order = paid_new_order(tenant, quantity=2, years=1)
    order = Order.objects.get(pk=order.pk)
    assert order.unit_price == Decimal("0.10")
    assert order.total == Decimal("0.20")
    assert isinstance(order.total, Decimal)
    assert order.payment.amount == Decimal("0.20")
    data = admin_api.get(f"/api/v1/orders/{order.pk}/").json()
    assert (data["unit_price"], data["total"]) == ("0.10", "0.20")


def test_a_total_too_large_for_one_order_is_refused(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(contract_unit_price=Decimal("9999999999.99"))
    tenant.refresh_from_db()
    with pytest.raises(InvalidInput, match="too large"):
        new_order(tenant, quantity=1000, years=10)
    assert not Order.objects.exists()
    assert new_order(tenant, quantity=99, years=1).total <= MAX_AMOUNT


def test_huge_quote_is_a_string_not_a_500(admin_api, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(contract_unit_price=Decimal("9999999999.99"))
    body = {"cameras": [{"width": 7680, "height": 4320}] * 8, "years": 10}
    response = admin_api.post("/api/v1/quote", body, format="json")
    assert response.status_code == 200
    assert response.json()["total"] == "28799999999971.20"


def test_totals_of_many_orders_add_up_exactly(tenant, other_tenant):
    """Prices that binary floats cannot hold (0.10, 0.07, 3333.33 …): the database sums
    per tenant equal the exact Decimal sums, to the cent."""
    rng = random.Random(20260315)
    prices = ["0.01", "0.07", "0.10", "0.30", "1234.57", "3333.33", "3600.00", "99999.99"]
    expected = {tenant.pk: Decimal("0.00"), other_tenant.pk: Decimal("0.00")}
    refunded = Decimal("0.00")
    for i in range(400):
        target = tenant if i % 3 else other_tenant
        Tenant.objects.filter(pk=target.pk).update(contract_unit_price=rng.choice(prices))
        target.refresh_from_db()
        order = new_order(target, quantity=rng.randint(1, 40), years=rng.randint(1, 10))
        if i % 7 == 0:
            status = Order.Status.REFUNDED
            if target == tenant:
                refunded += order.total
        else:
            status = Order.Status.PAID
            expected[target.pk] += order.total
        Order.objects.filter(pk=order.pk).update(status=status, paid_at=timezone.now())
    rows = {t.pk: t for t in selectors.tenants_with_totals()}
    assert rows[tenant.pk].paid_total == expected[tenant.pk]
    assert rows[other_tenant.pk].paid_total == expected[other_tenant.pk]
    assert rows[tenant.pk].refunded_total == refunded
    assert isinstance(rows[tenant.pk].paid_total, Decimal)
    grand = selectors.totals_sum(Tenant.objects.all())
    assert grand["paid_total"] == expected[tenant.pk] + expected[other_tenant.pk]
    # And against the stored rows themselves, summed in Python.
    stored = sum(
        Order.objects.filter(status=Order.Status.PAID).values_list("total", flat=True),
        Decimal("0.00"),
    )
    assert grand["paid_total"] == stored


def test_tenant_without_orders_totals_zero(tenant):
    row = selectors.tenants_with_totals().get(pk=tenant.pk)
    assert row.paid_total == Decimal("0.00")
    assert row.paid_orders == 0


def test_refund_request_amount_is_the_order_total(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(contract_unit_price=Decimal("1234.57"))
    tenant.refresh_from_db()
    order = paid_new_order(tenant, quantity=3, years=2)
    refund = services.order_refund_request(tenant=tenant, order=order)
    assert refund.amount == Decimal("7407.42") == order.total
