"""The printable receipt of a paid order: /orders/<id>/receipt/, members of its tenant only."""

from decimal import Decimal

import pytest
import time_machine
from django.utils import translation

from billing import services
from billing.tests.utils import cst, new_order, paid_new_order, pay

pytestmark = pytest.mark.django_db


def url(order) -> str:
    return f"/orders/{order.pk}/receipt/"


def test_receipt_shows_tenant_lines_unit_price_total_and_reference(client, alice, tenant):
    tenant.contract_unit_price = Decimal("3333.33")
    tenant.save()
    order = new_order(tenant, quantity=3, years=2)
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        pay(order, reference="ICBC-778899")
    client.force_login(alice)
    response = client.get(url(order), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme Mining" in html
    assert "ICBC-778899" in html
    assert "3333.33 CNY" in html
    assert "19999.98 CNY" in html  # 3 × 3333.33 × 2
    assert f"FC-{order.pk:08d}" in html
    assert "2026-03-15 10:00" in html  # paid, shown in Asia/Shanghai
    for lic_id in order.licenses.values_list("id", flat=True):
        assert f"L-{lic_id}" in html
    assert "@media print" in html
    assert "Receipt" in html


def test_receipt_labels_are_translated(client, alice, tenant):
    order = paid_new_order(tenant, quantity=1)
    client.force_login(alice)
    with translation.override("en"):
        english = client.get(url(order), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Payment reference" in english
    # zh-hans is the default; the labels go through gettext (a translation pass fills them).
    response = client.get(url(order), HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert response.status_code == 200
    assert response.headers["Content-Language"] == "zh-hans"


def test_any_member_may_see_it(client, bob, tenant):
    order = paid_new_order(tenant, quantity=1)
    client.force_login(bob)
    assert client.get(url(order)).status_code == 200


def test_it_validates_ownership(client, charlie, tenant):
    order = paid_new_order(tenant, quantity=1)
    client.force_login(charlie)
    assert client.get(url(order)).status_code == 404


def test_anonymous_is_sent_to_log_in(client, tenant):
    order = paid_new_order(tenant, quantity=1)
    response = client.get(url(order))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_no_receipt_before_payment_or_after_cancellation(client, alice, tenant):
    pending = new_order(tenant)
    cancelled = new_order(tenant)
    services.order_cancel(order=cancelled)
    client.force_login(alice)
    assert client.get(url(pending)).status_code == 404
    assert client.get(url(cancelled)).status_code == 404
    assert client.get("/orders/999999/receipt/").status_code == 404


def test_refunded_order_keeps_its_receipt_marked_refunded(client, alice, tenant, staff):
    order = paid_new_order(tenant, quantity=1)
    refund = services.order_refund_request(tenant=tenant, order=order)
    services.refund_approve(refund_request=refund, actor=staff)
    client.force_login(alice)
    html = client.get(url(order), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Refunded on" in html


def test_large_grant_receipt_lists_a_few_ids_and_the_count(client, alice, tenant):
    order = paid_new_order(tenant, quantity=120)
    client.force_login(alice)
    html = client.get(url(order), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "and 70 more" in html
