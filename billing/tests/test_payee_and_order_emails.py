"""Paying by bank transfer: each order's transfer reference (unique across tenants, random,
short), the payee on every pending order (page, email, receipt), the seller on receipts, and
the R13 emails to a tenant's owners and admins — an order placed, a payment confirmed, a
refund decided — each in the recipient's language, with working links."""

import itertools
import re
from unittest import mock

import pytest
import time_machine
from django.conf import settings
from django.db import IntegrityError, transaction
from django.test import Client

from billing import services
from billing.models import (
    TRANSFER_REFERENCE_ALPHABET,
    TRANSFER_REFERENCE_RE,
    Order,
    transfer_reference_new,
)
from billing.tests.utils import cst, new_order, paid_new_order, pay, renewal_order
from console.errors import ServiceError
from console.models import Membership, User
from console.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

PAYEE = {
    "PAYEE_NAME": "Field Console Tech Ltd",
    "PAYEE_BANK": "Bank of Ningbo, Pudong",
    "PAYEE_ACCOUNT": "6222 0210 0101 2345",
    "SELLER_NAME": "Field Console Tech Ltd (seller)",
    "SELLER_ADDRESS": "88 Century Avenue, Shanghai",
    "SELLER_TAX_ID": "91310115MA1K4XYZ9Q",
}
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(autouse=True)
def _payee(settings):
    for name, value in PAYEE.items():
        setattr(settings, name, value)
    settings.SITE_URL = "https://console.example.com"


@pytest.fixture
def people(tenant, other_tenant, alice, bob, charlie):
    """alice: owner (Chinese); ada: admin (English); bob: viewer; olga: an inactive owner;
    charlie: another tenant's owner. Only alice and ada hear of `tenant`'s orders."""
    User.objects.filter(pk=alice.pk).update(language="zh-hans")
    ada = UserFactory(email="ada@example.com", language="en")
    MembershipFactory(user=ada, tenant=tenant, role=Membership.Role.ADMIN)
    olga = UserFactory(email="olga@example.com", is_active=False)
    MembershipFactory(user=olga, tenant=tenant, role=Membership.Role.OWNER)
    return {"alice": alice, "ada": ada}


def sent(mailoutbox, callbacks, action):
    """Run `action` and return the emails it sent once its transaction committed."""
    before = len(mailoutbox)
    with callbacks(execute=True):
        result = action()
    return result, mailoutbox[before:]


def by_recipient(messages) -> dict:
    found = {}
    for message in messages:
        assert len(message.to) == 1, "one email per recipient"
        assert message.to[0] not in found
        found[message.to[0]] = message
    return found


def html_of(message) -> str:
    return next(content for content, mime in message.alternatives if mime == "text/html")


# --- the transfer reference --------------------------------------------------------------------


def test_reference_is_short_grouped_and_uses_an_unambiguous_alphabet(tenant):
    order = new_order(tenant)
    reference = order.transfer_reference
    assert TRANSFER_REFERENCE_RE.match(reference), reference
    assert len(reference) == 14  # "FC-" and 2 groups of 5: fits any bank form
    assert not set(reference[3:].replace("-", "")) & set("ILOU")
    assert set(TRANSFER_REFERENCE_ALPHABET) & set("ILOU") == set()
    assert len(TRANSFER_REFERENCE_ALPHABET) == 32


def test_references_are_random_not_sequential(tenant, other_tenant):
    orders = [new_order(t, quantity=1) for t in (tenant, other_tenant) * 10]
    references = [o.transfer_reference for o in orders]
    assert len(set(references)) == len(references)
    # Consecutive orders share nothing but the prefix: no counter shows through.
    bodies = [r.replace("-", "")[2:] for r in references]
    assert len({b[0] for b in bodies}) > 1 and len({b[-1] for b in bodies}) > 1
    assert sorted(references) != references
    for a, b in itertools.pairwise(bodies):
        assert sum(x == y for x, y in zip(a, b, strict=True)) < 8


