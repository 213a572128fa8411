"""API v1 entitlement, "may this device push these streams now?" (R6), and the R10 mark.

The gateways' hot path: in steady state it must stay within three SQL statements, the key
look-up included, whatever the number of cameras and licenses.
"""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.models import ApiKey
from console.tests.factories import CameraFactory, DeviceFactory, LicenseFactory
from licensing.models import License
from licensing.selectors import device_entitlement_inputs, device_valid_licenses

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant, serial="truck_01")


def url(device_id) -> str:
    return f"/api/v1/devices/{device_id}/entitlement"


def ask(client, device_id, body=None):
    return client.post(url(device_id), body if body is not None else {}, format="json")


def test_valid_with_all_enabled_cameras(operator_api, tenant, device):
    """R6: enough valid licenses for the requested cameras → full service."""
    a = CameraFactory(device=device, width=1280, height=720)
    b = CameraFactory(device=device, width=640, height=480)
    CameraFactory(device=device, width=640, height=480, enabled=False)
    lic = LicenseFactory(tenant=tenant, device=device)
    LicenseFactory(tenant=tenant, device=device)
    response = ask(operator_api, device.pk)
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "code": "VALID",
        "licenses_valid": 2,
        "licenses_required": 1,  # R1: 1,228,800 px → ratio 1.33 → 1 license
        "granted_cameras": [a.pk, b.pk],
        "denied_cameras": [],
        "valid_until": body["valid_until"],
    }
    assert dt.datetime.fromisoformat(body["valid_until"]) == lic.expires_at
    assert body["valid_until"].endswith("+08:00")


def test_degraded_keeps_by_priority_then_id(viewer_api, tenant, device):
    """R6: fewer licenses than needed → take cameras by priority (higher first, equal:
    lower id first), keep each that still fits, never more than max_concurrent_streams."""
    low = CameraFactory(device=device, width=1280, height=720, priority=0)
    high = CameraFactory(device=device, width=1280, height=720, priority=5)
    big = CameraFactory(device=device, width=1920, height=1080, priority=9)  # 2.25 → 2 alone
    LicenseFactory(tenant=tenant, device=device)
    body = ask(viewer_api, device.pk, {"cameras": [low.pk, high.pk, big.pk]}).json()
    assert body["code"] == "DEGRADED"
    assert body["licenses_required"] == 4  # 3,916,800 px → 4.25 → 4
    assert body["granted_cameras"] == [high.pk]
    assert sorted(body["denied_cameras"]) == sorted([big.pk, low.pk])


def test_no_valid_license_grants_nothing(admin_api, tenant, device):
    cam = CameraFactory(device=device)
    LicenseFactory(tenant=tenant)  # unbound: does not count
    body = ask(admin_api, device.pk).json()
    assert body == {
        "code": "NO_VALID_LICENSE",
        "licenses_valid": 0,
        "licenses_required": 1,
        "granted_cameras": [],
        "denied_cameras": [cam.pk],
        "valid_until": None,
    }


def test_expired_license_stops_counting_at_its_expiry_instant(
    admin_api, tenant, device, time_machine
):
    """R5: no job needed; at expires_at the license no longer counts."""
    CameraFactory(device=device)
    lic = LicenseFactory(tenant=tenant, device=device)
    time_machine.move_to(lic.expires_at - dt.timedelta(seconds=5), tick=False)
    assert ask(admin_api, device.pk).json()["code"] == "VALID"
    time_machine.move_to(lic.expires_at, tick=False)
    assert ask(admin_api, device.pk).json()["code"] == "NO_VALID_LICENSE"


def test_requested_disabled_cameras_are_denied(admin_api, tenant, device):
    on = CameraFactory(device=device)
    off = CameraFactory(device=device, enabled=False)
    LicenseFactory(tenant=tenant, device=device)
    body = ask(admin_api, device.pk, {"cameras": [on.pk, off.pk]}).json()
    assert body["code"] == "DEGRADED"
    assert body["granted_cameras"] == [on.pk]
    assert body["denied_cameras"] == [off.pk]


def test_grant_marks_the_valid_licenses_served(operator_api, tenant, device):
    """R10: every valid license bound to the device when it served gets first_served_at;
    a refusal marks nothing, and a later grant keeps the first date."""
    CameraFactory(device=device)
    unbound = LicenseFactory(tenant=tenant)
    assert ask(operator_api, device.pk).json()["code"] == "NO_VALID_LICENSE"
    bound = [LicenseFactory(tenant=tenant, device=device) for _i in range(2)]
    assert ask(operator_api, device.pk).json()["code"] == "VALID"
    served = {lic.pk: lic.first_served_at for lic in License.objects.filter(device=device)}
    assert set(served) == {lic.pk for lic in bound}
    assert all(served.values())
    unbound.refresh_from_db()
    assert unbound.first_served_at is None
    ask(operator_api, device.pk)
    assert {lic.pk: lic.first_served_at for lic in License.objects.filter(device=device)} == served
    # And the API shows it.
    shown = operator_api.get(f"/api/v1/licenses/{bound[0].pk}/").json()["first_served_at"]
    assert dt.datetime.fromisoformat(shown) == served[bound[0].pk]


