"""Staff roles (CONTRACT.md "Staff roles"): every staff action in the admin as a member of
the group that does it, as a member of the other group, and as staff in neither (403) — and
the reasons staff give on the intermediate pages (stored on the audit event, sent to the
customer; required for rejections and suspension; one effect however often it is sent).

PostgreSQL with transaction=True: the services lock rows (SELECT … FOR UPDATE is an error
outside a transaction there), and each test starts from a flushed database, so the groups
must come back on post_migrate."""

import threading

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.db import connection

from billing import services
from billing.models import Order, Payment, RefundRequest
from billing.staff_services import order_cancel_by_staff
from billing.tests.utils import new_order, paid_new_order
from console.errors import ServiceError
from console.models import AuditEvent, BetaApplication, OutboundEmail, Tenant
from console.staff import BILLING, GROUP_PERMISSIONS, REVIEWERS
from console.staff_services import tenant_suspend
from console.tests.factories import BetaApplicationFactory, UserFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres_only", "english"),
]

S = BetaApplication.State
APPLICATIONS = "/admin/console/betaapplication/"
TENANTS = "/admin/console/tenant/"
AUDIT = "/admin/console/auditevent/"
ORDERS = "/admin/billing/order/"
PAYMENTS = "/admin/billing/payment/"
REFUNDS = "/admin/billing/refundrequest/"
TOTALS = "/admin/billing/tenanttotals/"


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def staff_user(email: str, *groups: str):
    user = UserFactory(email=email, is_staff=True, language="en")
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def reviewer():
    return staff_user("rita@example.com", REVIEWERS)


@pytest.fixture
def biller():
    return staff_user("bill@example.com", BILLING)


@pytest.fixture
def nobody():
    """Staff in neither group: "should have no access"."""
    return staff_user("ops@example.com")


def as_user(client, user):
    client.force_login(user)
    return client


def emails(template: str) -> list[OutboundEmail]:
    return list(OutboundEmail.objects.filter(template=template).order_by("to"))


# --- the groups ----------------------------------------------------------------------------


def test_both_groups_exist_after_a_flush_with_exactly_their_permissions():
    for name, wanted in GROUP_PERMISSIONS.items():
        group = Group.objects.get(name=name)
        perms = set(group.permissions.values_list("content_type__app_label", "codename"))
        assert perms == {(app, codename) for app, _model, codename in wanted}, name


def test_no_daily_task_needs_a_superuser(reviewer, biller):
    assert not reviewer.is_superuser and not biller.is_superuser
    assert reviewer.has_perm("console.review_betaapplication")
    assert reviewer.has_perm("console.suspend_tenant")
    assert biller.has_perm("billing.confirm_payment")
    assert biller.has_perm("billing.cancel_order")
    assert biller.has_perm("billing.decide_refund")
    assert not reviewer.has_perm("billing.confirm_payment")
    assert not biller.has_perm("console.suspend_tenant")


# --- who may see what ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "group"),
    [
        (APPLICATIONS, REVIEWERS),
        (TENANTS, REVIEWERS),
        (AUDIT, REVIEWERS),
        (AUDIT, BILLING),
        (ORDERS, BILLING),
        (PAYMENTS, BILLING),
        (REFUNDS, BILLING),
        (TOTALS, BILLING),
    ],
)
def test_changelists_by_group(client, reviewer, biller, nobody, path, group):
    member, outsider = (reviewer, biller) if group == REVIEWERS else (biller, reviewer)
    assert as_user(client, member).get(path).status_code == 200
    if path != AUDIT:
        assert as_user(client, outsider).get(path).status_code == 403
    assert as_user(client, nobody).get(path).status_code == 403


# --- Reviewers: applications ----------------------------------------------------------------


