"""The device list and registration pages: each device's R1 requirement, valid licenses (R5,
R6) and status badge in a bounded number of queries; registering and editing a device with
clear errors for bad input; viewers and suspended tenants read-only; tenancy (404)."""

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.models import AuditEvent, Tenant
from console.tests.factories import (
    CameraFactory,
    DeviceFactory,
    LicenseFactory,
    UserFactory,
)
from devices.models import FieldDevice

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def row(html: str, device) -> str:
    match = re.search(rf'<tr data-device="{device.pk}">(.*?)</tr>', html, re.S)
    assert match, f"no row for device {device.pk}"
    return match.group(1)


def cell(row_html: str, field: str) -> str:
    return re.search(rf'data-field="{field}">(\d+)<', row_html).group(1)


def guide_device(tenant, serial="truck01"):
    """The purchase guide's device: 1280×720 + 2 × 640×480 → 1,536,000 px → 2 licenses."""
    device = DeviceFactory(tenant=tenant, serial=serial, name="Haul truck")
    CameraFactory(device=device, width=1280, height=720)
    CameraFactory(device=device, width=640, height=480)
    CameraFactory(device=device, width=640, height=480)
    return device


# --- access ---------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/devices/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")


def test_a_user_without_a_tenant_is_sent_to_their_application(client):
    client.force_login(UserFactory(email="nobody@example.com"))
    response = client.get("/devices/")
    assert response.status_code == 302
    assert response.url == "/application/"


def test_the_nav_links_to_devices_licenses_and_orders(owner):
    html = owner.get("/").content.decode()
    for url in ('href="/devices/"', 'href="/licenses/"', 'href="/orders/"'):
        assert url in html


# --- the list (R1, R5, R6) ------------------------------------------------------------------


def test_list_shows_each_devices_requirement_valid_licenses_and_status(owner, tenant):
    now = timezone.now()
    under = guide_device(tenant)
    LicenseFactory(tenant=tenant, device=under)  # 1 valid of 2 required
    licensed = DeviceFactory(tenant=tenant, serial="crane01")
    CameraFactory(device=licensed, width=1920, height=1080)  # 2.25 → 2
    LicenseFactory.create_batch(2, tenant=tenant, device=licensed)
    unlicensed = DeviceFactory(tenant=tenant, serial="robot01")
    # R5: past its expires_at it no longer counts, before any job changed its stored status.
    LicenseFactory(
        tenant=tenant,
        device=unlicensed,
        starts_at=now - dt.timedelta(days=400),
        expires_at=now - dt.timedelta(minutes=1),
    )

    html = owner.get("/devices/").content.decode()

    under_row = row(html, under)
    assert "truck01" in under_row and "Haul truck" in under_row
    assert "1,536,000" in under_row
    assert cell(under_row, "licenses-required") == "2"
    assert cell(under_row, "licenses-valid") == "1"
    assert 'data-status="under_licensed"' in under_row
    assert "Under-licensed" in under_row
    assert ">3<" in under_row  # cameras

    licensed_row = row(html, licensed)
    assert cell(licensed_row, "licenses-required") == "2"
    assert 'data-status="licensed"' in licensed_row

    unlicensed_row = row(html, unlicensed)
    assert cell(unlicensed_row, "licenses-required") == "1"  # R1: at least one
    assert cell(unlicensed_row, "licenses-valid") == "0"
    assert 'data-status="unlicensed"' in unlicensed_row


def test_disabled_cameras_do_not_count(owner, tenant):
    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device, width=1280, height=720)
    CameraFactory(device=device, width=3840, height=2160, enabled=False)
    html = owner.get("/devices/").content.decode()
    assert cell(row(html, device), "licenses-required") == "1"
    assert "921,600" in row(html, device)


def test_the_list_takes_the_same_few_queries_for_any_number_of_devices(
    owner, tenant, django_assert_max_num_queries
):
    """Two SQL statements for the devices however many there are (devices with their license
    counts, then their cameras), plus the session and membership look-ups."""
    guide_device(tenant, serial="first")
    with CaptureQueriesContext(connection) as one_device:
        assert owner.get("/devices/").status_code == 200
    baseline = len(one_device.captured_queries)
    for i in range(30):
        device = guide_device(tenant, serial=f"dev{i}")
        LicenseFactory(tenant=tenant, device=device)
    with django_assert_max_num_queries(baseline):
        response = owner.get("/devices/")
    assert response.content.decode().count("<tr data-device=") == 31
    assert baseline <= 8


def test_another_tenants_devices_are_not_listed(owner, other_tenant):
    DeviceFactory(tenant=other_tenant, serial="theirs01")
    assert "theirs01" not in owner.get("/devices/").content.decode()


# --- registering ------------------------------------------------------------------------------


def test_owner_registers_a_device(owner, tenant, alice):
    response = owner.post(
        "/devices/", {"serial": "truck_07", "name": "Truck 7", "max_concurrent_streams": "4"}
    )
    device = FieldDevice.objects.get(tenant=tenant, serial="truck_07")
    assert response.status_code == 302
    assert response.url == f"/devices/{device.pk}/"
    assert device.name == "Truck 7"
    assert device.max_concurrent_streams == 4
    event = AuditEvent.objects.get(action="device.created")
    assert event.actor == alice and event.tenant == tenant


