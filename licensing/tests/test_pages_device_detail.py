"""A device's page: the R1 requirement computed live, its licenses with their R3 dates, the
"bind N licenses" form (R7: soonest-expiring first, all or nothing; NOT_ENOUGH_LICENSES as a
form error), the control session (R8), and deleting the device, which unbinds its licenses
(R7) after a confirmation that says how many."""

import datetime as dt
import re

import pytest
import time_machine
from django.utils import timezone

from console.models import AuditEvent, Tenant
from console.tests.factories import CameraFactory, CockpitFactory, DeviceFactory, LicenseFactory
from console.timeutils import BUSINESS_TZ
from devices.models import ControlSession, FieldDevice
from licensing import services
from licensing.models import License

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture
def device(tenant):
    """The purchase guide's device: 1280×720 + 2 × 640×480 → 1,536,000 px → 1.67 → 2."""
    device = DeviceFactory(tenant=tenant, serial="truck01", name="Haul truck")
    CameraFactory(device=device, width=1280, height=720, name="front")
    CameraFactory(device=device, width=640, height=480, name="left")
    CameraFactory(device=device, width=640, height=480, name="right")
    return device


def value(html: str, element_id: str) -> str:
    return re.search(rf'id="{element_id}">([^<]*)<', html).group(1)


def page(client, device) -> str:
    response = client.get(f"/devices/{device.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def cst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


# --- R1 live ----------------------------------------------------------------------------------


def test_the_guides_example_needs_two_licenses(owner, device):
    html = page(owner, device)
    assert value(html, "aggregate-pixels") == "1,536,000"
    assert value(html, "ratio") == "1.67"
    assert value(html, "licenses-required") == "2"
    assert value(html, "licenses-valid") == "0"
    assert 'data-status="unlicensed"' in html
    for name in ("front", "left", "right"):
        assert name in html
    assert "640 × 480" in html


def test_the_ratio_is_shown_rounded_half_up(owner, tenant):
    """R1: 1472×936 → exact 1.495 → shown "1.50", and 1 license (1.495 rounds to 1)."""
    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device, width=1472, height=936)
    html = page(owner, device)
    assert value(html, "ratio") == "1.50"
    assert value(html, "licenses-required") == "1"


def test_it_follows_camera_changes_at_once(owner, device):
    CameraFactory(device=device, width=1920, height=1080)  # + 2,073,600 → 3,609,600 → 3.92 → 4
    assert value(page(owner, device), "licenses-required") == "4"
    camera = device.cameras.get(width=1920)
    camera.enabled = False
    camera.save()
    assert value(page(owner, device), "licenses-required") == "2"


def test_max_concurrent_streams_counts_the_largest_k(owner, device):
    device.max_concurrent_streams = 1
    device.save()
    html = page(owner, device)
    assert value(html, "aggregate-pixels") == "921,600"
    assert value(html, "licenses-required") == "1"
    assert "only the 1 largest count" in html


def test_a_device_without_cameras_still_needs_one_license(owner, tenant):
    device = DeviceFactory(tenant=tenant)
    assert value(page(owner, device), "licenses-required") == "1"


# --- licenses bound ---------------------------------------------------------------------------


def test_bound_licenses_show_their_r3_dates(owner, tenant, device):
    """R3: paid 2026-03-15 10:00 CST for 1 year → last service date 2027-03-15, expires
    2027-03-16 00:00 CST."""
    paid = cst(2026, 3, 15, 10)
    [lic] = services.licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=paid)
    with time_machine.travel(cst(2026, 3, 20, 12), tick=False):
        services.license_bind(tenant=tenant, license=lic, device=device)
        html = page(owner, device)
    assert f"L-{lic.pk}" in html
    assert "2027-03-16 00:00" in html
    assert "2027-03-15" in html
    assert value(html, "licenses-valid") == "1"
    assert 'data-status="under_licensed"' in html


def test_an_expired_bound_license_is_shown_expired_and_does_not_count(owner, tenant, device):
    now = timezone.now()
    LicenseFactory(
        tenant=tenant,
        device=device,
        starts_at=now - dt.timedelta(days=400),
        expires_at=now - dt.timedelta(seconds=1),
    )
    html = page(owner, device)
    assert value(html, "licenses-valid") == "0"
    assert "badge-expired" in html


# --- binding by count (R7) -------------------------------------------------------------------


def test_bind_n_licenses_soonest_expiring_first(owner, tenant, device, alice):
    now = timezone.now()
    late = LicenseFactory(tenant=tenant, expires_at=now + dt.timedelta(days=300))
    soon = LicenseFactory(tenant=tenant, expires_at=now + dt.timedelta(days=10))
    sooner = LicenseFactory(tenant=tenant, expires_at=now + dt.timedelta(days=5))
    form = page(owner, device)
    assert "3 unbound valid licenses are free" in form
    assert 'name="count" value="2"' in form  # prefilled with what is missing
    response = owner.post(f"/devices/{device.pk}/bind-licenses/", {"count": "2"}, follow=True)
    assert response.redirect_chain[-1][0] == f"/devices/{device.pk}/"
    assert "2 licenses are bound to this device" in response.content.decode()
    assert set(device.licenses.all()) == {soon, sooner}
    late.refresh_from_db()
    assert late.device is None
    assert AuditEvent.objects.filter(action="license.bound", actor=alice).count() == 2
    assert 'data-status="licensed"' in response.content.decode()


