"""Staff's billing admin: orders filtered by status/kind/tenant, payment confirmation with
a reference, read-only payments, refund decisions, totals per tenant; staff only."""

from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.utils import timezone

from billing import services
from billing.models import Order, Payment, RefundRequest
from billing.tests.utils import new_order, paid_new_order, pay, renewal_order
from console.models import AuditEvent, Tenant
from licensing.models import License

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


ORDERS = "/admin/billing/order/"
REFUNDS = "/admin/billing/refundrequest/"


def result_ids(response) -> list[int]:
    return sorted(obj.pk for obj in response.context["cl"].result_list)


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_billing_admin_is_staff_only(client, alice):
    client.force_login(alice)
    for path in (ORDERS, REFUNDS, "/admin/billing/payment/", "/admin/billing/tenanttotals/"):
        response = client.get(path)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]


def test_order_changelist_filters_by_status_kind_and_tenant(staff_client, tenant, other_tenant):
    pending = new_order(tenant)
    paid = paid_new_order(tenant, quantity=1)
    renewal = renewal_order(tenant, [paid.licenses.get()])
    theirs = paid_new_order(other_tenant, quantity=1)
    assert result_ids(staff_client.get(ORDERS)) == sorted(
        [pending.pk, paid.pk, renewal.pk, theirs.pk]
    )
    assert result_ids(staff_client.get(ORDERS, {"status__exact": "paid"})) == [paid.pk, theirs.pk]
    assert result_ids(staff_client.get(ORDERS, {"kind__exact": "renewal"})) == [renewal.pk]
    by_tenant = staff_client.get(ORDERS, {"tenant__id__exact": other_tenant.pk})
    assert result_ids(by_tenant) == [theirs.pk]


def test_order_search_by_id_tenant_and_reference(staff_client, tenant, other_tenant):
    mine = paid_new_order(tenant, quantity=1)
    theirs = new_order(other_tenant)
    assert result_ids(staff_client.get(ORDERS, {"q": "BANK-REF-1"})) == [mine.pk]
    assert result_ids(staff_client.get(ORDERS, {"q": "other"})) == [theirs.pk]
    assert result_ids(staff_client.get(ORDERS, {"q": str(theirs.pk)})) == [theirs.pk]
    assert staff_client.get(ORDERS, {"q": "no such thing"}).status_code == 200