def test_the_database_refuses_a_second_order_with_one_reference(tenant, other_tenant):
    first = new_order(tenant)
    second = new_order(other_tenant)
    with pytest.raises(IntegrityError), transaction.atomic():
        Order.objects.filter(pk=second.pk).update(transfer_reference=first.transfer_reference)


def test_a_collision_draws_another_reference(tenant, other_tenant):
    taken = new_order(tenant).transfer_reference
    with mock.patch(
        "billing.services.orders.transfer_reference_new",
        side_effect=[taken, "FC-7K3QM-9MZD2"],
    ):
        order = new_order(other_tenant)
    assert order.transfer_reference == "FC-7K3QM-9MZD2"
    assert Order.objects.count() == 2


def test_generator_draws_fresh_references():
    drawn = {transfer_reference_new() for _i in range(1000)}
    assert len(drawn) == 1000


def test_api_shows_the_reference(admin_api, tenant):
    order = new_order(tenant)
    body = admin_api.get(f"/api/v1/orders/{order.pk}/").json()
    assert body["transfer_reference"] == order.transfer_reference
    assert body["total"] == "7200.00"


def test_admin_search_finds_an_order_by_its_reference(staff_client, tenant, other_tenant):
    mine, theirs = new_order(tenant), new_order(other_tenant)
    for term in (mine.transfer_reference, mine.transfer_reference.lower()):
        response = staff_client.get("/admin/billing/order/", {"q": term})
        assert response.status_code == 200
        assert [o.pk for o in response.context["cl"].result_list] == [mine.pk], term
    html = staff_client.get("/admin/billing/order/").content.decode()
    assert mine.transfer_reference in html and theirs.transfer_reference in html


# --- pages: the pending order, the receipt ------------------------------------------------------


def test_pending_order_page_shows_payee_amount_and_reference(owner, tenant):
    order = new_order(tenant, quantity=2)
    html = owner.get(f"/orders/{order.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert (
        f"Transfer 7200.00 CNY to {PAYEE['PAYEE_NAME']} at {PAYEE['PAYEE_BANK']}, account "
        f"{PAYEE['PAYEE_ACCOUNT']}, with the reference {order.transfer_reference}."
    ) in html
    assert 'id="payee"' in html


