"""Renewing from the license list (R4): the selected valid licenses and the years become a
renewal order pending payment, once per rendered form; no selection, an expired or refunded
license, another tenant's license or bad years are clear errors on the list, nothing made."""

import datetime as dt
import re

import pytest
import time_machine
from django.utils import timezone

from billing.models import Order, OrderLicense
from billing.tests.utils import cst, pay
from console.models import Tenant
from console.tests.factories import DeviceFactory, LicenseFactory
from licensing import services as licensing

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def renew_key(client, query: str = "") -> str:
    html = client.get(f"/licenses/{query}").content.decode()
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


def renew(client, licenses, *, years="1", key=None, query=""):
    data = {
        "licenses": [str(lic if isinstance(lic, int | str) else lic.pk) for lic in licenses],
        "years": years,
        "idempotency_key": key or renew_key(client),
    }
    return client.post(f"/orders/renew/{query}", data)


def test_the_list_offers_valid_licenses_for_renewal(owner, tenant):
    valid = LicenseFactory(tenant=tenant)
    now = timezone.now()
    expired = LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(400), expires_at=now - dt.timedelta(1)
    )
    html = owner.get("/licenses/").content.decode()
    assert f'name="licenses" value="{valid.pk}" form="renew-form"' in html
    assert f'name="licenses" value="{expired.pk}"' not in html
    assert 'action="/orders/renew/"' in html


def test_renewing_places_a_renewal_order(owner, tenant, alice):
    device = DeviceFactory(tenant=tenant)
    first, second = LicenseFactory(tenant=tenant, device=device), LicenseFactory(tenant=tenant)
    response = renew(owner, [first, second], years="2")
    order = Order.objects.get(tenant=tenant)
    assert response.status_code == 302
    assert response.url == f"/orders/{order.pk}/"
    assert (order.kind, order.quantity, order.years) == (Order.Kind.RENEWAL, 2, 2)
    assert str(order.total) == "14400.00"  # R2: 2 × 3600 × 2
    assert set(OrderLicense.objects.values_list("license_id", flat=True)) == {
        first.pk,
        second.pk,
    }
    html = owner.get(response.url).content.decode()
    assert f"Renewal order #{order.pk} is placed." in html
    assert "14400.00 CNY" in html


def test_paying_the_renewal_moves_the_expiry_and_keeps_the_binding(owner, tenant, alice):
    """R4, the guide's example: bought 2027-02-28 → expires 2028-02-29 00:00; renewed once →
    last service date 2029-02-28 → expires 2029-03-01 00:00, still bound."""
    device = DeviceFactory(tenant=tenant)
    [lic] = licensing.licenses_issue(
        tenant=tenant, quantity=1, years=1, paid_at=cst(2027, 2, 28, 10)
    )
    licensing.license_bind(tenant=tenant, license=lic, device=device, at=cst(2027, 3, 1))
    assert lic.expires_at == cst(2028, 2, 29)
    with time_machine.travel(cst(2028, 1, 20, 9), tick=False):
        owner.force_login(alice)
        assert renew(owner, [lic]).status_code == 302
        pay(Order.objects.get())
    lic.refresh_from_db()
    assert lic.expires_at == cst(2029, 3, 1)
    assert lic.device == device


def test_a_double_submit_creates_one_order(owner, tenant):
    lic = LicenseFactory(tenant=tenant)
    key = renew_key(owner)
    first = renew(owner, [lic], key=key)
    second = renew(owner, [lic], key=key)
    assert Order.objects.count() == 1
    assert first.url == second.url


def test_renewing_nothing_is_an_error_on_the_list(owner, tenant):
    LicenseFactory(tenant=tenant)
    response = renew(owner, [])
    assert response.status_code == 200
    html = response.content.decode()
    assert "Select at least one license to renew." in html
    assert 'id="licenses"' in html  # the list is shown again
    assert not Order.objects.exists()


def test_an_expired_license_cannot_be_renewed(owner, tenant):
    """R4: renewal only while valid; the customer buys new licenses instead."""
    valid = LicenseFactory(tenant=tenant)
    now = timezone.now()
    expired = LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(400), expires_at=now - dt.timedelta(1)
    )
    response = renew(owner, [valid, expired])
    assert response.status_code == 200
    html = response.content.decode()
    assert f"Licenses L-{expired.pk} have expired and cannot be renewed; buy new licenses" in html
    # The selection is kept for the user to correct.
    assert f'value="{valid.pk}" form="renew-form" aria-label="Renew L-{valid.pk}" checked' in html
    assert not Order.objects.exists()


def test_a_refunded_license_cannot_be_renewed(owner, tenant):
    lic = LicenseFactory(tenant=tenant, status="refunded")
    response = renew(owner, [lic])
    assert "were refunded and cannot be renewed" in response.content.decode()
    assert not Order.objects.exists()


@pytest.mark.parametrize("years", ["0", "11", "", "one"])
def test_bad_years_are_an_error(owner, tenant, years):
    lic = LicenseFactory(tenant=tenant)
    response = renew(owner, [lic], years=years)
    assert response.status_code == 200
    assert 'id="renew-errors"' in response.content.decode()
    assert not Order.objects.exists()


@pytest.mark.parametrize("bad", ["abc", "999999", "9" * 30])
def test_unknown_license_ids_are_an_error(owner, tenant, bad):
    response = renew(owner, [bad])
    assert response.status_code == 200
    assert 'id="renew-errors"' in response.content.decode()
    assert not Order.objects.exists()


def test_another_tenants_license_cannot_be_renewed(owner, tenant, other_tenant):
    theirs = LicenseFactory(tenant=other_tenant)
    response = renew(owner, [theirs])
    assert f"No such license in your organisation: {theirs.pk}." in response.content.decode()
    assert not Order.objects.exists()


def test_the_filters_are_kept_when_the_list_comes_back(owner, tenant):
    device = DeviceFactory(tenant=tenant)
    LicenseFactory(tenant=tenant, device=device)
    query = f"?device={device.pk}"
    response = renew(owner, [], key=renew_key(owner, query), query=query)
    html = response.content.decode()
    assert f'name="device" value="{device.pk}"' in html


def test_viewer_cannot_renew(viewer, tenant):
    lic = LicenseFactory(tenant=tenant)
    response = viewer.post(
        "/orders/renew/", {"licenses": [str(lic.pk)], "years": "1", "idempotency_key": "k"}
    )
    assert response.status_code == 403
    assert not Order.objects.exists()


def test_a_suspended_tenant_cannot_renew(owner, tenant):
    lic = LicenseFactory(tenant=tenant)
    key = renew_key(owner)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    assert renew(owner, [lic], key=key).status_code == 403
    assert not Order.objects.exists()