def test_max_concurrent_streams_may_be_left_empty(owner, tenant):
    owner.post("/devices/", {"serial": "truck01", "name": "", "max_concurrent_streams": ""})
    assert FieldDevice.objects.get(tenant=tenant).max_concurrent_streams is None


@pytest.mark.parametrize(
    "serial",
    ["Bad-Serial", "", "truck 01", "a" * 19, "卡车01", "TRUCK01"],
)
def test_a_bad_serial_is_a_form_error(owner, tenant, serial):
    response = owner.post("/devices/", {"serial": serial, "name": "x"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="errorlist' in html
    assert not FieldDevice.objects.exists()


def test_bad_serial_message_says_what_is_allowed(owner):
    html = owner.post("/devices/", {"serial": "Bad-Serial"}).content.decode()
    assert "lowercase letters, digits and underscores" in html


def test_a_duplicate_serial_is_a_form_error(owner, tenant):
    DeviceFactory(tenant=tenant, serial="truck01")
    response = owner.post("/devices/", {"serial": "truck01", "name": "again"})
    assert response.status_code == 200
    assert "A device with this serial already exists." in response.content.decode()
    assert FieldDevice.objects.filter(tenant=tenant).count() == 1


def test_the_same_serial_in_another_tenant_is_fine(owner, tenant, other_tenant):
    DeviceFactory(tenant=other_tenant, serial="truck01")
    assert owner.post("/devices/", {"serial": "truck01"}).status_code == 302
    assert FieldDevice.objects.filter(serial="truck01").count() == 2


@pytest.mark.parametrize("value", ["0", "9", "-1", "two", "1.5"])
def test_max_concurrent_streams_out_of_range_is_a_form_error(owner, value):
    response = owner.post("/devices/", {"serial": "truck01", "max_concurrent_streams": value})
    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert not FieldDevice.objects.exists()


# --- editing ----------------------------------------------------------------------------------


def test_owner_edits_a_device(owner, tenant):
    device = DeviceFactory(tenant=tenant, serial="truck01", name="Old")
    page = owner.get(f"/devices/{device.pk}/edit/").content.decode()
    assert 'value="truck01"' in page
    response = owner.post(
        f"/devices/{device.pk}/edit/",
        {"serial": "truck02", "name": "New", "max_concurrent_streams": "2"},
    )
    assert response.status_code == 302
    device.refresh_from_db()
    assert (device.serial, device.name, device.max_concurrent_streams) == ("truck02", "New", 2)


def test_editing_to_a_taken_serial_is_a_form_error(owner, tenant):
    DeviceFactory(tenant=tenant, serial="truck01")
    device = DeviceFactory(tenant=tenant, serial="truck02")
    response = owner.post(f"/devices/{device.pk}/edit/", {"serial": "truck01", "name": ""})
    assert response.status_code == 200
    assert "A device with this serial already exists." in response.content.decode()
    device.refresh_from_db()
    assert device.serial == "truck02"


def test_editing_with_a_bad_serial_changes_nothing(owner, tenant):
    device = DeviceFactory(tenant=tenant, serial="truck02")
    response = owner.post(f"/devices/{device.pk}/edit/", {"serial": "Bad-Serial"})
    assert response.status_code == 200
    device.refresh_from_db()
    assert device.serial == "truck02"


# --- read-only members ------------------------------------------------------------------------


def test_viewer_sees_devices_without_forms(viewer, tenant):
    device = guide_device(tenant)
    html = viewer.get("/devices/").content.decode()
    assert "truck01" in html
    assert 'name="serial"' not in html
    assert "read-only" in html
    assert viewer.get(f"/devices/{device.pk}/edit/").status_code == 302


def test_viewer_cannot_register_or_edit(viewer, tenant):
    device = DeviceFactory(tenant=tenant, serial="truck01")
    assert viewer.post("/devices/", {"serial": "truck09"}).status_code == 403
    assert viewer.post(f"/devices/{device.pk}/edit/", {"serial": "truck09"}).status_code == 403
    assert not FieldDevice.objects.filter(serial="truck09").exists()


def test_suspended_tenant_is_read_only_with_the_banner(owner, tenant):
    tenant.status = Tenant.Status.SUSPENDED
    tenant.save()
    html = owner.get("/devices/").content.decode()
    assert "banner-warning" in html
    assert 'name="serial"' not in html
    assert owner.post("/devices/", {"serial": "truck09"}).status_code == 403
    assert not FieldDevice.objects.exists()


# --- tenancy ----------------------------------------------------------------------------------


def test_it_validates_ownership(owner, other_tenant):
    theirs = DeviceFactory(tenant=other_tenant, serial="theirs01")
    assert owner.get(f"/devices/{theirs.pk}/edit/").status_code == 404
    assert owner.post(f"/devices/{theirs.pk}/edit/", {"serial": "mine"}).status_code == 404
    theirs.refresh_from_db()
    assert theirs.serial == "theirs01"
