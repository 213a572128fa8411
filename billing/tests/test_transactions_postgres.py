"""Every billing service that locks a row or writes several is its own transaction, driven
the way people use it: staff's admin actions and buttons, the customer's order pages, the
commands.

PostgreSQL with transaction=True, so no test transaction hides a missing `atomic`: there,
SELECT … FOR UPDATE outside a transaction is an error (TransactionManagementError), which is
how refund approval once failed in production while SQLite and the usual tests passed.
"""

import datetime as dt
import io
from unittest import mock

import pytest
import time_machine
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from billing import services
from billing.models import IdempotencyKey, Order, OrderLicense, Payment, RefundRequest
from billing.tests.utils import cst, new_order, paid_new_order, pay, renewal_order
from console.models import AuditEvent, Membership, Tenant
from console.tests.factories import DeviceFactory, MembershipFactory, UserFactory
from licensing.models import License

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres_only", "english"),
]

ORDERS = "/admin/billing/order/"
REFUNDS = "/admin/billing/refundrequest/"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def actions(**filters) -> list[str]:
    return sorted(AuditEvent.objects.filter(**filters).values_list("action", flat=True))


def request_refund(tenant: Tenant, order: Order) -> RefundRequest:
    return services.order_refund_request(tenant=tenant, order=order, reason="ordered twice")


@pytest.fixture
def owner_client(tenant):
    """A second browser: the customer (owner of `tenant`), beside the staff client."""
    user = UserFactory(email="olga@example.com")
    MembershipFactory(user=user, tenant=tenant, role=Membership.Role.OWNER)
    browser = Client()
    browser.force_login(user)
    return browser


def bound_paid_order(tenant: Tenant, quantity: int = 2) -> Order:
    """A paid new-licenses order whose licenses are bound to a device (never served)."""
    order = paid_new_order(tenant, quantity=quantity)
    device = DeviceFactory(tenant=tenant)
    License.objects.filter(order_links__order=order).update(device=device)
    return order


def assert_refunded(order: Order, refund: RefundRequest, staff, note: str = "") -> None:
    order.refresh_from_db()
    refund.refresh_from_db()
    assert order.status == Order.Status.REFUNDED
    assert order.refunded_at is not None
    assert refund.status == RefundRequest.Status.APPROVED
    assert refund.decided_by_user == staff
    assert refund.decision_note == note
    licenses = License.objects.filter(order_links__order=order)
    # R10: refunded licenses are unbound and never count again.
    assert {(lic.status, lic.device_id) for lic in licenses} == {(License.Status.REFUNDED, None)}
    refunded = AuditEvent.objects.filter(action="license.refunded", actor=staff)
    assert sorted(int(e.target_id) for e in refunded) == sorted(lic.pk for lic in licenses)
    assert all(e.data["refund_request"] == refund.pk for e in refunded)
    assert all(e.data["unbound_from_device"] is not None for e in refunded)
    event = AuditEvent.objects.get(action="order.refunded", target_id=str(order.pk))
    assert event.actor == staff
    assert event.data["refund_request"] == refund.pk


def assert_untouched(order: Order, refund: RefundRequest) -> None:
    order.refresh_from_db()
    refund.refresh_from_db()
    assert order.status == Order.Status.PAID
    assert refund.status == RefundRequest.Status.REQUESTED
    assert refund.decided_at is None
    licenses = License.objects.filter(order_links__order=order)
    assert {lic.status for lic in licenses} == {License.Status.ACTIVE}
    assert all(lic.device_id is not None for lic in licenses)
    assert not AuditEvent.objects.filter(
        action__in=["license.refunded", "order.refunded", "refund.rejected"]
    ).exists()


# --- R10: refund decisions in the admin --------------------------------------------------------


def test_r10_admin_approve_button_refunds_the_order(staff_client, staff, tenant):
    order = bound_paid_order(tenant)
    refund = request_refund(tenant, order)
    page = staff_client.get(f"{REFUNDS}{refund.pk}/approve/")
    assert page.status_code == 200
    response = staff_client.post(f"{REFUNDS}{refund.pk}/approve/", {"note": "fine"}, follow=True)
    assert response.status_code == 200
    assert any("approved" in m for m in texts(response)), texts(response)
    assert_refunded(order, refund, staff, note="fine")


