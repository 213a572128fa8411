"""R10 refunds: a new-licenses order is refundable, whole, while none of its licenses has
served; a renewal only before its renewed period begins, and refunding it takes the
extension back. Customers ask (API); staff approve or reject (services behind the admin)."""

import pytest
import time_machine
from django.utils import timezone

from billing import services
from billing.models import Order, RefundRequest
from billing.tests.utils import cst, paid_new_order, pay, renewal_order
from console.errors import Conflict, NotFound
from console.models import AuditEvent
from console.tests.factories import CameraFactory, DeviceFactory
from licensing import services as licensing
from licensing.models import License

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def refund_url(order) -> str:
    return f"/api/v1/orders/{order.pk}/refund-request"


def request_refund(tenant, order, reason="changed plans"):
    return services.order_refund_request(tenant=tenant, order=order, reason=reason, actor="test")


# --- new-licenses orders -------------------------------------------------------------------


def test_r10_unserved_new_order_is_refunded_whole_and_unbound(admin_api, tenant, staff):
    order = paid_new_order(tenant, quantity=2)
    device = DeviceFactory(tenant=tenant)
    licensing.licenses_bind_count(tenant=tenant, device=device, count=2)
    response = admin_api.post(refund_url(order), {"reason": "ordered too many"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "requested"
    assert response.json()["amount"] == "7200.00"
    refund = RefundRequest.objects.get(pk=response.json()["id"])

    services.refund_approve(refund_request=refund, actor=staff, note="ok")

    order.refresh_from_db()
    refund.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert order.refunded_at is not None
    assert refund.status == RefundRequest.Status.APPROVED
    assert refund.decided_by_user == staff
    for lic in order.licenses.all():
        assert lic.status == License.Status.REFUNDED
        assert lic.device is None
        assert lic.refunded_at == order.refunded_at
    # Refunded licenses never count again (R6, R10).
    assert not License.objects.filter(tenant=tenant).valid_at(timezone.now()).exists()
    assert AuditEvent.objects.filter(action="license.refunded").count() == 2
    assert AuditEvent.objects.get(action="order.refunded").actor == staff
    assert admin_api.get(f"/api/v1/orders/{order.pk}/").json()["status"] == "refunded"


def test_r10_new_order_refused_once_a_license_has_served(admin_api, tenant):
    order = paid_new_order(tenant, quantity=2)
    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device)
    licensing.licenses_bind_count(tenant=tenant, device=device, count=1)
    decision = licensing.entitlement_decide(tenant=tenant, device_id=device.pk)
    assert decision.code == "VALID"  # a granted stream marks the bound license served

    response = admin_api.post(refund_url(order), {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "REFUND_NOT_ALLOWED"
    assert "provided service" in response.json()["detail"]
    assert not RefundRequest.objects.exists()


def test_r10_served_after_the_request_is_refused_at_approval(tenant, staff):
    order = paid_new_order(tenant, quantity=1)
    refund = request_refund(tenant, order)
    License.objects.filter(pk=order.licenses.get().pk).update(first_served_at=timezone.now())
    with pytest.raises(Conflict) as exc:
        services.refund_approve(refund_request=refund, actor=staff)
    assert exc.value.code == "REFUND_NOT_ALLOWED"
    order.refresh_from_db()
    refund.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert refund.status == RefundRequest.Status.REQUESTED  # staff may still reject it
    assert order.licenses.get().status == License.Status.ACTIVE


def test_r10_new_order_refund_waits_for_its_renewal_to_be_refunded(tenant, staff):
    order = paid_new_order(tenant, quantity=1)
    renewal = renewal_order(tenant, [order.licenses.get()])
    pay(renewal)
    with pytest.raises(Conflict) as exc:
        request_refund(tenant, order)
    assert exc.value.code == "REFUND_NOT_ALLOWED"
    assert f"#{renewal.pk}" in str(exc.value.detail)


def test_rejecting_keeps_the_order_paid(tenant, staff):
    order = paid_new_order(tenant, quantity=1)
    refund = request_refund(tenant, order)
    services.refund_reject(refund_request=refund, actor=staff, note="no")
    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == RefundRequest.Status.REJECTED
    assert refund.decision_note == "no"
    assert order.status == Order.Status.PAID
    assert order.licenses.get().status == License.Status.ACTIVE
    with pytest.raises(Conflict) as exc:
        services.refund_approve(refund_request=refund, actor=staff)
    assert exc.value.code == "REFUND_ALREADY_DECIDED"
    # The customer may ask again after a rejection.
    assert request_refund(tenant, order).status == RefundRequest.Status.REQUESTED


def test_one_open_request_per_order(admin_api, tenant):
    order = paid_new_order(tenant, quantity=1)
    assert admin_api.post(refund_url(order), {}, format="json").status_code == 201
    response = admin_api.post(refund_url(order), {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "REFUND_ALREADY_REQUESTED"


def test_only_a_paid_order_can_be_refunded(admin_api, tenant, staff):
    pending = services.order_create(tenant=tenant, kind="new", quantity=1, years=1)
    response = admin_api.post(refund_url(pending), {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "REFUND_NOT_ALLOWED"
    refunded = paid_new_order(tenant, quantity=1)
    services.refund_approve(refund_request=request_refund(tenant, refunded), actor=staff)
    assert admin_api.post(refund_url(refunded), {}, format="json").status_code == 409


def test_refund_request_validates_ownership_and_role(other_api, viewer_api, tenant, other_tenant):
    order = paid_new_order(tenant, quantity=1)
    assert other_api.post(refund_url(order), {}, format="json").status_code == 404
    assert viewer_api.post(refund_url(order), {}, format="json").status_code == 403
    with pytest.raises(NotFound):
        services.order_refund_request(tenant=other_tenant, order=order)
    assert not RefundRequest.objects.exists()


def test_refund_reason_is_bounded(admin_api, tenant):
    order = paid_new_order(tenant, quantity=1)
    response = admin_api.post(refund_url(order), {"reason": "x" * 2001}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["errors"]


# --- renewal orders ------------------------------------------------------------------------


def _renewed(tenant, *, years=1):
    """A license bought 2026-03-15 (expires 2027-03-16 00:00 CST), renewed on 2026-09-01."""
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        lic = paid_new_order(tenant, quantity=1).licenses.get()
    with time_machine.travel(cst(2026, 9, 1, 10), tick=False):
        renewal = renewal_order(tenant, [lic], years=years)
        pay(renewal)
    lic.refresh_from_db()
    assert lic.expires_at == cst(2027 + years, 3, 16, 0, 0)
    return lic, renewal


def test_r10_renewal_refund_before_the_renewed_period_takes_the_extension_back(tenant, staff):
    lic, renewal = _renewed(tenant)
    with time_machine.travel(cst(2027, 3, 15, 23, 59), tick=False):
        refund = request_refund(tenant, renewal)
        services.refund_approve(refund_request=refund, actor=staff)
    lic.refresh_from_db()
    renewal.refresh_from_db()
    assert renewal.status == Order.Status.REFUNDED
    assert lic.expires_at == cst(2027, 3, 16, 0, 0)
    assert lic.status == License.Status.ACTIVE  # still valid through its original period
    event = AuditEvent.objects.get(action="license.renewal_reverted")
    assert event.target_id == str(lic.pk)


def test_r10_renewal_refund_refused_once_the_renewed_period_began(admin_api, tenant):
    _lic, renewal = _renewed(tenant)
    with time_machine.travel(cst(2027, 3, 16, 0, 0), tick=False):
        response = admin_api.post(refund_url(renewal), {}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "REFUND_NOT_ALLOWED"
    assert "renewed period began" in response.json()["detail"]


def test_r10_renewal_refund_refused_at_approval_after_the_period_began(tenant, staff):
    lic, renewal = _renewed(tenant)
    with time_machine.travel(cst(2027, 3, 10), tick=False):
        refund = request_refund(tenant, renewal)
    with time_machine.travel(cst(2027, 3, 17), tick=False), pytest.raises(Conflict):
        services.refund_approve(refund_request=refund, actor=staff)
    lic.refresh_from_db()
    assert lic.expires_at == cst(2028, 3, 16, 0, 0)


def test_r10_renewal_refund_refused_when_renewed_again_since(tenant, staff):
    lic, first = _renewed(tenant)
    with time_machine.travel(cst(2026, 10, 1), tick=False):
        second = renewal_order(tenant, [lic])
        pay(second)
        refund = request_refund(tenant, first)
        with pytest.raises(Conflict) as exc:
            services.refund_approve(refund_request=refund, actor=staff)
    assert exc.value.code == "REFUND_NOT_ALLOWED"
    assert "renewed again" in str(exc.value.detail)
    lic.refresh_from_db()
    assert lic.expires_at == cst(2029, 3, 16, 0, 0)
    # Refunding the later renewal first, then the earlier one, works and lands exactly.
    with time_machine.travel(cst(2026, 10, 2), tick=False):
        services.refund_reject(refund_request=refund, actor=staff)
        services.refund_approve(refund_request=request_refund(tenant, second), actor=staff)
        services.refund_approve(refund_request=request_refund(tenant, first), actor=staff)
    lic.refresh_from_db()
    assert lic.expires_at == cst(2027, 3, 16, 0, 0)


def test_r10_served_licenses_do_not_block_a_renewal_refund(tenant, staff):
    lic, renewal = _renewed(tenant)
    License.objects.filter(pk=lic.pk).update(first_served_at=cst(2026, 4, 1))
    with time_machine.travel(cst(2026, 12, 1), tick=False):
        services.refund_approve(refund_request=request_refund(tenant, renewal), actor=staff)
    renewal.refresh_from_db()
    assert renewal.status == Order.Status.REFUNDED


def test_refundable_helper_explains_refusals(tenant):
    order = paid_new_order(tenant, quantity=1)
    assert services.order_refundable(order=order) == (True, "")
    License.objects.filter(pk=order.licenses.get().pk).update(first_served_at=timezone.now())
    ok, why = services.order_refundable(order=order)
    assert not ok
    assert "provided service" in why