def test_not_enough_licenses_is_a_form_error_and_binds_none(owner, tenant, device):
    LicenseFactory(tenant=tenant)
    response = owner.post(f"/devices/{device.pk}/bind-licenses/", {"count": "2"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Not enough licenses: 1 unbound valid license is free and you asked for 2." in html
    assert 'id="bind-licenses"' in html
    assert not License.objects.filter(device__isnull=False).exists()


def test_expired_refunded_and_bound_licenses_are_not_free(owner, tenant, device):
    now = timezone.now()
    LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(days=400), expires_at=now - dt.timedelta(1)
    )
    LicenseFactory(tenant=tenant, status=License.Status.REFUNDED)
    LicenseFactory(tenant=tenant, device=DeviceFactory(tenant=tenant))
    response = owner.post(f"/devices/{device.pk}/bind-licenses/", {"count": "1"})
    assert "Not enough licenses: 0 unbound valid licenses are free" in response.content.decode()
    assert not device.licenses.exists()


@pytest.mark.parametrize(
    ("count", "message"),
    [
        ("0", "greater than or equal to 1"),
        ("-3", "greater than or equal to 1"),
        ("", "This field is required."),
        ("two", "Enter a whole number."),
        ("100000", "less than or equal to 10000"),
    ],
)
def test_a_bad_count_is_a_form_error(owner, tenant, device, count, message):
    LicenseFactory(tenant=tenant)
    response = owner.post(f"/devices/{device.pk}/bind-licenses/", {"count": count})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not device.licenses.exists()


# --- control session (R8) ----------------------------------------------------------------------


def test_the_current_control_session_is_shown(owner, tenant, device):
    now = timezone.now()
    cockpit = CockpitFactory(tenant=tenant, name="Cockpit A")
    assert "No cockpit controls this device now." in page(owner, device)
    session = ControlSession.objects.create(
        device=device, cockpit=cockpit, started_at=now, lease_expires_at=now + dt.timedelta(30)
    )
    assert "Cockpit “Cockpit A” controls this device" in page(owner, device)
    # A lapsed lease no longer controls the device, even before the clean-up ends it.
    session.lease_expires_at = now - dt.timedelta(seconds=1)
    session.started_at = now - dt.timedelta(minutes=5)
    session.save()
    assert "No cockpit controls this device now." in page(owner, device)


# --- deleting (R7) ----------------------------------------------------------------------------


def test_delete_asks_first_and_says_how_many_licenses_are_unbound(owner, tenant, device):
    LicenseFactory.create_batch(2, tenant=tenant, device=device)
    response = owner.get(f"/devices/{device.pk}/delete/")
    assert response.status_code == 200
    assert "2 licenses are bound to this device: they will be unbound" in response.content.decode()
    assert FieldDevice.objects.filter(pk=device.pk).exists()


def test_deleting_unbinds_its_licenses_in_the_same_transaction(owner, tenant, device, alice):
    licenses = LicenseFactory.create_batch(2, tenant=tenant, device=device)
    response = owner.post(f"/devices/{device.pk}/delete/", follow=True)
    assert response.redirect_chain[-1][0] == "/devices/"
    assert "2 licenses were unbound" in response.content.decode()
    assert not FieldDevice.objects.filter(pk=device.pk).exists()
    for lic in licenses:
        lic.refresh_from_db()
        assert lic.device is None
    unbound = AuditEvent.objects.filter(action="license.unbound", actor=alice)
    assert unbound.count() == 2
    assert AuditEvent.objects.filter(action="device.deleted").exists()


# --- read-only members and tenancy ------------------------------------------------------------


def test_viewer_sees_the_page_without_forms(viewer, tenant, device):
    LicenseFactory(tenant=tenant)
    html = page(viewer, device)
    assert value(html, "licenses-required") == "2"
    for form_id in ('id="bind-licenses"', 'id="add-camera"', "/delete/", "/edit/"):
        assert form_id not in html


def test_viewer_cannot_bind_or_delete(viewer, tenant, device):
    LicenseFactory(tenant=tenant)
    assert viewer.post(f"/devices/{device.pk}/bind-licenses/", {"count": "1"}).status_code == 403
    assert viewer.post(f"/devices/{device.pk}/delete/").status_code == 403
    assert viewer.get(f"/devices/{device.pk}/delete/").status_code == 302
    assert FieldDevice.objects.filter(pk=device.pk).exists()
    assert not device.licenses.exists()


def test_a_suspended_tenant_cannot_bind(owner, tenant, device):
    LicenseFactory(tenant=tenant)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    assert 'id="bind-licenses"' not in page(owner, device)
    assert owner.post(f"/devices/{device.pk}/bind-licenses/", {"count": "1"}).status_code == 403
    assert not device.licenses.exists()


def test_it_validates_ownership(owner, other_tenant, tenant):
    theirs = DeviceFactory(tenant=other_tenant)
    LicenseFactory(tenant=tenant)
    assert owner.get(f"/devices/{theirs.pk}/").status_code == 404
    assert owner.post(f"/devices/{theirs.pk}/bind-licenses/", {"count": "1"}).status_code == 404
    assert owner.get(f"/devices/{theirs.pk}/delete/").status_code == 404
    assert owner.post(f"/devices/{theirs.pk}/delete/").status_code == 404
    assert owner.get(f"/devices/{'9' * 30}/").status_code == 404  # past 64 bits: no 500
    assert FieldDevice.objects.filter(pk=theirs.pk).exists()
    assert not License.objects.filter(device__isnull=False).exists()


def test_anonymous_visitors_are_sent_to_login(client, device):
    response = client.get(f"/devices/{device.pk}/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")