def test_r10_admin_approve_action_refunds_new_and_renewal_orders(staff_client, staff, tenant):
    order = bound_paid_order(tenant)
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        renewed = paid_new_order(tenant, quantity=1)
        lic = renewed.licenses.get()
        renewal = renewal_order(tenant, [lic])
        pay(renewal)
        lic.refresh_from_db()
        assert lic.expires_at == cst(2028, 3, 16, 0, 0)
        refunds = [request_refund(tenant, order), request_refund(tenant, renewal)]
        response = staff_client.post(
            REFUNDS,
            {"action": "approve_refunds", ACTION_CHECKBOX_NAME: [r.pk for r in refunds]},
            follow=True,
        )
    assert response.status_code == 200
    assert_refunded(order, refunds[0], staff)
    # R10: a renewal's refund takes exactly its extension back; the license stays valid.
    renewal.refresh_from_db()
    lic.refresh_from_db()
    assert renewal.status == Order.Status.REFUNDED
    assert lic.expires_at == cst(2027, 3, 16, 0, 0)
    assert lic.status == License.Status.ACTIVE
    reverted = AuditEvent.objects.get(action="license.renewal_reverted")
    assert reverted.target_id == str(lic.pk)
    assert reverted.actor == staff
    refunds[1].refresh_from_db()
    assert refunds[1].status == RefundRequest.Status.APPROVED


def test_r10_admin_reject_button_and_action_keep_the_orders(staff_client, staff, tenant):
    first, second = bound_paid_order(tenant), bound_paid_order(tenant, quantity=1)
    by_button, by_action = request_refund(tenant, first), request_refund(tenant, second)
    assert staff_client.get(f"{REFUNDS}{by_button.pk}/reject/").status_code == 200
    response = staff_client.post(
        f"{REFUNDS}{by_button.pk}/reject/", {"reason": "served abroad"}, follow=True
    )
    assert any("rejected" in m for m in texts(response))
    staff_client.post(
        REFUNDS,
        {
            "action": "reject_refunds",
            ACTION_CHECKBOX_NAME: [by_action.pk],
            "reason_page": "yes",
            "reason": "streamed",
        },
    )
    for order, refund, note in (
        (first, by_button, "served abroad"),
        (second, by_action, "streamed"),
    ):
        order.refresh_from_db()
        refund.refresh_from_db()
        assert order.status == Order.Status.PAID
        assert refund.status == RefundRequest.Status.REJECTED
        assert (refund.decided_by_user, refund.decision_note) == (staff, note)
        licenses = License.objects.filter(order_links__order=order)
        assert {lic.status for lic in licenses} == {License.Status.ACTIVE}
        assert all(lic.device_id is not None for lic in licenses)
        event = AuditEvent.objects.get(action="refund.rejected", target_id=str(refund.pk))
        assert event.actor == staff
        assert event.data["order"] == order.pk
    assert not AuditEvent.objects.filter(action__in=["license.refunded", "order.refunded"]).exists()


def test_r10_admin_approval_of_a_served_order_is_refused_and_changes_nothing(staff_client, tenant):
    order = bound_paid_order(tenant)
    refund = request_refund(tenant, order)
    # A stream was granted after the request: R10 is checked again under the locks.
    License.objects.filter(order_links__order=order).update(first_served_at=timezone.now())
    response = staff_client.post(f"{REFUNDS}{refund.pk}/approve/", {}, follow=True)
    assert any("provided service" in m for m in texts(response))
    staff_client.post(REFUNDS, {"action": "approve_refunds", ACTION_CHECKBOX_NAME: [refund.pk]})
    assert_untouched(order, refund)


def test_r10_approval_failing_half_way_rolls_back_every_write(staff_client, tenant):
    """The approval is one transaction: when its last write fails, the licenses refunded
    and the order marked a moment earlier are rolled back with it."""
    order = bound_paid_order(tenant)
    refund = request_refund(tenant, order)
    with (
        mock.patch("billing.services.refunds.audit_record", side_effect=RuntimeError("disk full")),
        pytest.raises(RuntimeError),
    ):
        staff_client.post(f"{REFUNDS}{refund.pk}/approve/", {"note": "fine"})
    assert_untouched(order, refund)


