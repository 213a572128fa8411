"""Extra notification recipients: managed by owners and admins, used by the renewal
reminders (R11) and by the order and payment notices (R13) on top of owners and admins."""

import pytest

from billing import services as billing
from console.models import AuditEvent, NotificationRecipient, OutboundEmail
from console.notify_settings import notification_recipient_add
from licensing.reminders import reminder_recipients

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def test_owner_adds_and_removes_a_recipient(owner, tenant):
    response = owner.post(
        "/settings/notifications/",
        {"kind": "billing", "email": "Finance@Example.com", "language": "en"},
    )
    assert response.status_code == 302
    recipient = NotificationRecipient.objects.get(tenant=tenant)
    assert (recipient.kind, recipient.email, recipient.language) == (
        "billing",
        "finance@example.com",
        "en",
    )
    assert b"finance@example.com" in owner.get("/settings/notifications/").content
    assert owner.post(f"/settings/notifications/{recipient.pk}/delete/").status_code == 302
    assert not NotificationRecipient.objects.exists()
    assert set(
        AuditEvent.objects.filter(tenant=tenant, action__startswith="notification_").values_list(
            "action", flat=True
        )
    ) == {"notification_recipient.added", "notification_recipient.removed"}


def test_bad_input_is_a_form_error_and_nothing_is_written(owner, tenant):
    for data in [
        {"kind": "billing", "email": "nope", "language": "en"},
        {"kind": "gossip", "email": "a@example.com", "language": "en"},
        {"kind": "billing", "email": "a@example.com", "language": "fr"},
    ]:
        response = owner.post("/settings/notifications/", data)
        assert response.status_code == 400 and b"errorlist" in response.content
    assert not NotificationRecipient.objects.exists()
    owner.post(
        "/settings/notifications/", {"kind": "billing", "email": "a@example.com", "language": "en"}
    )
    again = owner.post(
        "/settings/notifications/", {"kind": "billing", "email": "A@example.com", "language": "en"}
    )
    assert again.status_code == 400
    assert NotificationRecipient.objects.count() == 1


def test_viewer_reads_but_cannot_change(viewer, tenant):
    recipient = notification_recipient_add(
        tenant=tenant, kind="reminders", email="ops@example.com", language="en"
    )
    page = viewer.get("/settings/notifications/")
    assert page.status_code == 200 and b"ops@example.com" in page.content
    assert (
        viewer.post(
            "/settings/notifications/",
            {"kind": "billing", "email": "x@example.com", "language": "en"},
        ).status_code
        == 403
    )
    assert viewer.post(f"/settings/notifications/{recipient.pk}/delete/").status_code == 403
    assert NotificationRecipient.objects.count() == 1


def test_another_tenants_recipient_is_404(owner, other_tenant):
    theirs = notification_recipient_add(
        tenant=other_tenant, kind="billing", email="x@example.com", language="en"
    )
    assert owner.post(f"/settings/notifications/{theirs.pk}/delete/").status_code == 404
    assert NotificationRecipient.objects.filter(pk=theirs.pk).exists()


def test_reminders_go_to_the_extra_reminder_recipients_too(tenant, alice):
    notification_recipient_add(
        tenant=tenant, kind="reminders", email="ops@example.com", language="zh-hans"
    )
    notification_recipient_add(
        tenant=tenant, kind="billing", email="fin@example.com", language="en"
    )
    assert reminder_recipients(tenant=tenant) == [
        ("alice@example.com", alice.language or tenant.language),
        ("ops@example.com", "zh-hans"),
    ]


def test_order_notices_go_to_the_extra_billing_recipients(tenant, alice):
    notification_recipient_add(
        tenant=tenant, kind="billing", email="fin@example.com", language="en"
    )
    notification_recipient_add(
        tenant=tenant, kind="reminders", email="ops@example.com", language="en"
    )
    # An owner named again as a recipient gets one email.
    notification_recipient_add(
        tenant=tenant, kind="billing", email="alice@example.com", language="en"
    )
    order = billing.order_create(tenant=tenant, kind="new", years=1, quantity=1, actor=alice)
    placed = OutboundEmail.objects.filter(template="emails/order_placed")
    assert sorted(placed.values_list("to", flat=True)) == ["alice@example.com", "fin@example.com"]
    assert placed.get(to="fin@example.com").language == "en"
    billing.order_confirm_payment(order=order, reference="BANK-1")
    paid = OutboundEmail.objects.filter(template="emails/payment_confirmed")
    assert sorted(paid.values_list("to", flat=True)) == ["alice@example.com", "fin@example.com"]


def test_a_staff_cancellation_goes_to_the_extra_billing_recipients_like_every_order_email(
    staff_client, tenant, alice
):
    notification_recipient_add(
        tenant=tenant, kind="billing", email="fin@example.com", language="zh-hans"
    )
    notification_recipient_add(
        tenant=tenant, kind="reminders", email="ops@example.com", language="en"
    )
    order = billing.order_create(tenant=tenant, kind="new", years=1, quantity=1, actor=alice)
    placed = OutboundEmail.objects.filter(template="emails/order_placed")
    # Through the admin's reason page, as staff cancel.
    staff_client.post(
        f"/admin/billing/order/{order.pk}/cancel/",
        {"reason": "Ordered twice", "reason_page": "yes"},
    )
    cancelled = OutboundEmail.objects.filter(template="emails/order_cancelled")
    recipients = sorted(cancelled.values_list("to", flat=True))
    assert recipients == sorted(placed.values_list("to", flat=True))
    assert recipients == ["alice@example.com", "fin@example.com"]
    finance = cancelled.get(to="fin@example.com")
    assert finance.language == "zh-hans" and "Ordered twice" in finance.body_text
    assert f"/orders/{order.pk}/" in finance.body_text