def test_reviewer_reviews_approves_and_confirms_an_application(client, reviewer):
    app = BetaApplicationFactory(company_name="Quay Robotics")
    as_user(client, reviewer)
    change = f"{APPLICATIONS}{app.pk}/change/"
    assert client.get(change).status_code == 200
    client.post(f"{APPLICATIONS}{app.pk}/transition/", {"action": "start_review"})
    client.post(f"{APPLICATIONS}{app.pk}/transition/", {"action": "approve"})
    response = client.post(
        f"{APPLICATIONS}{app.pk}/confirm/", {"contract_unit_price": "3000.00", "slug": "quay"}
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.state == S.CONFIRMED
    assert Tenant.objects.get(slug="quay").is_active


def test_reviewer_rejects_an_application_on_its_reason_page(client, reviewer):
    app = BetaApplicationFactory(state=S.IN_REVIEW, language="en")
    as_user(client, reviewer)
    url = f"{APPLICATIONS}{app.pk}/transition/"
    page = client.get(f"{url}?action=reject")
    assert page.status_code == 200
    assert b'name="reason"' in page.content
    # Empty: the page again with the error, nothing changed.
    again = client.post(url, {"action": "reject", "reason": "  ", "reason_page": "yes"})
    assert again.status_code == 200
    assert again.context["form"].errors["reason"]
    assert BetaApplication.objects.get(pk=app.pk).state == S.IN_REVIEW
    client.post(
        url, {"action": "reject", "reason": "Outside the beta's scope", "reason_page": "yes"}
    )
    assert BetaApplication.objects.get(pk=app.pk).state == S.REJECTED
    event = AuditEvent.objects.get(action="beta_application.rejected")
    assert event.data["reason"] == "Outside the beta's scope"
    status = [e for e in emails("emails/beta_status") if "Outside the beta" in e.body_text]
    assert [e.to for e in status] == [app.applicant.email]
    # Decided already: a message, still one rejection.
    response = client.post(url, {"action": "reject", "reason": "again", "reason_page": "yes"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="beta_application.rejected").count() == 1


@pytest.mark.parametrize("who", ["biller", "nobody"])
def test_only_reviewers_move_applications(client, request, who):
    user = request.getfixturevalue(who)
    app = BetaApplicationFactory(state=S.APPROVED)
    as_user(client, user)
    base = f"{APPLICATIONS}{app.pk}"
    assert client.get(f"{base}/transition/?action=reject").status_code == 403
    assert (
        client.post(f"{base}/transition/", {"action": "reject", "reason": "x"}).status_code == 403
    )
    assert client.get(f"{base}/confirm/").status_code == 403
    bulk = {"action": "bulk_reject", ACTION_CHECKBOX_NAME: [app.pk], "post": "yes", "reason": "x"}
    assert client.post(APPLICATIONS, bulk).status_code == 403
    assert BetaApplication.objects.get(pk=app.pk).state == S.APPROVED


# --- Reviewers: tenants ---------------------------------------------------------------------


def test_reviewer_suspends_with_a_reason_and_reactivates_from_the_buttons(
    client, reviewer, tenant, alice
):
    alice.language = "en"
    alice.save(update_fields=["language"])
    as_user(client, reviewer)
    change = client.get(f"{TENANTS}{tenant.pk}/change/")
    assert change.context["status_button"]["url"] == f"{TENANTS}{tenant.pk}/suspend/"
    page = client.get(f"{TENANTS}{tenant.pk}/suspend/")
    assert page.status_code == 200
    # The reason is required for a suspension.
    empty = client.post(f"{TENANTS}{tenant.pk}/suspend/", {"reason": "", "reason_page": "yes"})
    assert empty.status_code == 200
    assert "Give a reason" in empty.content.decode()
    assert Tenant.objects.get(pk=tenant.pk).is_active
    assert not AuditEvent.objects.filter(action="tenant.suspended").exists()
    client.post(
        f"{TENANTS}{tenant.pk}/suspend/", {"reason": "Unpaid invoice", "reason_page": "yes"}
    )
    assert Tenant.objects.get(pk=tenant.pk).status == Tenant.Status.SUSPENDED
    event = AuditEvent.objects.get(action="tenant.suspended")
    assert (event.actor, event.data["reason"]) == (reviewer, "Unpaid invoice")
    [notice] = emails("emails/tenant_status")
    assert notice.to == alice.email
    assert "Unpaid invoice" in notice.body_text and "suspended" in notice.subject
    # A double submit: one suspension, one email, and a clear message.
    again = client.post(
        f"{TENANTS}{tenant.pk}/suspend/", {"reason": "Unpaid invoice", "reason_page": "yes"}
    )
    assert any("already" in m for m in texts(again))
    assert AuditEvent.objects.filter(action="tenant.suspended").count() == 1
    assert len(emails("emails/tenant_status")) == 1
    # Reactivation: the reason is optional.
    client.post(f"{TENANTS}{tenant.pk}/reactivate/", {"reason": "", "reason_page": "yes"})
    assert Tenant.objects.get(pk=tenant.pk).is_active
    assert AuditEvent.objects.get(action="tenant.active").data["reason"] == ""
    assert len(emails("emails/tenant_status")) == 2


def test_reviewer_suspends_in_bulk_after_the_reason_page(client, reviewer, tenant, other_tenant):
    as_user(client, reviewer)
    selected = {"action": "suspend", ACTION_CHECKBOX_NAME: [tenant.pk, other_tenant.pk]}
    page = client.post(TENANTS, selected)
    assert page.status_code == 200
    assert page.templates[0].name == "admin/staff_reason.html"
    assert not AuditEvent.objects.exists()
    empty = client.post(TENANTS, {**selected, "reason_page": "yes", "reason": ""})
    assert empty.status_code == 200 and empty.context["form"].errors
    client.post(TENANTS, {**selected, "reason_page": "yes", "reason": "Audit pending"})
    assert set(Tenant.objects.values_list("status", flat=True)) == {Tenant.Status.SUSPENDED}
    assert AuditEvent.objects.filter(action="tenant.suspended").count() == 2


@pytest.mark.parametrize("who", ["biller", "nobody"])
def test_only_reviewers_suspend(client, request, tenant, who):
    as_user(client, request.getfixturevalue(who))
    for path in (f"{TENANTS}{tenant.pk}/suspend/", f"{TENANTS}{tenant.pk}/reactivate/"):
        assert client.get(path).status_code == 403
        assert client.post(path, {"reason": "x", "reason_page": "yes"}).status_code == 403
    bulk = {"action": "suspend", ACTION_CHECKBOX_NAME: [tenant.pk], "reason_page": "yes"}
    assert client.post(TENANTS, {**bulk, "reason": "x"}).status_code == 403
    assert Tenant.objects.get(pk=tenant.pk).is_active


# --- Billing: orders ------------------------------------------------------------------------


def test_biller_confirms_a_payment_from_the_button_and_the_action(client, biller, tenant):
    one, two = new_order(tenant, quantity=1), new_order(tenant, quantity=1)
    as_user(client, biller)
    change = client.get(f"{ORDERS}{one.pk}/change/")
    assert change.context["confirm_payment_url"] == f"{ORDERS}{one.pk}/confirm-payment/"
    client.post(f"{ORDERS}{one.pk}/confirm-payment/", {"reference": "BANK-1"})
    client.post(
        ORDERS,
        {
            "action": "confirm_payment",
            ACTION_CHECKBOX_NAME: [two.pk],
            "apply": "1",
            "reference": "B2",
        },
    )
    assert set(Order.objects.values_list("status", flat=True)) == {Order.Status.PAID}
    # Twice: one payment.
    again = client.post(f"{ORDERS}{one.pk}/confirm-payment/", {"reference": "BANK-1"})
    assert any("already paid" in m for m in texts(again))
    assert Payment.objects.count() == 2


def test_biller_cancels_with_an_optional_reason_the_customer_reads(client, biller, tenant, alice):
    order = new_order(tenant, quantity=1)
    as_user(client, biller)
    page = client.get(f"{ORDERS}{order.pk}/cancel/")
    assert page.status_code == 200
    client.post(f"{ORDERS}{order.pk}/cancel/", {"reason": "Ordered twice", "reason_page": "yes"})
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert AuditEvent.objects.get(action="order.cancelled").data["reason"] == "Ordered twice"
    [notice] = emails("emails/order_cancelled")
    assert notice.to == alice.email and "Ordered twice" in notice.body_text
    again = client.post(f"{ORDERS}{order.pk}/cancel/", {"reason": "", "reason_page": "yes"})
    assert any("only an order pending payment" in m for m in texts(again))
    assert AuditEvent.objects.filter(action="order.cancelled").count() == 1
    assert len(emails("emails/order_cancelled")) == 1


def test_biller_cancels_in_bulk_without_a_reason(client, biller, tenant):
    orders = [new_order(tenant, quantity=1), new_order(tenant, quantity=1)]
    as_user(client, biller)
    selected = {"action": "cancel_orders", ACTION_CHECKBOX_NAME: [o.pk for o in orders]}
    assert client.post(ORDERS, selected).status_code == 200  # the reason page
    assert not Order.objects.filter(status=Order.Status.CANCELLED).exists()
    client.post(ORDERS, {**selected, "reason_page": "yes", "reason": ""})
    assert set(Order.objects.values_list("status", flat=True)) == {Order.Status.CANCELLED}


@pytest.mark.parametrize("who", ["reviewer", "nobody"])
def test_only_billing_confirms_and_cancels(client, request, tenant, who):
    order = new_order(tenant, quantity=1)
    as_user(client, request.getfixturevalue(who))
    assert client.get(f"{ORDERS}{order.pk}/change/").status_code == 403
    assert (
        client.post(f"{ORDERS}{order.pk}/confirm-payment/", {"reference": "X"}).status_code == 403
    )
    assert client.post(f"{ORDERS}{order.pk}/cancel/", {"reason_page": "yes"}).status_code == 403
    for action in ("confirm_payment", "cancel_orders"):
        data = {"action": action, ACTION_CHECKBOX_NAME: [order.pk], "apply": "1", "reference": "X"}
        assert client.post(ORDERS, {**data, "reason_page": "yes"}).status_code == 403
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


# --- Billing: refunds -----------------------------------------------------------------------


def refund_request(tenant) -> RefundRequest:
    return services.order_refund_request(tenant=tenant, order=paid_new_order(tenant, quantity=1))


def test_biller_rejects_a_refund_only_with_a_reason(client, biller, tenant, alice):
    refund = refund_request(tenant)
    as_user(client, biller)
    url = f"{REFUNDS}{refund.pk}/reject/"
    assert client.get(url).status_code == 200
    empty = client.post(url, {"reason": ""})
    assert empty.status_code == 200 and empty.context["form"].errors["reason"]
    assert RefundRequest.objects.get(pk=refund.pk).status == RefundRequest.Status.REQUESTED
    client.post(url, {"reason": "The licenses streamed already"})
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.REJECTED
    assert refund.decision_note == "The licenses streamed already"
    event = AuditEvent.objects.get(action="refund.rejected")
    assert "The licenses streamed already" in event.data.values()
    decided = [e for e in OutboundEmail.objects.filter(to=alice.email) if "streamed" in e.body_text]
    assert len(decided) == 1
    again = client.post(url, {"reason": "again"})
    assert any("already" in m for m in texts(again))
    assert AuditEvent.objects.filter(action="refund.rejected").count() == 1


def test_biller_decides_refunds_in_bulk(client, biller, tenant):
    approve, reject = refund_request(tenant), refund_request(tenant)
    as_user(client, biller)
    client.post(REFUNDS, {"action": "approve_refunds", ACTION_CHECKBOX_NAME: [approve.pk]})
    selected = {"action": "reject_refunds", ACTION_CHECKBOX_NAME: [reject.pk]}
    assert client.post(REFUNDS, selected).status_code == 200  # the reason page
    empty = client.post(REFUNDS, {**selected, "reason_page": "yes", "reason": ""})
    assert empty.status_code == 200 and empty.context["form"].errors["reason"]
    client.post(REFUNDS, {**selected, "reason_page": "yes", "reason": "Served already"})
    statuses = dict(RefundRequest.objects.values_list("pk", "status"))
    assert statuses == {approve.pk: "approved", reject.pk: "rejected"}


@pytest.mark.parametrize("who", ["reviewer", "nobody"])
def test_only_billing_decides_refunds(client, request, tenant, who):
    refund = refund_request(tenant)
    as_user(client, request.getfixturevalue(who))
    for decision in ("approve", "reject"):
        assert client.get(f"{REFUNDS}{refund.pk}/{decision}/").status_code == 403
        assert client.post(f"{REFUNDS}{refund.pk}/{decision}/", {"reason": "x"}).status_code == 403
    for action in ("approve_refunds", "reject_refunds"):
        data = {"action": action, ACTION_CHECKBOX_NAME: [refund.pk], "reason_page": "yes"}
        assert client.post(REFUNDS, {**data, "reason": "x"}).status_code == 403
    assert RefundRequest.objects.get(pk=refund.pk).status == RefundRequest.Status.REQUESTED


# --- two staff at once ----------------------------------------------------------------------


def race(*calls):
    """Run the calls at once, each in its own thread and database connection; returns each
    one's result or the ServiceError it raised."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except ServiceError as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def test_two_staff_suspending_at_once_make_one_suspension_and_one_email(reviewer, tenant, alice):
    def suspend():
        return tenant_suspend(tenant=Tenant.objects.get(pk=tenant.pk), actor=reviewer, reason="x")

    results = race(suspend, suspend)
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "Tenant"]
    assert AuditEvent.objects.filter(action="tenant.suspended").count() == 1
    assert len(emails("emails/tenant_status")) == 1


def test_two_staff_cancelling_at_once_make_one_cancellation_and_one_email(biller, tenant, alice):
    order = new_order(tenant, quantity=1)

    def cancel():
        return order_cancel_by_staff(order=order.pk, actor=biller, reason="dup")

    results = race(cancel, cancel)
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "Order"]
    assert AuditEvent.objects.filter(action="order.cancelled").count() == 1
    assert len(emails("emails/order_cancelled")) == 1