def test_order_pages_render_read_only(staff_client, tenant):
    pending = new_order(tenant)
    paid = paid_new_order(tenant, quantity=1)
    page = staff_client.get(f"{ORDERS}{pending.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"{ORDERS}{pending.pk}/confirm-payment/" in html
    assert 'name="_save"' not in html
    page = staff_client.get(f"{ORDERS}{paid.pk}/change/").content.decode()
    assert "confirm-payment" not in page
    assert "BANK-REF-1" in page
    assert staff_client.get(f"{ORDERS}add/").status_code == 403


def test_confirm_payment_action_asks_for_a_reference(staff_client, staff, tenant):
    orders = [new_order(tenant, quantity=1), new_order(tenant, quantity=2)]
    selected = {"action": "confirm_payment", ACTION_CHECKBOX_NAME: [o.pk for o in orders]}
    page = staff_client.post(ORDERS, selected)
    assert page.status_code == 200
    assert "billing/admin/confirm_payment.html" in [t.name for t in page.templates]
    assert not Payment.objects.exists()

    empty = staff_client.post(ORDERS, {**selected, "apply": "1", "reference": "  "})
    assert empty.status_code == 200  # the form again, with its error
    assert not Payment.objects.exists()

    done = staff_client.post(ORDERS, {**selected, "apply": "1", "reference": "CMB-42"})
    assert done.status_code == 302
    for order in orders:
        order.refresh_from_db()
        assert order.status == Order.Status.PAID
        assert order.payment.reference == "CMB-42"
        assert order.payment.confirmed_by_user == staff
    assert License.objects.count() == 3
    assert AuditEvent.objects.filter(action="order.paid", actor=staff).count() == 2


def test_confirm_payment_page_from_the_change_form(staff_client, tenant):
    order = new_order(tenant, quantity=2)
    path = f"{ORDERS}{order.pk}/confirm-payment/"
    assert staff_client.get(path).status_code == 200
    response = staff_client.post(path, {"reference": "ABC-1"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    # Twice: refused with a message, nothing more issued.
    again = staff_client.post(path, {"reference": "ABC-2"}, follow=True)
    assert any("already paid" in m for m in texts(again))
    assert License.objects.count() == 2
    assert staff_client.get(f"{ORDERS}999999/confirm-payment/").status_code == 404


def test_confirm_payment_needs_staff(client, alice, tenant):
    order = new_order(tenant)
    client.force_login(alice)
    response = client.post(f"{ORDERS}{order.pk}/confirm-payment/", {"reference": "X"})
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


def test_cancel_action(staff_client, tenant):
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
        follow=True,
    )
    pending.refresh_from_db()
    paid.refresh_from_db()
    assert pending.status == Order.Status.CANCELLED
    assert paid.status == Order.Status.PAID
    assert any("only an order pending payment" in m for m in texts(response))


def test_payments_are_read_only(staff_client, tenant):
    order = paid_new_order(tenant, quantity=1)
    listing = staff_client.get("/admin/billing/payment/", {"q": "BANK-REF-1"})
    assert listing.status_code == 200
    assert [p.order_id for p in listing.context["cl"].result_list] == [order.pk]
    assert staff_client.get("/admin/billing/payment/add/").status_code == 403
    view = staff_client.get(f"/admin/billing/payment/{order.payment.pk}/change/")
    assert view.status_code == 200
    assert 'name="_save"' not in view.content.decode()


# --- refunds -------------------------------------------------------------------------------


def test_refund_approve_button(staff_client, staff, tenant):
    order = paid_new_order(tenant, quantity=2)
    refund = services.order_refund_request(tenant=tenant, order=order, reason="too many")
    change = staff_client.get(f"{REFUNDS}{refund.pk}/change/").content.decode()
    assert f"{REFUNDS}{refund.pk}/approve/" in change
    assert f"{REFUNDS}{refund.pk}/reject/" in change
    assert staff_client.get(f"{REFUNDS}{refund.pk}/approve/").status_code == 200
    response = staff_client.post(f"{REFUNDS}{refund.pk}/approve/", {"note": "fine"})
    assert response.status_code == 302
    refund.refresh_from_db()
    order.refresh_from_db()
    assert refund.status == RefundRequest.Status.APPROVED
    assert refund.decided_by_user == staff
    assert refund.decision_note == "fine"
    assert order.status == Order.Status.REFUNDED
    assert set(order.licenses.values_list("status", flat=True)) == {License.Status.REFUNDED}


def test_refund_reject_button(staff_client, tenant):
    order = paid_new_order(tenant, quantity=1)
    refund = services.order_refund_request(tenant=tenant, order=order)
    staff_client.post(f"{REFUNDS}{refund.pk}/reject/", {"reason": "served abroad"})
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.REJECTED
    order.refresh_from_db()
    assert order.status == Order.Status.PAID


def test_r10_refused_approval_shows_why_and_keeps_the_request(staff_client, tenant):
    order = paid_new_order(tenant, quantity=1)
    refund = services.order_refund_request(tenant=tenant, order=order)
    License.objects.filter(pk=order.licenses.get().pk).update(first_served_at=timezone.now())
    page = staff_client.get(f"{REFUNDS}{refund.pk}/approve/").content.decode()
    assert "provided service" in page
    response = staff_client.post(f"{REFUNDS}{refund.pk}/approve/", {}, follow=True)
    assert any("provided service" in m for m in texts(response))
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.REQUESTED


def test_refund_bulk_actions(staff_client, tenant):
    a, b = paid_new_order(tenant, quantity=1), paid_new_order(tenant, quantity=1)
    ra = services.order_refund_request(tenant=tenant, order=a)
    rb = services.order_refund_request(tenant=tenant, order=b)
    staff_client.post(REFUNDS, {"action": "approve_refunds", ACTION_CHECKBOX_NAME: [ra.pk]})
    staff_client.post(
        REFUNDS,
        {
            "action": "reject_refunds",
            ACTION_CHECKBOX_NAME: [rb.pk],
            "reason_page": "yes",
            "reason": "Used already",
        },
    )
    ra.refresh_from_db()
    rb.refresh_from_db()
    assert (ra.status, rb.status) == ("approved", "rejected")
    listing = staff_client.get(REFUNDS, {"status__exact": "approved"})
    assert [r.pk for r in listing.context["cl"].result_list] == [ra.pk]


def test_refund_decisions_need_staff(client, alice, tenant):
    order = paid_new_order(tenant, quantity=1)
    refund = services.order_refund_request(tenant=tenant, order=order)
    client.force_login(alice)
    client.post(f"{REFUNDS}{refund.pk}/approve/", {})
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.REQUESTED


# --- totals per tenant ---------------------------------------------------------------------


def test_totals_per_tenant(staff_client, staff, tenant, other_tenant):
    tenant.contract_unit_price = Decimal("3333.33")
    tenant.save()
    paid_new_order(tenant, quantity=1)  # 3333.33
    paid_new_order(tenant, quantity=2, years=3)  # 19999.98
    refunded = paid_new_order(tenant, quantity=1)
    services.refund_approve(
        refund_request=services.order_refund_request(tenant=tenant, order=refunded), actor=staff
    )
    new_order(tenant, quantity=1)  # pending 3333.33
    paid_new_order(other_tenant, quantity=1)  # 3600.00
    response = staff_client.get("/admin/billing/tenanttotals/")
    assert response.status_code == 200
    rows = {t.slug: t for t in response.context["cl"].result_list}
    assert rows["acme"].paid_total == Decimal("23333.31")
    assert rows["acme"].paid_orders == 2
    assert rows["acme"].refunded_total == Decimal("3333.33")
    assert rows["acme"].pending_total == Decimal("3333.33")
    assert rows["other"].paid_total == Decimal("3600.00")
    assert response.context["grand_total"]["paid_total"] == Decimal("26933.31")
    assert "26933.31" in response.content.decode()
    only_acme = staff_client.get("/admin/billing/tenanttotals/", {"q": "acme"})
    assert only_acme.context["grand_total"]["paid_total"] == Decimal("23333.31")


# --- R2: the contract price in the Tenant admin (console/admin.py) --------------------------


def _tenant_form_data(staff_client, tenant) -> dict:
    """The Tenant change form's current values, inlines' management forms included."""
    page = staff_client.get(f"/admin/console/tenant/{tenant.pk}/change/")
    assert page.status_code == 200
    data = {}
    form = page.context["adminform"].form
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is not None:
            data[name] = value
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = value
        for sub in formset.forms:
            for name in sub.fields:
                value = sub.initial.get(name)
                if value is not None:
                    data[sub.add_prefix(name)] = getattr(value, "pk", value)
    return data


@pytest.mark.parametrize("price", ["3333.335", "-1", "0", "0.00", "abc", "10000000000.00"])
def test_r2_admin_refuses_a_bad_contract_price(staff_client, tenant, price):
    data = {**_tenant_form_data(staff_client, tenant), "contract_unit_price": price}
    response = staff_client.post(f"/admin/console/tenant/{tenant.pk}/change/", data)
    assert response.status_code == 200, "the form is shown again with its error"
    assert "contract_unit_price" in response.context["adminform"].form.errors
    tenant.refresh_from_db()
    assert tenant.contract_unit_price == Decimal("3600.00")


def test_r2_admin_accepts_a_two_place_contract_price(staff_client, tenant):
    data = {**_tenant_form_data(staff_client, tenant), "contract_unit_price": "3333.33"}
    response = staff_client.post(f"/admin/console/tenant/{tenant.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    tenant.refresh_from_db()
    assert tenant.contract_unit_price == Decimal("3333.33")
    assert new_order(tenant, quantity=3).total == Decimal("9999.99")


def test_r2_renewal_after_price_change_uses_the_new_price(tenant):
    lic = paid_new_order(tenant, quantity=1).licenses.get()
    Tenant.objects.filter(pk=tenant.pk).update(contract_unit_price=Decimal("1800.00"))
    tenant.refresh_from_db()
    renewal = renewal_order(tenant, [lic], years=2)
    assert renewal.unit_price == Decimal("1800.00")
    assert renewal.total == Decimal("3600.00")
    pay(renewal)


def test_every_billing_admin_page_renders(staff_client, tenant):
    order = paid_new_order(tenant, quantity=1)
    refund = services.order_refund_request(tenant=tenant, order=order)
    pages = [
        "/admin/",
        "/admin/billing/",
        ORDERS,
        f"{ORDERS}{order.pk}/change/",
        REFUNDS,
        f"{REFUNDS}{refund.pk}/change/",
        f"{REFUNDS}{refund.pk}/reject/",
        "/admin/billing/payment/",
        "/admin/billing/tenanttotals/",
        f"/admin/billing/tenanttotals/{tenant.pk}/change/",
    ]
    for path in pages:
        assert staff_client.get(path).status_code == 200, path
