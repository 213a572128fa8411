"""API v1 cameras: CRUD, the `?device=` filter, R1's size limits and the 8-camera cap.

Who may call is covered for every endpoint in console/tests/test_api_access.py.
"""

import pytest

from console.tests.factories import CameraFactory, DeviceFactory
from devices.models import Camera

pytestmark = pytest.mark.django_db

URL = "/api/v1/cameras/"


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant, serial="truck_01")


def test_create_with_defaults(admin_api, device):
    response = admin_api.post(
        URL, {"device": device.pk, "width": 1280, "height": 720}, format="json"
    )
    assert response.status_code == 201, response.content
    camera = Camera.objects.get(device=device)
    assert response.json() == {
        "id": camera.pk,
        "device": device.pk,
        "name": "",
        "width": 1280,
        "height": 720,
        "enabled": True,
        "priority": 0,
    }


def test_create_all_fields(admin_api, device):
    body = {
        "device": device.pk,
        "name": "front",
        "width": 7680,
        "height": 4320,
        "enabled": False,
        "priority": -3,
    }
    response = admin_api.post(URL, body, format="json")
    assert response.status_code == 201
    assert {k: v for k, v in response.json().items() if k != "id"} == body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"width": 1280, "height": 720}, "device"),
        ({"device": "abc", "width": 1280, "height": 720}, "device"),
        ({"device": 10**30, "width": 1280, "height": 720}, "device"),
        ({"device": "{device}", "height": 720}, "width"),
        ({"device": "{device}", "width": 0, "height": 720}, "width"),
        ({"device": "{device}", "width": -1, "height": 720}, "width"),
        ({"device": "{device}", "width": 7681, "height": 720}, "width"),
        ({"device": "{device}", "width": "wide", "height": 720}, "width"),
        ({"device": "{device}", "width": 1280, "height": 10**40}, "height"),
        # Each side fits but not the product: at most 7680 × 4320 pixels (R1).
        ({"device": "{device}", "width": 7680, "height": 7680}, "width"),
        ({"device": "{device}", "width": 1280, "height": 720, "priority": 1001}, "priority"),
        ({"device": "{device}", "width": 1280, "height": 720, "priority": "high"}, "priority"),
        ({"device": "{device}", "width": 1280, "height": 720, "enabled": "maybe"}, "enabled"),
    ],
)
def test_create_validates(admin_api, device, body, field):
    body = {k: (device.pk if v == "{device}" else v) for k, v in body.items()}
    response = admin_api.post(URL, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]
    assert not Camera.objects.exists()


def test_another_tenants_device_is_a_field_error(admin_api, other_tenant):
    """Not a 500, not a 404 that would confirm the id exists: a field error."""
    foreign = DeviceFactory(tenant=other_tenant)
    response = admin_api.post(
        URL, {"device": foreign.pk, "width": 1280, "height": 720}, format="json"
    )
    assert response.status_code == 400
    assert "device" in response.json()["errors"]
    assert not Camera.objects.exists()


def test_a_device_holds_at_most_8_cameras(admin_api, device):
    """R1: the service carries at most 8 streams per device."""
    for _i in range(8):
        CameraFactory(device=device)
    response = admin_api.post(
        URL, {"device": device.pk, "width": 640, "height": 480}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "TOO_MANY_CAMERAS"
    assert Camera.objects.filter(device=device).count() == 8


def test_list_filters_by_device_and_is_scoped(admin_api, tenant, other_tenant, device):
    other_device = DeviceFactory(tenant=tenant, serial="truck_02")
    a = CameraFactory(device=device)
    b = CameraFactory(device=other_device)
    CameraFactory(device=DeviceFactory(tenant=other_tenant))
    ids = [c["id"] for c in admin_api.get(URL).json()["results"]]
    assert ids == [a.pk, b.pk]
    filtered = admin_api.get(URL, {"device": device.pk}).json()
    assert [c["id"] for c in filtered["results"]] == [a.pk]
    assert admin_api.get(URL, {"device": 10**6}).json()["count"] == 0


def test_list_ordering(admin_api, device):
    low = CameraFactory(device=device, priority=1)
    high = CameraFactory(device=device, priority=9)
    ids = [c["id"] for c in admin_api.get(URL, {"ordering": "-priority"}).json()["results"]]
    assert ids == [high.pk, low.pk]


@pytest.mark.parametrize(
    "query",
    [
        {"device": "abc"},
        {"device": "0"},
        {"device": "1.5"},
        {"device": str(10**30)},
        {"ordering": "width"},
    ],
)
def test_list_rejects_bad_filter_values(admin_api, query):
    response = admin_api.get(URL, query)
    assert response.status_code == 400
    assert set(query) <= set(response.json()["errors"])


def test_patch_updates(admin_api, device):
    camera = CameraFactory(device=device, width=1280, height=720)
    response = admin_api.patch(
        f"{URL}{camera.pk}/", {"width": 1920, "height": 1080, "enabled": False}, format="json"
    )
    assert response.status_code == 200
    camera.refresh_from_db()
    assert (camera.width, camera.height, camera.enabled) == (1920, 1080, False)


def test_patch_checks_the_pixel_limit_against_the_stored_side(admin_api, device):
    camera = CameraFactory(device=device, width=7680, height=720)
    response = admin_api.patch(f"{URL}{camera.pk}/", {"height": 7680}, format="json")
    assert response.status_code == 400
    camera.refresh_from_db()
    assert camera.height == 720


def test_patch_cannot_move_a_camera_to_another_device(admin_api, tenant, device):
    camera = CameraFactory(device=device)
    other = DeviceFactory(tenant=tenant, serial="truck_02")
    response = admin_api.patch(f"{URL}{camera.pk}/", {"device": other.pk}, format="json")
    assert response.status_code == 400
    assert "device" in response.json()["errors"]
    camera.refresh_from_db()
    assert camera.device_id == device.pk
    # Naming its own device is fine.
    response = admin_api.patch(f"{URL}{camera.pk}/", {"device": device.pk}, format="json")
    assert response.status_code == 200


def test_get_and_delete(admin_api, device):
    camera = CameraFactory(device=device)
    assert admin_api.get(f"{URL}{camera.pk}/").json()["id"] == camera.pk
    assert admin_api.delete(f"{URL}{camera.pk}/").status_code == 204
    assert not Camera.objects.filter(pk=camera.pk).exists()
    assert admin_api.get(f"{URL}{camera.pk}/").status_code == 404
