"""Destructive actions ask first: the form's POST answers a confirmation page carrying the
posted fields, and only its confirmed POST acts."""

import pytest

from console.models import ApiKey, BetaApplication
from console.tests.factories import (
    BetaApplicationFactory,
    DeviceFactory,
    LicenseFactory,
    UserFactory,
    make_api_key,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def test_unbinding_a_license_asks_first(owner, tenant):
    device = DeviceFactory(tenant=tenant, serial="truck_09")
    lic = LicenseFactory(tenant=tenant, device=device)
    page = owner.post(f"/licenses/{lic.pk}/unbind/", {"next": "/licenses/"})
    assert page.status_code == 200
    assert b"truck_09" in page.content and b'name="confirmed" value="1"' in page.content
    assert b'name="next" value="/licenses/"' in page.content
    lic.refresh_from_db()
    assert lic.device_id == device.pk
    assert owner.post(f"/licenses/{lic.pk}/unbind/", {"confirmed": "1"}).status_code == 302
    lic.refresh_from_db()
    assert lic.device_id is None


def test_revoking_a_key_asks_first(owner, tenant):
    key, _raw = make_api_key(tenant)
    page = owner.post(f"/keys/{key.pk}/revoke/")
    assert page.status_code == 200 and key.prefix.encode() in page.content
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    owner.post(f"/keys/{key.pk}/revoke/", {"confirmed": "1"})
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_withdrawing_an_application_asks_first(client):
    applicant = UserFactory(email="qi@example.com")
    app = BetaApplicationFactory(applicant=applicant)
    client.force_login(applicant)
    page = client.post(f"/application/{app.pk}/withdraw/", {"reason": "Budget"})
    assert page.status_code == 200 and b'name="reason" value="Budget"' in page.content
    app.refresh_from_db()
    assert app.state == BetaApplication.State.SUBMITTED
    client.post(f"/application/{app.pk}/withdraw/", {"reason": "Budget", "confirmed": "1"})
    app.refresh_from_db()
    assert app.state == BetaApplication.State.WITHDRAWN