def test_r10_customer_asks_for_a_refund_on_the_order_page(owner_client, tenant):
    order = bound_paid_order(tenant)
    response = owner_client.post(f"/orders/{order.pk}/refund/", {"reason": "Too many"})
    assert response.status_code == 302
    refund = RefundRequest.objects.get(order=order)
    assert (refund.status, refund.reason, refund.amount) == ("requested", "Too many", order.total)
    assert actions(action="refund.requested", target_id=str(refund.pk)) == ["refund.requested"]


# --- orders: placing, cancelling -------------------------------------------------------------


def test_customer_places_new_and_renewal_orders_on_the_pages(owner_client, tenant):
    page = owner_client.get("/orders/new/").content.decode()
    key = page.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    data = {"quantity": "3", "years": "2", "idempotency_key": key}
    response = owner_client.post("/orders/new/", data)
    assert response.status_code == 302
    again = owner_client.post("/orders/new/", data)  # a double submit finds the first order
    order = Order.objects.get(kind=Order.Kind.NEW)
    assert response.url == again.url == f"/orders/{order.pk}/"
    assert (order.quantity, order.years, order.status) == (3, 2, Order.Status.PENDING_PAYMENT)
    assert IdempotencyKey.objects.get(tenant=tenant).order == order
    assert actions(action="order.created") == ["order.created"]

    lic = paid_new_order(tenant, quantity=1).licenses.get()
    response = owner_client.post(
        "/orders/renew/", {"licenses": [lic.pk], "years": "1", "idempotency_key": "renew-1"}
    )
    assert response.status_code == 302
    renewal = Order.objects.get(kind=Order.Kind.RENEWAL)
    assert list(OrderLicense.objects.filter(order=renewal).values_list("license_id", flat=True))
    assert renewal.quantity == 1


def test_an_order_failing_half_way_leaves_no_order_and_no_key(owner_client, tenant):
    with (
        mock.patch("billing.services.orders.audit_record", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError),
    ):
        owner_client.post("/orders/new/", {"quantity": "1", "years": "1", "idempotency_key": "k"})
    assert not Order.objects.exists()
    assert not IdempotencyKey.objects.exists()
    assert not AuditEvent.objects.filter(action="order.created").exists()