def test_pending_renewal_page_shows_the_payment_deadline(owner, tenant):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        lic = paid_new_order(tenant, quantity=1).licenses.get()
        order = renewal_order(tenant, [lic])
        html = owner.get(f"/orders/{order.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Payment deadline" in html
    assert "2027-03-16 00:00 CST" in html  # R3: when the license expires


def test_paid_order_page_no_longer_asks_for_a_transfer(owner, tenant):
    order = paid_new_order(tenant)
    html = owner.get(f"/orders/{order.pk}/").content.decode()
    assert 'id="payee"' not in html
    assert order.transfer_reference in html  # still shown with the order's details


def test_receipt_shows_seller_payee_and_reference_with_two_decimals(client, alice, tenant):
    tenant.contract_unit_price = "3600.5"
    tenant.save()
    order = paid_new_order(tenant, quantity=1)
    client.force_login(alice)
    html = client.get(f"/orders/{order.pk}/receipt/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    for value in PAYEE.values():
        assert value in html, value
    assert order.transfer_reference in html
    assert "3600.50 CNY" in html


def test_email_link_to_an_order_of_another_of_my_tenants_switches_to_it(
    client, alice, tenant, other_tenant
):
    """A member of two tenants follows an order email of the one not chosen."""
    MembershipFactory(user=alice, tenant=other_tenant, role=Membership.Role.ADMIN)
    order = new_order(other_tenant)
    client.force_login(alice)
    response = client.get(f"/orders/{order.pk}/")
    assert response.status_code == 302 and response.url == f"/orders/{order.pk}/"
    assert client.get(f"/orders/{order.pk}/").status_code == 200


def test_another_tenants_order_is_still_a_404(client, alice, other_tenant):
    order = new_order(other_tenant)
    client.force_login(alice)
    assert client.get(f"/orders/{order.pk}/").status_code == 404


# --- R13: order placed --------------------------------------------------------------------------


def test_order_placed_email_to_owners_and_admins_in_their_language(
    people, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    order, messages = sent(
        mailoutbox, django_capture_on_commit_callbacks, lambda: new_order(tenant, quantity=2)
    )
    emails = by_recipient(messages)
    assert sorted(emails) == ["ada@example.com", "alice@example.com"]
    url = f"https://console.example.com/orders/{order.pk}/"
    ref = order.transfer_reference

    en = emails["ada@example.com"]
    assert en.subject == f"Order #{order.pk}: transfer 7200.00 CNY with reference {ref}"
    assert (
        f"Transfer 7200.00 CNY to {PAYEE['PAYEE_NAME']} at {PAYEE['PAYEE_BANK']}, "
        f"account {PAYEE['PAYEE_ACCOUNT']}, with the reference {ref}."
    ) in en.body
    assert url in en.body and f'href="{url}"' in html_of(en)
    assert PAYEE["PAYEE_ACCOUNT"] in html_of(en) and ref in html_of(en)
    assert not CJK.search(en.subject + en.body)

    zh = emails["alice@example.com"]
    assert CJK.search(zh.subject) and ref in zh.subject and "7200.00" in zh.subject
    assert "转账" in zh.body
    assert PAYEE["PAYEE_ACCOUNT"] in zh.body and ref in zh.body and url in zh.body
    assert '<html lang="zh-hans">' in html_of(zh)


def test_a_user_without_a_saved_language_gets_the_tenants(
    tenant, alice, mailoutbox, django_capture_on_commit_callbacks
):
    User.objects.filter(pk=alice.pk).update(language="")
    tenant.language = "en"
    tenant.save()
    _order, messages = sent(
        mailoutbox, django_capture_on_commit_callbacks, lambda: new_order(tenant)
    )
    (message,) = messages
    assert message.subject.startswith("Order #")


def test_renewal_placed_email_states_the_payment_deadline(
    people, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        lic = paid_new_order(tenant, quantity=1).licenses.get()
        order, messages = sent(
            mailoutbox, django_capture_on_commit_callbacks, lambda: renewal_order(tenant, [lic])
        )
    en = by_recipient(messages)["ada@example.com"]
    assert "confirmed before 2027-03-16 00:00 Asia/Shanghai time" in en.body
    assert f"L-{lic.pk}" in en.body
    assert order.transfer_reference in en.body


def test_nothing_is_sent_for_an_order_that_rolls_back(
    people, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    def fail():
        with transaction.atomic():
            new_order(tenant)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        fail()
    assert mailoutbox == []


def test_an_offline_grant_asks_for_no_transfer(
    people, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    result, messages = sent(
        mailoutbox,
        django_capture_on_commit_callbacks,
        lambda: services.order_grant_offline(tenant=tenant, quantity=1, actor="command"),
    )
    # Only the payment's email: the deal was settled outside the console.
    assert len(messages) == 2
    en = by_recipient(messages)["ada@example.com"]
    assert en.subject == f"Order #{result.order.pk} is paid: 1 license issued"


# --- R13: payment confirmed ---------------------------------------------------------------------


def test_payment_confirmed_email_lists_licenses_with_expiry_and_the_receipt(
    people, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    order = new_order(tenant, quantity=2)
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        result, messages = sent(
            mailoutbox, django_capture_on_commit_callbacks, lambda: pay(order, reference="ICBC-1")
        )
    emails = by_recipient(messages)
    assert sorted(emails) == ["ada@example.com", "alice@example.com"]
    en = emails["ada@example.com"]
    assert en.subject == f"Order #{order.pk} is paid: 2 licenses issued"
    assert "We received 7200.00 CNY" in en.body and "ICBC-1" in en.body
    assert "2 licenses, last day of service 2027-03-15" in en.body
    for lic_id in result.license_ids:
        assert f"L-{lic_id}" in en.body
    receipt = f"https://console.example.com/orders/{order.pk}/receipt/"
    assert receipt in en.body and f'href="{receipt}"' in html_of(en)
    assert "https://console.example.com/licenses/" in en.body
    zh = emails["alice@example.com"]
    assert CJK.search(zh.subject) and receipt in zh.body and "2027-03-15" in zh.body
    # The receipt link works for the recipient.
    browser = Client()
    browser.force_login(people["ada"])
    assert browser.get(receipt.removeprefix("https://console.example.com")).status_code == 200


def test_renewal_paid_email_gives_the_new_expiry(
    people, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        lic = paid_new_order(tenant, quantity=1).licenses.get()
        order = renewal_order(tenant, [lic], years=2)
        _result, messages = sent(mailoutbox, django_capture_on_commit_callbacks, lambda: pay(order))
    en = by_recipient(messages)["ada@example.com"]
    assert en.subject == f"Order #{order.pk} is paid: 1 license renewed"
    assert "last day of service 2029-03-15" in en.body  # R4: from the last service date
    assert f"L-{lic.pk}" in en.body


# --- R13: refund decided ------------------------------------------------------------------------


def refund_requested(tenant):
    order = paid_new_order(tenant)
    request = services.order_refund_request(tenant=tenant, order=order, reason="ordered twice")
    return order, request


def test_refund_approved_email(people, tenant, mailoutbox, django_capture_on_commit_callbacks):
    order, request = refund_requested(tenant)
    _r, messages = sent(
        mailoutbox,
        django_capture_on_commit_callbacks,
        lambda: services.refund_approve(refund_request=request, actor="staff"),
    )
    emails = by_recipient(messages)
    assert sorted(emails) == ["ada@example.com", "alice@example.com"]
    en = emails["ada@example.com"]
    assert en.subject == f"Refund of order #{order.pk} approved"
    assert "7200.00 CNY will be returned" in en.body
    assert f"https://console.example.com/orders/{order.pk}/" in en.body
    assert CJK.search(emails["alice@example.com"].subject)


def test_refund_rejected_email_carries_the_staff_reason(
    people, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    order, request = refund_requested(tenant)
    reason = "The licenses were bound to truck_7 on 2026-03-16 & used."
    _r, messages = sent(
        mailoutbox,
        django_capture_on_commit_callbacks,
        lambda: services.refund_reject(refund_request=request, actor="staff", note=reason),
    )
    emails = by_recipient(messages)
    en = emails["ada@example.com"]
    assert en.subject == f"Refund of order #{order.pk} not approved"
    assert f"Reason: {reason}" in en.body
    assert "truck_7 on 2026-03-16 &amp; used." in html_of(en)  # escaped in HTML
    zh = emails["alice@example.com"]
    assert reason in zh.body and CJK.search(zh.body)


def test_a_refused_decision_sends_nothing(
    people, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    _order, request = refund_requested(tenant)
    services.refund_reject(refund_request=request, actor="staff", note="no")
    before = len(mailoutbox)
    with pytest.raises(ServiceError), django_capture_on_commit_callbacks(execute=True):
        services.refund_approve(refund_request=request, actor="staff")
    assert len(mailoutbox) == before


def test_site_url_is_the_base_of_every_link(
    people, tenant, mailoutbox, django_capture_on_commit_callbacks
):
    _order, messages = sent(
        mailoutbox, django_capture_on_commit_callbacks, lambda: new_order(tenant)
    )
    for message in messages:
        for link in re.findall(r'href="([^"]+)"', html_of(message)):
            assert link.startswith(settings.SITE_URL + "/"), link
