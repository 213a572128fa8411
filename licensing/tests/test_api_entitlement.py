"""API v1 entitlement, "may this device push these streams now?" (R6), and the R10 mark.

The gateways' hot path: in steady state two SQL statements, whatever the number of cameras
and licenses: the key (console.api_auth, the one key look-up) and the device with its
cameras and license counts (licensing.selectors.device_entitlement_inputs).
"""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from console.models import ApiKey, Tenant
from console.tests.factories import CameraFactory, DeviceFactory, LicenseFactory, make_api_key
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
        "denied_reasons": {},
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
        "denied_reasons": {str(cam.pk): "NOT_ENOUGH_LICENSES"},
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


def test_steady_state_is_two_sql_statements(operator_api, tenant, device):
    """The hot path is two SQL statements: the key with its tenant, then the device with
    its cameras and license counts — with 8 cameras and 20 licenses, once the key is
    stamped this minute and the licenses served."""
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
        assert len(ctx.captured_queries) == 2, [q["sql"] for q in ctx.captured_queries]


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
    with CaptureQueriesContext(connection) as ctx:
        ask(operator_api, device.pk)
    assert len(ctx.captured_queries) == 3  # key, stamp (only when stale), then the device
    key.refresh_from_db()
    assert key.last_used_at > first


def test_revocation_and_suspension_take_effect_on_the_next_call(admin_api, tenant, device):
    """Nothing about the key or the tenant is kept between calls (R9)."""
    CameraFactory(device=device)
    LicenseFactory(tenant=tenant, device=device)
    assert ask(admin_api, device.pk).status_code == 200
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    response = ask(admin_api, device.pk)
    assert response.status_code == 403
    assert response.json()["code"] == "TENANT_SUSPENDED"
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.ACTIVE)
    assert ask(admin_api, device.pk).status_code == 200
    ApiKey.objects.update(revoked_at=timezone.now())
    response = ask(admin_api, device.pk)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    # Word for word what the endpoints that look the key up on their own answer.
    elsewhere = admin_api.get("/api/v1/devices/")
    assert elsewhere.status_code == 401
    assert response.json() == elsewhere.json()
    assert response.json()["code"] == "NOT_AUTHENTICATED"


def test_the_key_is_checked_before_the_id_and_the_body(tenant, device):
    """A bad key is a 401 whatever else is wrong, as on every endpoint; then an id that
    cannot exist is a 404 before the body is read; then a bad body is a 400, even for a
    device that is not the tenant's."""
    _key, raw = make_api_key(tenant, ApiKey.Role.VIEWER)
    wrong = APIClient()
    wrong.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}x")
    for device_id, body in ((device.pk, "{"), (2**63, "{"), (999999, "[]")):
        response = wrong.generic("POST", url(device_id), body, content_type="application/json")
        assert response.status_code == 401
    response = wrong.post(url(device.pk), {"cameras": [1]})  # multipart
    assert response.status_code == 401
    right = APIClient()
    right.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = right.generic("POST", url(2**63), "{", content_type="application/json")
    assert response.status_code == 404
    response = right.generic("POST", url(999999), "{", content_type="application/json")
    assert response.status_code == 400
    assert right.post(url(999999), {}, format="json").status_code == 404