def test_steady_state_is_three_sql_statements(operator_api, tenant, device):
    """The hot path stays within 3 SQL statements, the key look-up included (today: the key
    with its tenant, then the device with its cameras and license counts) — with 8 cameras
    and 20 licenses, once the key is stamped this minute and the licenses served."""
    cameras = [CameraFactory(device=device, width=1280, height=720) for _i in range(8)]
    for _i in range(20):
        LicenseFactory(tenant=tenant, device=device)
    for _i in range(5):
        LicenseFactory(tenant=tenant)
    assert ask(operator_api, device.pk).json()["code"] == "VALID"  # stamps key, marks served
    assert ApiKey.objects.filter(last_used_at__isnull=False).exists()
    assert not License.objects.filter(device=device, first_served_at__isnull=True).exists()

    for body in ({}, {"cameras": [c.pk for c in cameras[:3]]}):
        with CaptureQueriesContext(connection) as ctx:
            response = ask(operator_api, device.pk, body)
        assert response.status_code == 200
        assert response.json()["code"] == "VALID"
        assert len(ctx.captured_queries) <= 3, [q["sql"] for q in ctx.captured_queries]


def test_key_last_used_at_is_written_at_most_once_a_minute(
    operator_api, tenant, device, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    ask(operator_api, device.pk)
    key = ApiKey.objects.get(role=ApiKey.Role.OPERATOR)
    first = key.last_used_at
    assert first is not None
    time_machine.shift(dt.timedelta(seconds=59))
    ask(operator_api, device.pk)
    key.refresh_from_db()
    assert key.last_used_at == first
    time_machine.shift(dt.timedelta(seconds=2))
    ask(operator_api, device.pk)
    key.refresh_from_db()
    assert key.last_used_at > first


@pytest.mark.parametrize(
    "body",
    [
        {"cameras": []},
        {"cameras": ["abc"]},
        {"cameras": [1.5]},
        {"cameras": [0]},
        {"cameras": [10**30]},
        {"cameras": "1,2"},
        {"cameras": None},
        {"cameras": [[1]]},
        {"cameras": list(range(1, 100))},
    ],
)
def test_bad_camera_lists_are_400(admin_api, tenant, device, body):
    CameraFactory(device=device)
    LicenseFactory(tenant=tenant, device=device)
    response = ask(admin_api, device.pk, body)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "INVALID"
    assert "cameras" in next(iter(response.json()["errors"]))
    assert not License.objects.filter(first_served_at__isnull=False).exists()


def test_cameras_of_another_device_are_400(admin_api, tenant, other_tenant, device):
    mine = CameraFactory(device=device)
    sibling = CameraFactory(device=DeviceFactory(tenant=tenant))
    foreign = CameraFactory(device=DeviceFactory(tenant=other_tenant))
    LicenseFactory(tenant=tenant, device=device)
    for ids in ([mine.pk, sibling.pk], [foreign.pk]):
        response = ask(admin_api, device.pk, {"cameras": ids})
        assert response.status_code == 400
        assert "cameras" in response.json()["errors"]
    assert not License.objects.filter(first_served_at__isnull=False).exists()


@pytest.mark.parametrize("raw", ["{", "[]", "null", '"x"', "1e999"])
def test_malformed_bodies_are_400(admin_api, device, raw):
    response = admin_api.generic("POST", url(device.pk), raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID"


def test_only_json_bodies_are_accepted(admin_api, device):
    response = admin_api.post(url(device.pk), {"cameras": [1]})  # multipart
    assert response.status_code == 415
    assert response.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    # Whatever the client accepts, the answer is JSON.
    response = admin_api.post(url(device.pk), {}, format="json", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_empty_body_means_all_enabled_cameras(admin_api, tenant, device):
    cam = CameraFactory(device=device)
    LicenseFactory(tenant=tenant, device=device)
    response = admin_api.generic("POST", url(device.pk), "", content_type="application/json")
    assert response.status_code == 200
    assert response.json()["granted_cameras"] == [cam.pk]


@pytest.mark.parametrize("offset_days", [0, 9, 10, 11, 400])
def test_hot_path_sql_agrees_with_the_orm_validity_rule(tenant, other_tenant, offset_days):
    """The entitlement's hand-written statement must count exactly the licenses that
    LicenseQuerySet.valid_at counts (R5, R6): not refunded, started, not yet expired — at
    every instant, including exactly at an expiry."""
    now = timezone.now().replace(microsecond=0)
    device = DeviceFactory(tenant=tenant, serial="truck_01")
    sibling = DeviceFactory(tenant=tenant, serial="truck_02")
    for width in (1920, 1280, 640):
        CameraFactory(device=device, width=width, height=720, enabled=width != 640)
    day = dt.timedelta(days=1)
    LicenseFactory(tenant=tenant, device=device, expires_at=now + 10 * day)
    LicenseFactory(tenant=tenant, device=device, first_served_at=now, expires_at=now + 300 * day)
    LicenseFactory(tenant=tenant, device=device, starts_at=now - 400 * day, expires_at=now - day)
    LicenseFactory(tenant=tenant, device=device, starts_at=now + 5 * day)  # not started yet
    LicenseFactory(tenant=tenant, device=sibling)
    LicenseFactory(tenant=tenant, status=License.Status.REFUNDED)
    LicenseFactory(tenant=tenant, status=License.Status.EXPIRED, device=device)  # stored flag
    at = now + offset_days * day

    inputs = device_entitlement_inputs(tenant, device.pk, at=at)
    orm = device_valid_licenses(tenant, device, at=at)
    assert inputs.lic_valid == orm.count()
    assert inputs.lic_unserved == orm.filter(first_served_at__isnull=True).count()
    expiries = sorted(orm.values_list("expires_at", flat=True))
    assert inputs.lic_until == (expiries[0] if expiries else None)
    assert [(c.pk, c.pixels, c.enabled) for c in inputs.cameras] == [
        (c.pk, c.pixels, c.enabled) for c in device.cameras.order_by("id")
    ]
    assert device_entitlement_inputs(other_tenant, device.pk, at=at) is None
    bare = device_entitlement_inputs(tenant, sibling.pk, at=at)
    assert bare.cameras == [] and bare.lic_valid == (1 if offset_days < 365 else 0)
