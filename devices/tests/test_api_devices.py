"""API v1 devices: CRUD, the licensing read (R1, R6), deletion unbinding licenses (R7).

Who may call (401/403/404 per role and tenant) is covered for every endpoint in
console/tests/test_api_access.py; here: happy paths, validation and tenant scoping of lists.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.models import AuditEvent
from console.tests.factories import CameraFactory, DeviceFactory, LicenseFactory
from devices.models import FieldDevice
from licensing.models import License

pytestmark = pytest.mark.django_db

URL = "/api/v1/devices/"


def test_create_returns_the_device_with_its_licensing(admin_api, tenant):
    response = admin_api.post(
        URL, {"serial": "truck_01", "name": "Truck 1", "max_concurrent_streams": 2}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    device = FieldDevice.objects.get(tenant=tenant, serial="truck_01")
    assert body == {
        "id": device.pk,
        "serial": "truck_01",
        "name": "Truck 1",
        "max_concurrent_streams": 2,
        "aggregate_pixels": 0,
        "licenses_required": 1,
        "licenses_valid": 0,
        "status": "unlicensed",
    }
    event = AuditEvent.objects.get(action="device.created")
    assert event.actor_label.startswith("api-key:fc_")


def test_read_adds_r1_requirement_and_valid_licenses(viewer_api, tenant):
    """R1 worked example: 1280×720 + 640×480 + 640×480 → 1,536,000 px → 2 licenses."""
    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device, width=1280, height=720)
    CameraFactory(device=device, width=640, height=480)
    CameraFactory(device=device, width=640, height=480)
    CameraFactory(device=device, width=7680, height=4320, enabled=False)  # disabled: not counted
    LicenseFactory(tenant=tenant, device=device)
    body = viewer_api.get(f"{URL}{device.pk}/").json()
    assert body["aggregate_pixels"] == 1_536_000
    assert body["licenses_required"] == 2
    assert body["licenses_valid"] == 1
    assert body["status"] == "under_licensed"
    LicenseFactory(tenant=tenant, device=device)
    assert viewer_api.get(f"{URL}{device.pk}/").json()["status"] == "licensed"


def test_read_honours_max_concurrent_streams(admin_api, tenant):
    """R1: with max_concurrent_streams = k only the k largest streams count."""
    device = DeviceFactory(tenant=tenant, max_concurrent_streams=1)
    CameraFactory(device=device, width=1920, height=1080)
    CameraFactory(device=device, width=1280, height=720)
    body = admin_api.get(f"{URL}{device.pk}/").json()
    assert body["aggregate_pixels"] == 1920 * 1080
    assert body["licenses_required"] == 2  # 2.25 → 2


def test_expired_licenses_do_not_count_on_read(admin_api, tenant, time_machine):
    """R5: validity is computed from expires_at on every read, before any job runs."""
    device = DeviceFactory(tenant=tenant)
    lic = LicenseFactory(tenant=tenant, device=device)
    time_machine.move_to(lic.expires_at)
    body = admin_api.get(f"{URL}{device.pk}/").json()
    assert body["licenses_valid"] == 0
    assert body["status"] == "unlicensed"


def test_list_is_paginated_ordered_and_scoped_to_the_tenant(admin_api, tenant, other_tenant):
    for i in range(5):
        DeviceFactory(tenant=tenant, serial=f"dev_{i}", name=f"Device {4 - i}")
    DeviceFactory(tenant=other_tenant, serial="not_mine")
    body = admin_api.get(URL, {"page_size": 2}).json()
    assert body["count"] == 5
    assert [d["serial"] for d in body["results"]] == ["dev_0", "dev_1"]
    assert body["next"].endswith("?page=2&page_size=2")
    assert body["previous"] is None
    page3 = admin_api.get(URL, {"page_size": 2, "page": 3}).json()
    assert [d["serial"] for d in page3["results"]] == ["dev_4"]
    assert page3["next"] is None
    by_name = admin_api.get(URL, {"ordering": "-name"}).json()["results"]
    assert [d["name"] for d in by_name] == [f"Device {i}" for i in (4, 3, 2, 1, 0)]


def test_list_does_not_query_per_device(admin_api, tenant):
    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert admin_api.get(URL).status_code == 200
        return len(ctx.captured_queries)

    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device)
    LicenseFactory(tenant=tenant, device=device)
    queries()  # stamps the key's last_used_at, which later calls then skip
    few = queries()
    for _i in range(10):
        device = DeviceFactory(tenant=tenant)
        CameraFactory(device=device)
        CameraFactory(device=device)
        LicenseFactory(tenant=tenant, device=device)
    assert queries() == few


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"ordering": "bogus"}, "ordering"),
        ({"page": "abc"}, "page"),
        ({"page": "0"}, "page"),
        ({"page_size": "-1"}, "page_size"),
    ],
)
def test_list_rejects_bad_query_values(admin_api, query, field):
    response = admin_api.get(URL, query)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_page_past_the_end_is_404(admin_api):
    response = admin_api.get(URL, {"page": 99})
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "serial"),
        ({"serial": "Truck"}, "serial"),
        ({"serial": "truck-01"}, "serial"),
        ({"serial": "truck01\n"}, "serial"),
        ({"serial": "x" * 19}, "serial"),
        ({"serial": ""}, "serial"),
        ({"serial": ["truck"]}, "serial"),
        ({"serial": None}, "serial"),
        ({"serial": "ok", "max_concurrent_streams": 0}, "max_concurrent_streams"),
        ({"serial": "ok", "max_concurrent_streams": 9}, "max_concurrent_streams"),
        ({"serial": "ok", "max_concurrent_streams": "two"}, "max_concurrent_streams"),
        ({"serial": "ok", "max_concurrent_streams": 10**30}, "max_concurrent_streams"),
        ({"serial": "ok", "max_concurrent_streams": 1.5}, "max_concurrent_streams"),
        ({"serial": "ok", "name": "x" * 201}, "name"),
        ({"serial": "ok", "name": "nul\x00"}, "name"),
    ],
)
def test_create_validates_fields(admin_api, body, field):
    response = admin_api.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "INVALID"
    assert field in body["errors"]
    assert not FieldDevice.objects.exists()


def test_serial_is_unique_per_tenant_only(admin_api, tenant, other_tenant):
    DeviceFactory(tenant=other_tenant, serial="truck_01")
    assert admin_api.post(URL, {"serial": "truck_01"}, format="json").status_code == 201
    response = admin_api.post(URL, {"serial": "truck_01"}, format="json")
    assert response.status_code == 400
    assert "serial" in response.json()["errors"]


@pytest.mark.parametrize("raw", ["{bad json", "[1, 2]", '"text"', "null", "12"])
def test_malformed_or_non_object_bodies_are_400(admin_api, raw):
    response = admin_api.generic("POST", URL, raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID"


def test_form_bodies_are_415(admin_api):
    response = admin_api.post(URL, {"serial": "abc"})  # multipart
    assert response.status_code == 415
    assert response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_patch_changes_only_given_fields(admin_api, tenant):
    device = DeviceFactory(tenant=tenant, serial="truck_01", name="Truck", max_concurrent_streams=3)
    response = admin_api.patch(f"{URL}{device.pk}/", {"name": "Truck One"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Truck One"
    device.refresh_from_db()
    assert (device.serial, device.max_concurrent_streams) == ("truck_01", 3)
    response = admin_api.patch(
        f"{URL}{device.pk}/", {"max_concurrent_streams": None}, format="json"
    )
    assert response.json()["max_concurrent_streams"] is None


def test_patch_validates(admin_api, tenant):
    DeviceFactory(tenant=tenant, serial="taken")
    device = DeviceFactory(tenant=tenant, serial="truck_01")
    for body, field in (
        ({"serial": "taken"}, "serial"),
        ({"serial": "BAD"}, "serial"),
        ({"max_concurrent_streams": 12}, "max_concurrent_streams"),
    ):
        response = admin_api.patch(f"{URL}{device.pk}/", body, format="json")
        assert response.status_code == 400
        assert field in response.json()["errors"]
    device.refresh_from_db()
    assert device.serial == "truck_01"


def test_put_is_405(admin_api, tenant):
    device = DeviceFactory(tenant=tenant)
    response = admin_api.put(f"{URL}{device.pk}/", {"serial": "x"}, format="json")
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


def test_delete_unbinds_its_licenses(admin_api, tenant):
    """R7: deleting a device unbinds its licenses (audited) in the same transaction."""
    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device)
    lic = LicenseFactory(tenant=tenant, device=device)
    response = admin_api.delete(f"{URL}{device.pk}/")
    assert response.status_code == 204
    assert not FieldDevice.objects.filter(pk=device.pk).exists()
    lic.refresh_from_db()
    assert lic.device_id is None
    assert lic.status == License.Status.ACTIVE
    assert AuditEvent.objects.filter(action="license.unbound", target_id=str(lic.pk)).exists()
    assert admin_api.get(f"{URL}{device.pk}/").status_code == 404


def test_a_name_padded_past_its_length_is_refused_not_trimmed(admin_api):
    """The schema's maxLength holds for the value as sent (found by the API fuzz)."""
    response = admin_api.post("/api/v1/cockpits/", {"name": "    " + "x" * 198}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["errors"]
    response = admin_api.post("/api/v1/cockpits/", {"name": "  desk  "}, format="json")
    assert response.status_code == 201 and response.json()["name"] == "desk"
