"""Orders in the console: cancelling a pending order (confirmed first), and renewing every
license expiring in the next 30 days as renewal orders grouped by expiry date (R4's
deadline), split at the per-order limit, placed once however often the form is sent."""

import datetime as dt
import re

import pytest
from django.utils import timezone

from billing import services
from billing.models import Order
from console.models import AuditEvent
from console.tests.factories import LicenseFactory
from console.timeutils import business_date, start_of_business_day

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def expiring(tenant, days: int):
    today = business_date(timezone.now())
    return LicenseFactory(
        tenant=tenant,
        starts_at=timezone.now() - dt.timedelta(days=300),
        expires_at=start_of_business_day(today + dt.timedelta(days=days)),
    )


def page_key(response) -> str:
    return re.search(rb'name="idempotency_key" value="([^"]+)"', response.content).group(1).decode()


@pytest.fixture
def soon(tenant, other_tenant):
    a, b = expiring(tenant, 5), expiring(tenant, 5)
    c = expiring(tenant, 20)
    expiring(tenant, 45)  # outside the window
    expiring(other_tenant, 5)  # another tenant's
    return {"day5": sorted([a.pk, b.pk]), "day20": [c.pk]}


def renewal_sets():
    return sorted(
        sorted(o.order_licenses.values_list("license_id", flat=True))
        for o in Order.objects.filter(kind="renewal")
    )


def test_renew_everything_makes_one_order_per_expiry_date(owner, tenant, soon):
    page = owner.get("/orders/renew-expiring/")
    assert page.status_code == 200
    assert b"2 licenses" in page.content and b"1 license<" in page.content
    assert b"Place 2 renewal orders" in page.content
    response = owner.post(
        "/orders/renew-expiring/", {"years": "1", "idempotency_key": page_key(page)}
    )
    assert response.status_code == 302
    assert renewal_sets() == sorted([soon["day5"], soon["day20"]])
    for order in Order.objects.filter(kind="renewal"):
        assert order.status == "pending_payment" and order.years == 1
        assert order.total == order.unit_price * order.quantity
    # Already pending: the page proposes nothing more.
    assert b"nothing to renew" in owner.get("/orders/renew-expiring/").content


def test_a_double_submit_places_the_orders_once(owner, tenant, soon):
    key = page_key(owner.get("/orders/renew-expiring/"))
    for _ in range(2):
        owner.post("/orders/renew-expiring/", {"years": "2", "idempotency_key": key})
    assert Order.objects.filter(kind="renewal").count() == 2
    assert AuditEvent.objects.filter(tenant=tenant, action="order.created").count() == 2


def test_a_group_over_the_limit_is_split(owner, tenant, soon, monkeypatch):
    monkeypatch.setattr(services, "MAX_RENEWAL_LICENSES", 1)
    key = page_key(owner.get("/orders/renew-expiring/"))
    owner.post("/orders/renew-expiring/", {"years": "1", "idempotency_key": key})
    assert renewal_sets() == sorted([[soon["day5"][0]], [soon["day5"][1]], soon["day20"]])


def test_each_order_shows_its_payment_deadline(owner, tenant, soon):
    key = page_key(owner.get("/orders/renew-expiring/"))
    owner.post("/orders/renew-expiring/", {"years": "1", "idempotency_key": key})
    order = Order.objects.filter(kind="renewal", quantity=1).get()
    page = owner.get(f"/orders/{order.pk}/")
    deadline = timezone.localtime(order.order_licenses.get().license.expires_at)
    assert deadline.strftime("%Y-%m-%d").encode() in page.content


def test_bad_years_is_a_form_error_and_nothing_is_written(owner, tenant, soon):
    key = page_key(owner.get("/orders/renew-expiring/"))
    response = owner.post("/orders/renew-expiring/", {"years": "0", "idempotency_key": key})
    assert response.status_code == 400 and b"errorlist" in response.content
    assert not Order.objects.exists()


def test_nothing_to_renew_is_said(owner, tenant):
    key = page_key(owner.get("/orders/renew-expiring/"))
    response = owner.post("/orders/renew-expiring/", {"years": "1", "idempotency_key": key})
    assert response.status_code == 400 and b"nothing to renew" in response.content
    assert not Order.objects.exists()


def test_viewer_sees_the_plan_but_cannot_place_or_cancel(viewer, tenant, soon, alice):
    page = viewer.get("/orders/renew-expiring/")
    assert page.status_code == 200 and b"Place 2" not in page.content
    assert (
        viewer.post(
            "/orders/renew-expiring/", {"years": "1", "idempotency_key": "web-x"}
        ).status_code
        == 403
    )
    order = services.order_create(tenant=tenant, kind="new", years=1, quantity=1, actor=alice)
    assert viewer.post(f"/orders/{order.pk}/cancel/").status_code == 403
    order.refresh_from_db()
    assert order.status == "pending_payment" and not Order.objects.filter(kind="renewal").exists()


def test_owner_cancels_a_pending_order_after_a_confirmation(owner, tenant, alice):
    order = services.order_create(tenant=tenant, kind="new", years=1, quantity=2, actor=alice)
    assert b'id="cancel-link"' in owner.get(f"/orders/{order.pk}/").content
    confirm = owner.get(f"/orders/{order.pk}/cancel/")
    assert confirm.status_code == 200 and f"#{order.pk}".encode() in confirm.content
    order.refresh_from_db()
    assert order.status == "pending_payment"
    assert owner.post(f"/orders/{order.pk}/cancel/").status_code == 302
    order.refresh_from_db()
    assert order.status == "cancelled" and order.cancel_reason == "Cancelled by the customer."
    event = AuditEvent.objects.get(tenant=tenant, action="order.cancelled")
    assert event.actor == alice


def test_a_paid_order_cannot_be_cancelled(owner, tenant, alice):
    order = services.order_create(tenant=tenant, kind="new", years=1, quantity=1, actor=alice)
    services.order_confirm_payment(order=order, reference="BANK-1")
    response = owner.post(f"/orders/{order.pk}/cancel/", follow=True)
    assert b"Only an order pending payment can be cancelled" in response.content
    order.refresh_from_db()
    assert order.status == "paid"


def test_another_tenants_order_is_404(owner, other_tenant, charlie):
    order = services.order_create(
        tenant=other_tenant, kind="new", years=1, quantity=1, actor=charlie
    )
    assert owner.get(f"/orders/{order.pk}/cancel/").status_code == 404
    assert owner.post(f"/orders/{order.pk}/cancel/").status_code == 404
    order.refresh_from_db()
    assert order.status == "pending_payment"
