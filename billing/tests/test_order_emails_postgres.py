"""R13 on PostgreSQL with real commits: a customer places an order on the page and staff
confirm the transfer with `confirmpayment`; each change stores one email per owner and
admin with it, in their language, and they go out after the commit."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from billing.models import TRANSFER_REFERENCE_RE, Order
from console.models import Membership, OutboundEmail
from console.tests.factories import MembershipFactory, UserFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres_only", "english"),
]


@pytest.fixture(autouse=True)
def _site(settings):
    settings.SITE_URL = "https://console.example.com"
    settings.PAYEE_ACCOUNT = "6222 0210 0101 2345"


def test_order_placed_on_the_page_and_paid_by_confirmpayment_emails_owners_and_admins(
    tenant, mailoutbox
):
    olga = UserFactory(email="olga@example.com", language="zh-hans")
    MembershipFactory(user=olga, tenant=tenant, role=Membership.Role.OWNER)
    ada = UserFactory(email="ada@example.com", language="en")
    MembershipFactory(user=ada, tenant=tenant, role=Membership.Role.ADMIN)
    vic = UserFactory(email="vic@example.com", language="en")
    MembershipFactory(user=vic, tenant=tenant, role=Membership.Role.VIEWER)
    browser = Client()
    browser.force_login(olga)

    page = browser.get("/orders/new/").content.decode()
    key = page.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]
    data = {"quantity": "2", "years": "1", "idempotency_key": key}
    assert browser.post("/orders/new/", data).status_code == 302
    assert browser.post("/orders/new/", data).status_code == 302  # a double submit
    order = Order.objects.get()
    assert TRANSFER_REFERENCE_RE.match(order.transfer_reference)

    placed = OutboundEmail.objects.filter(template="emails/order_placed").order_by("to")
    assert [(e.to, e.language, e.status) for e in placed] == [
        ("ada@example.com", "en", OutboundEmail.Status.SENT),
        ("olga@example.com", "zh-hans", OutboundEmail.Status.SENT),
    ]
    en = placed[0]
    assert order.transfer_reference in en.subject and "7200.00 CNY" in en.subject
    assert "account 6222 0210 0101 2345" in en.body_text
    assert f"https://console.example.com/orders/{order.pk}/" in en.body_html
    assert "转账" in placed[1].body_text
    assert sorted(m.to[0] for m in mailoutbox) == ["ada@example.com", "olga@example.com"]

    out = io.StringIO()
    call_command("confirmpayment", str(order.pk), "--reference", "ICBC-20260315-01", stdout=out)
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    paid = OutboundEmail.objects.filter(template="emails/payment_confirmed").order_by("to")
    assert [(e.to, e.status) for e in paid] == [
        ("ada@example.com", OutboundEmail.Status.SENT),
        ("olga@example.com", OutboundEmail.Status.SENT),
    ]
    assert "ICBC-20260315-01" in paid[0].body_text
    assert f"https://console.example.com/orders/{order.pk}/receipt/" in paid[0].body_text
    assert len(mailoutbox) == 4
    assert not OutboundEmail.objects.filter(to="vic@example.com").exists()


def test_a_refused_confirmation_stores_no_payment_email(tenant, alice, mailoutbox):
    """confirmpayment on a cancelled order commits nothing, so no email is stored."""
    from billing import services

    order = services.order_create(tenant=tenant, kind=Order.Kind.NEW, quantity=1, years=1)
    services.order_cancel(order=order, reason="customer asked")
    with pytest.raises(CommandError):
        call_command("confirmpayment", str(order.pk), "--reference", "X-1", stdout=io.StringIO())
    assert not OutboundEmail.objects.filter(template="emails/payment_confirmed").exists()