def test_a_bad_key_is_a_401_even_with_a_body_over_the_limit(tenant, device, settings):
    """The body is read before the statement but judged after the key."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    _key, raw = make_api_key(tenant, ApiKey.Role.VIEWER)
    small = '{"cameras": [' + ", ".join(["1"] * 100) + "]}"  # read before the key check
    large = '{"cameras": [' + ", ".join(["1"] * 1000) + "]}"  # read after it
    # UTF-8 bodies are read by the view itself, others through DRF's parser: both defer.
    for content_type, body in (
        ("application/json", small),
        ("application/json; charset=latin-1", small),
        ("application/json", large),
        ("application/json; charset=latin-1", large),
    ):
        for header, device_id, expected in (
            (f"Bearer {raw}x", device.pk, 401),
            (f"Bearer {raw}", 0, 404),
            (f"Bearer {raw}", device.pk, 413),
        ):
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=header)
            response = client.generic("POST", url(device_id), body, content_type=content_type)
            assert response.status_code == expected, (content_type, header)
            assert set(response.json()) >= {"code", "detail", "errors"}
    assert not License.objects.filter(first_served_at__isnull=False).exists()


@pytest.mark.parametrize("size", [2048, 2049])  # read before the key check, or after it
def test_a_bad_key_is_a_401_whatever_the_body(tenant, device, size):
    _key, raw = make_api_key(tenant, ApiKey.Role.VIEWER)
    bodies = [
        ("[" * (size // 2) + "]" * (size - size // 2), "application/json"),  # nested too deep
        ("{" + " " * (size - 2) + "}", "application/json; charset=latin-1"),
        ("x" * size, "text/plain"),
    ]
    for body, content_type in bodies:
        assert len(body) == size
        for header, device_id, expected in (
            (f"Bearer {raw}x", device.pk, 401),
            (f"Bearer {raw}", 0, 404),
        ):
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=header)
            response = client.generic("POST", url(device_id), body, content_type=content_type)
            assert response.status_code == expected, (body[:10], content_type, header)


def test_a_chunked_body_is_refused_rather_than_read_as_empty(admin_api, tenant, device):
    """Without a Content-Length the WSGI request reads nothing: an empty body would mean
    "all enabled cameras", not the cameras the gateway sent."""
    CameraFactory(device=device)
    LicenseFactory(tenant=tenant, device=device)
    response = admin_api.generic(
        "POST",
        url(device.pk),
        "",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )
    assert response.status_code == 411
    assert response.json()["code"] == "LENGTH_REQUIRED"
    assert not License.objects.filter(first_served_at__isnull=False).exists()


def test_an_invalid_content_length_reads_as_no_body(admin_api, tenant, device):
    """As DRF reads it (gunicorn refuses such a header before Django sees it)."""
    cam = CameraFactory(device=device)
    LicenseFactory(tenant=tenant, device=device)
    response = admin_api.generic(
        "POST", url(device.pk), "", content_type="application/json", CONTENT_LENGTH="abc"
    )
    assert response.status_code == 200
    assert response.json()["granted_cameras"] == [cam.pk]


def test_other_methods_authenticate_as_usual(tenant, device, anon_api):
    """Only POST reads the key in its own statement; OPTIONS and a 405 still need a key."""
    _key, raw = make_api_key(tenant, ApiKey.Role.VIEWER)
    for header, expected in ((f"Bearer {raw}x", 401), (f"Bearer {raw}", None)):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        get, options = client.get(url(device.pk)), client.options(url(device.pk))
        if expected:
            assert (get.status_code, options.status_code) == (expected, expected)
        else:
            assert (get.status_code, options.status_code) == (405, 200)
    assert anon_api.get(url(device.pk)).status_code == 401


def test_a_console_session_uses_the_session_path(alice, tenant, device):
    """Without a Bearer header the key path is not taken: a member's session still works."""
    cam = CameraFactory(device=device)
    LicenseFactory(tenant=tenant, device=device)
    client = APIClient()
    client.force_login(alice)
    response = client.post(url(device.pk), {}, format="json")
    assert response.status_code == 200
    assert response.json()["granted_cameras"] == [cam.pk]


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

    orm = device_valid_licenses(tenant, device, at=at)
    expiries = sorted(orm.values_list("expires_at", flat=True))
    inputs = device_entitlement_inputs(tenant, device.pk, at=at)
    assert inputs.lic_valid == orm.count()
    assert inputs.lic_unserved == orm.filter(first_served_at__isnull=True).count()
    assert inputs.lic_until == (expiries[0] if expiries else None)
    assert [(c.pk, c.pixels, c.enabled, c.priority) for c in inputs.cameras] == [
        (c.pk, c.pixels, c.enabled, c.priority) for c in device.cameras.order_by("id")
    ]
    assert inputs.max_concurrent_streams == device.max_concurrent_streams
    assert device_entitlement_inputs(other_tenant, device.pk, at=at) is None
    bare = device_entitlement_inputs(tenant, sibling.pk, at=at)
    assert bare.cameras == [] and bare.lic_valid == (1 if offset_days < 365 else 0)
