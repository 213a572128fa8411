"""Payment confirmation: one service for the admin action and `confirmpayment` that issues
new licenses from the payment instant (R3) or extends renewals (R4), exactly once."""

import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connection

from billing import services
from billing.models import Order, OrderLicense, Payment
from billing.tests.utils import cst, new_order, paid_new_order, pay, renewal_order
from console.errors import Conflict, InvalidInput, NotFound
from console.models import AuditEvent
from console.tests.factories import DeviceFactory
from licensing import services as licensing
from licensing.models import License

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


GUIDE = {
    "cameras": [
        {"width": 1280, "height": 720},
        {"width": 640, "height": 480},
        {"width": 640, "height": 480},
    ],
    "years": 1,
}


def test_r1_r2_r3_purchase_guide_end_to_end(admin_api, tenant):
    """Quote → 2 licenses, 7200.00 → order → confirmation 2026-03-15 10:00 CST → two active
    licenses valid from that instant through 2027-03-15 (expires 2027-03-16 00:00 CST)."""
    with time_machine.travel(cst(2026, 3, 14, 16), tick=False):
        quote = admin_api.post("/api/v1/quote", GUIDE, format="json").json()
        assert (quote["licenses"], quote["total"]) == (2, "7200.00")
        created = admin_api.post(
            "/api/v1/orders/",
            {"kind": "new", "quantity": quote["licenses"], "years": quote["years"]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="guide-1",
        ).json()
        assert created["total"] == quote["total"]
    paid_at = cst(2026, 3, 15, 10)
    with time_machine.travel(paid_at, tick=False):
        result = services.order_confirm_payment(
            order=created["id"], reference="ICBC-20260315-001", actor="staff@example.com"
        )
        order = admin_api.get(f"/api/v1/orders/{created['id']}/").json()
        listed = admin_api.get("/api/v1/licenses/", {"status": "active"}).json()
    assert order["status"] == "paid"
    assert len(result.license_ids) == 2
    licenses = License.objects.filter(pk__in=result.license_ids)
    for lic in licenses:
        assert lic.tenant == tenant
        assert lic.starts_at == paid_at
        assert lic.expires_at == cst(2027, 3, 16, 0, 0)
        assert lic.status_at(paid_at) == License.Status.ACTIVE
        assert str(lic.last_service_date) == "2027-03-15"
    results = listed["results"] if isinstance(listed, dict) else listed
    assert sorted(item["id"] for item in results) == sorted(result.license_ids)
    payment = Payment.objects.get(order_id=created["id"])
    assert payment.amount == Decimal("7200.00")
    assert payment.reference == "ICBC-20260315-001"
    assert payment.confirmed_at == paid_at
    assert AuditEvent.objects.filter(action="order.paid", target_id=str(created["id"])).exists()
    (issued,) = AuditEvent.objects.filter(action="license.issued")
    assert sorted(issued.data["ids"]) == sorted(result.license_ids)


def test_r3_paid_on_feb_29_expires_march_1_in_a_common_year(tenant):
    order = new_order(tenant, quantity=1)
    pay(order, at=cst(2028, 2, 29, 23, 30))
    lic = order.licenses.get()
    assert lic.expires_at == cst(2029, 3, 1, 0, 0)


def test_r3_payment_date_is_the_shanghai_date(tenant):
    # 2026-03-15 17:00 UTC is 2026-03-16 01:00 CST: the payment date is the 16th.
    order = new_order(tenant, quantity=1)
    pay(order, at=cst(2026, 3, 16, 1))
    assert order.licenses.get().expires_at == cst(2027, 3, 17, 0, 0)


def test_confirming_twice_issues_nothing_more(tenant):
    order = new_order(tenant, quantity=2)
    pay(order)
    with pytest.raises(Conflict) as exc:
        pay(order, reference="ANOTHER")
    assert exc.value.code == "ORDER_ALREADY_PAID"
    assert "already paid" in str(exc.value.detail)
    assert License.objects.count() == 2
    assert Payment.objects.get().reference == "BANK-REF-1"


def test_cancelled_order_cannot_be_paid(tenant):
    order = new_order(tenant)
    services.order_cancel(order=order, actor="test")
    with pytest.raises(Conflict) as exc:
        pay(order)
    assert exc.value.code == "ORDER_NOT_PENDING"
    assert not License.objects.exists()
    assert not Payment.objects.exists()


@pytest.mark.parametrize("reference", ["", "   ", None, "x" * 101])
def test_a_reference_is_required(tenant, reference):
    order = new_order(tenant)
    with pytest.raises(InvalidInput):
        services.order_confirm_payment(order=order.pk, reference=reference)
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
    assert not License.objects.exists()


def test_unknown_order(db):
    with pytest.raises(NotFound):
        services.order_confirm_payment(order=424242, reference="R")


def test_cancel_only_a_pending_order(tenant):
    order = paid_new_order(tenant)
    with pytest.raises(Conflict):
        services.order_cancel(order=order, actor="test")


# --- renewals (R4) -------------------------------------------------------------------------


def test_r4_renewal_extends_from_the_last_service_date_and_keeps_the_binding(tenant):
    """Bought 2027-02-28 → expires 2028-02-29 00:00; renewed once (paid in January, long
    before expiry) → last service date 2029-02-28 → expires 2029-03-01 00:00."""
    device = DeviceFactory(tenant=tenant)
    with time_machine.travel(cst(2027, 2, 28, 9), tick=False):
        bought = paid_new_order(tenant, quantity=1)
    lic = bought.licenses.get()
    assert lic.expires_at == cst(2028, 2, 29, 0, 0)
    licensing.license_bind(tenant=tenant, license=lic, device=device, at=cst(2027, 3, 1))
    with time_machine.travel(cst(2028, 1, 10, 12), tick=False):
        renewal = renewal_order(tenant, [lic])
        result = pay(renewal)
    lic.refresh_from_db()
    assert result.license_ids == [lic.pk]
    assert lic.expires_at == cst(2029, 3, 1, 0, 0)
    assert str(lic.last_service_date) == "2029-02-28"
    assert lic.device == device
    link = OrderLicense.objects.get(order=renewal)
    assert link.previous_expires_at == cst(2028, 2, 29, 0, 0)
    assert link.new_expires_at == cst(2029, 3, 1, 0, 0)
    assert renewal.status == Order.Status.PAID


def test_r4_renewal_paid_on_the_last_service_date_still_counts_from_it(tenant):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        lic = paid_new_order(tenant, quantity=1).licenses.get()
        renewal = renewal_order(tenant, [lic], years=2)
    with time_machine.travel(cst(2027, 3, 15, 23, 59), tick=False):
        pay(renewal)
    lic.refresh_from_db()
    assert lic.expires_at == cst(2029, 3, 16, 0, 0)


def test_r4_renewal_paid_after_expiry_is_refused_and_cancelled(tenant):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        licenses = list(paid_new_order(tenant, quantity=2).licenses.order_by("id"))
    with time_machine.travel(cst(2027, 3, 1), tick=False):
        renewal = renewal_order(tenant, licenses)
    with (
        time_machine.travel(cst(2027, 3, 16, 0, 0, 1), tick=False),
        pytest.raises(Conflict) as exc,
    ):
        pay(renewal)
    assert exc.value.code == "LICENSE_EXPIRED"
    detail = str(exc.value.detail)
    assert "cancelled" in detail
    assert f"L-{licenses[0].pk}" in detail
    renewal.refresh_from_db()
    assert renewal.status == Order.Status.CANCELLED
    assert "buy new licenses" in renewal.cancel_reason
    assert not Payment.objects.filter(order=renewal).exists()
    for lic in licenses:
        lic.refresh_from_db()
        assert lic.expires_at == cst(2027, 3, 16, 0, 0)
    assert AuditEvent.objects.filter(action="order.cancelled", target_id=str(renewal.pk)).exists()


def test_r4_renewal_refused_when_one_of_its_licenses_was_refunded_meanwhile(tenant):
    first = paid_new_order(tenant, quantity=1)
    second = paid_new_order(tenant, quantity=1)
    kept = first.licenses.get()
    renewal = renewal_order(tenant, [kept, second.licenses.get()])
    licensing.licenses_refund(tenant=tenant, license_ids=[second.licenses.get().pk])
    with pytest.raises(Conflict):
        pay(renewal)
    renewal.refresh_from_db()
    assert renewal.status == Order.Status.CANCELLED
    # All or nothing: the still-valid license was not extended either.
    assert License.objects.get(pk=kept.pk).expires_at == kept.expires_at


# --- concurrency (PostgreSQL) ------------------------------------------------------------


def _race(n: int, fn):
    barrier = threading.Barrier(n)
    outcomes = []

    def worker():
        try:
            barrier.wait()
            outcomes.append(fn())
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_20_concurrent_confirmations_issue_licenses_once_postgres(postgres_only, tenant):
    order = new_order(tenant, quantity=3)
    outcomes = _race(
        20,
        lambda: (
            services.order_confirm_payment(
                order=order.pk, reference="RACE", actor="test"
            ).license_ids
        ),
    )
    successes = [o for o in outcomes if isinstance(o, list)]
    refusals = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(successes) == 1, outcomes
    assert len(refusals) == 19, outcomes
    assert {e.code for e in refusals} == {"ORDER_ALREADY_PAID"}
    assert License.objects.filter(tenant=tenant).count() == 3
    assert Payment.objects.filter(order=order).count() == 1
    assert OrderLicense.objects.filter(order=order).count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_renewal_confirmations_extend_once_postgres(postgres_only, tenant):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        lic = paid_new_order(tenant, quantity=1).licenses.get()
        renewal = renewal_order(tenant, [lic])
        outcomes = _race(
            10,
            lambda: services.order_confirm_payment(order=renewal.pk, reference="R", actor="t"),
        )
    assert sum(isinstance(o, services.Confirmation) for o in outcomes) == 1, outcomes
    lic.refresh_from_db()
    assert lic.expires_at == cst(2028, 3, 16, 0, 0)