def test_r9_a_suspended_tenant_cannot_order_on_the_page(owner_client, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    owner_client.post("/orders/new/", {"quantity": "1", "years": "1", "idempotency_key": "k"})
    assert not Order.objects.exists()


def test_admin_cancel_action(staff_client, staff, tenant):
    pending = new_order(tenant)
    paid = paid_new_order(tenant, quantity=1)
    response = staff_client.post(
        ORDERS,
        {
            "action": "cancel_orders",
            ACTION_CHECKBOX_NAME: [pending.pk, paid.pk],
            "reason_page": "yes",
            "reason": "",
        },
    )
    assert response.status_code == 302
    pending.refresh_from_db()
    paid.refresh_from_db()
    assert pending.status == Order.Status.CANCELLED
    assert paid.status == Order.Status.PAID
    event = AuditEvent.objects.get(action="order.cancelled")
    assert (event.target_id, event.actor) == (str(pending.pk), staff)


# --- payments (R3, R4) -----------------------------------------------------------------------


def test_r3_admin_confirm_payment_action_and_button_issue_licenses(staff_client, staff, tenant):
    by_action, by_button = new_order(tenant, quantity=2), new_order(tenant, quantity=1)
    selected = {"action": "confirm_payment", ACTION_CHECKBOX_NAME: [by_action.pk]}
    response = staff_client.post(ORDERS, {**selected, "apply": "1", "reference": "CMB-1"})
    assert response.status_code == 302
    path = f"{ORDERS}{by_button.pk}/confirm-payment/"
    assert staff_client.get(path).status_code == 200
    assert staff_client.post(path, {"reference": "CMB-2"}).status_code == 302
    for order, reference in ((by_action, "CMB-1"), (by_button, "CMB-2")):
        order.refresh_from_db()
        assert order.status == Order.Status.PAID
        payment = Payment.objects.get(order=order)
        assert (payment.reference, payment.confirmed_by_user) == (reference, staff)
        licenses = License.objects.filter(order_links__order=order)
        assert licenses.count() == order.quantity
        assert {lic.starts_at for lic in licenses} == {order.paid_at}  # R3: from payment
        paid = AuditEvent.objects.get(action="order.paid", target_id=str(order.pk))
        assert paid.actor == staff
    assert AuditEvent.objects.filter(action="license.issued").count() == 2


def test_r4_admin_renewal_confirmation_extends_and_a_late_one_is_cancelled(
    staff_client, staff, tenant
):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        staff_client.force_login(staff)
        lic, late = (paid_new_order(tenant, quantity=1).licenses.get() for _i in range(2))
        on_time, too_late = renewal_order(tenant, [lic]), renewal_order(tenant, [late])
        staff_client.post(f"{ORDERS}{on_time.pk}/confirm-payment/", {"reference": "R-1"})
    lic.refresh_from_db()
    assert lic.expires_at == cst(2028, 3, 16, 0, 0)  # R4: from the last service date
    link = OrderLicense.objects.get(order=on_time)
    assert (link.previous_expires_at, link.new_expires_at) == (cst(2027, 3, 16), lic.expires_at)
    # R4: paid after its license expired: refused, and the cancellation is committed.
    with time_machine.travel(cst(2027, 3, 16, 0, 1), tick=False):
        staff_client.force_login(staff)  # a year later: a new admin session
        response = staff_client.post(
            f"{ORDERS}{too_late.pk}/confirm-payment/", {"reference": "R-2"}, follow=True
        )
    shown = texts(response)
    assert any("have expired and cannot be renewed" in m for m in shown), shown
    too_late.refresh_from_db()
    late.refresh_from_db()
    assert too_late.status == Order.Status.CANCELLED
    assert not Payment.objects.filter(order=too_late).exists()
    assert late.expires_at == cst(2027, 3, 16, 0, 0)
    assert AuditEvent.objects.filter(action="order.cancelled", target_id=str(too_late.pk)).exists()


def test_r3_confirm_failing_half_way_issues_nothing(staff_client, tenant):
    order = new_order(tenant, quantity=2)
    with (
        mock.patch("billing.services.payments.audit_record", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError),
    ):
        staff_client.post(f"{ORDERS}{order.pk}/confirm-payment/", {"reference": "X"})
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT
    assert not License.objects.exists()
    assert not Payment.objects.exists()
    assert not OrderLicense.objects.exists()


def test_confirmpayment_command(tenant):
    order = new_order(tenant, quantity=2)
    out = io.StringIO()
    call_command("confirmpayment", str(order.pk), "--reference", "ICBC-9", stdout=out)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    ids = [int(line) for line in out.getvalue().split("\n")[1:] if line]
    assert sorted(ids) == sorted(order.licenses.values_list("pk", flat=True))
    event = AuditEvent.objects.get(action="order.paid")
    assert event.actor_label == "command:confirmpayment"


def test_r3_grantlicenses_command_records_a_paid_offline_order(tenant):
    call_command(
        "grantlicenses", tenant.slug, "--quantity", "3", "--years", "2", stdout=io.StringIO()
    )
    order = Order.objects.get()
    assert (order.channel, order.status, order.quantity) == ("offline", "paid", 3)
    assert Payment.objects.get(order=order).reference == services.OFFLINE_GRANT_REFERENCE
    licenses = License.objects.filter(order_links__order=order)
    assert licenses.count() == 3
    assert all(lic.expires_at - lic.starts_at > dt.timedelta(days=730) for lic in licenses)
    assert actions(action__startswith="order.") == ["order.created", "order.paid"]


def test_grantlicenses_failing_half_way_leaves_no_order(tenant):
    with (
        mock.patch("billing.services.payments.audit_record", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError),
    ):
        call_command("grantlicenses", tenant.slug, "--quantity", "2", stdout=io.StringIO())
    assert not Order.objects.exists()
    assert not License.objects.exists()
