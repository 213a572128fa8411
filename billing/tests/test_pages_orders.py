"""The order pages: the tenant's orders (R2 money with two decimals and CNY, dates in
Asia/Shanghai), an order's bank transfer instructions, its receipt once paid, and the refund
request (R10) — refused at once with a clear message when R10 forbids it."""

import re
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from billing.models import Order, RefundRequest
from billing.tests.utils import cst, new_order, paid_new_order, pay, renewal_order
from console.models import Tenant
from console.tests.factories import UserFactory
from licensing.models import License

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def listed(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-order="(\d+)"', html)]


# --- the list ---------------------------------------------------------------------------------


def test_the_list_shows_the_tenants_orders_newest_first(owner, tenant, other_tenant):
    tenant.contract_unit_price = Decimal("3333.33")
    tenant.save()
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        first = new_order(tenant, quantity=3, years=2)
        pay(first)
    second = new_order(tenant, quantity=1)
    new_order(other_tenant, quantity=5)
    html = owner.get("/orders/").content.decode()
    assert listed(html) == [second.pk, first.pk]
    line = re.search(rf'<tr data-order="{first.pk}">(.*?)</tr>', html, re.S).group(1)
    assert "New licenses" in line
    assert "3333.33 CNY" in line
    assert "19999.98 CNY" in line  # R2: 3 × 3333.33 × 2
    assert "Paid" in line
    assert line.count("2026-03-15 10:00") == 2  # created and paid, in Asia/Shanghai
    assert "Pending payment" in html


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/orders/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_a_user_without_a_tenant_is_sent_to_their_application(client):
    client.force_login(UserFactory(email="nobody@example.com"))
    assert client.get("/orders/").url == "/application/"


# --- the detail -------------------------------------------------------------------------------


def test_a_pending_order_shows_how_to_pay(owner, tenant):
    order = new_order(tenant, quantity=2)
    html = owner.get(f"/orders/{order.pk}/").content.decode()
    assert 'id="payment-instructions"' in html
    assert f"with the reference {order.transfer_reference}" in html
    assert "7200.00 CNY" in html
    assert 'id="receipt-link"' not in html
    assert 'id="refund"' not in html


def test_a_paid_order_links_its_receipt_and_licenses(owner, tenant):
    order = paid_new_order(tenant, quantity=2)
    html = owner.get(f"/orders/{order.pk}/").content.decode()
    assert f'href="/orders/{order.pk}/receipt/"' in html
    assert 'id="payment-instructions"' not in html
    for lic_id in order.licenses.values_list("id", flat=True):
        assert f"L-{lic_id}" in html
    assert "BANK-REF-1" in html
    assert owner.get(f"/orders/{order.pk}/receipt/").status_code == 200


def test_it_validates_ownership(owner, other_tenant):
    theirs = paid_new_order(other_tenant, quantity=1)
    assert owner.get(f"/orders/{theirs.pk}/").status_code == 404
    assert owner.post(f"/orders/{theirs.pk}/refund/", {"reason": "x"}).status_code == 404
    assert owner.get("/orders/999999/").status_code == 404
    assert owner.get(f"/orders/{'9' * 30}/").status_code == 404
    assert not RefundRequest.objects.exists()


# --- refunds (R10) ----------------------------------------------------------------------------


def test_owner_requests_a_refund_of_an_unserved_order(owner, tenant):
    order = paid_new_order(tenant, quantity=1)
    assert (
        f'action="/orders/{order.pk}/refund/"' in owner.get(f"/orders/{order.pk}/").content.decode()
    )
    response = owner.post(f"/orders/{order.pk}/refund/", {"reason": "Ordered twice"}, follow=True)
    html = response.content.decode()
    assert "Your refund request for order" in html
    request = RefundRequest.objects.get(order=order)
    assert request.status == RefundRequest.Status.REQUESTED
    assert request.reason == "Ordered twice"
    assert request.amount == Decimal("3600.00")
    assert "A refund request awaits our staff's decision." in html
    assert f'action="/orders/{order.pk}/refund/"' not in html


def test_a_second_request_is_refused_with_a_message(owner, tenant):
    order = paid_new_order(tenant, quantity=1)
    owner.post(f"/orders/{order.pk}/refund/", {"reason": ""})
    response = owner.post(f"/orders/{order.pk}/refund/", {"reason": ""}, follow=True)
    assert "already requested and awaits a decision" in response.content.decode()
    assert RefundRequest.objects.count() == 1


def test_an_order_that_has_served_cannot_be_refunded(owner, tenant):
    """R10: during the beta an order is not refundable once it has provided service."""
    order = paid_new_order(tenant, quantity=1)
    License.objects.filter(order_links__order=order).update(first_served_at=timezone.now())
    html = owner.get(f"/orders/{order.pk}/").content.decode()
    assert 'id="refund-refusal"' in html
    assert "has provided service" in html
    response = owner.post(f"/orders/{order.pk}/refund/", {"reason": ""}, follow=True)
    assert "cannot be refunded during the beta" in response.content.decode()
    assert not RefundRequest.objects.exists()


def test_a_pending_order_cannot_be_refunded(owner, tenant):
    order = new_order(tenant, quantity=1)
    response = owner.post(f"/orders/{order.pk}/refund/", {"reason": ""}, follow=True)
    assert "only a paid order can be refunded" in response.content.decode()
    assert not RefundRequest.objects.exists()


def test_a_too_long_reason_is_a_form_error(owner, tenant):
    order = paid_new_order(tenant, quantity=1)
    response = owner.post(f"/orders/{order.pk}/refund/", {"reason": "x" * 2001})
    assert response.status_code == 200
    assert "at most 2000 characters" in response.content.decode()
    assert not RefundRequest.objects.exists()


def test_a_renewal_order_shows_the_licenses_it_renews(owner, tenant):
    new = paid_new_order(tenant, quantity=2)
    ids = list(new.licenses.values_list("id", flat=True))
    order = renewal_order(tenant, ids, years=2)
    html = owner.get(f"/orders/{order.pk}/").content.decode()
    assert "Renewal" in html and "Licenses renewed" in html
    assert all(f"L-{i}" in html for i in ids)
    assert "14400.00 CNY" in html  # 2 × 3600 × 2


# --- read-only members ------------------------------------------------------------------------


def test_viewer_sees_orders_but_cannot_ask_for_a_refund(viewer, tenant):
    order = paid_new_order(tenant, quantity=1)
    assert order.pk in listed(viewer.get("/orders/").content.decode())
    html = viewer.get(f"/orders/{order.pk}/").content.decode()
    assert 'name="reason"' not in html
    assert viewer.post(f"/orders/{order.pk}/refund/", {"reason": ""}).status_code == 403
    assert not RefundRequest.objects.exists()


def test_a_suspended_tenant_cannot_ask_for_a_refund(owner, tenant):
    order = paid_new_order(tenant, quantity=1)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    html = owner.get(f"/orders/{order.pk}/").content.decode()
    assert "banner-warning" in html and 'name="reason"' not in html
    assert owner.post(f"/orders/{order.pk}/refund/", {"reason": ""}).status_code == 403
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
