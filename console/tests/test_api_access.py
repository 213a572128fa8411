"""Who may call what, for every endpoint of API v1 (CONTRACT.md, "Key roles"):

no key → 401, a role that does not allow the call → 403, another tenant's object → 404,
a suspended tenant → 403 TENANT_SUSPENDED (R9). The error body always has the one shape.
"""

import json

import pytest
from rest_framework.test import APIClient

from console.models import ApiKey, Tenant
from console.tests.factories import (
    CameraFactory,
    CockpitFactory,
    DeviceFactory,
    LicenseFactory,
    make_api_key,
)
from devices.models import ControlSession

pytestmark = pytest.mark.django_db

ALL = {"admin", "operator", "viewer"}
CONTROL = {"admin", "operator"}
ADMIN = {"admin"}

# (method, path, body, roles allowed). {device} etc. are the tenant's objects' ids.
ENDPOINTS = [
    ("GET", "/api/v1/devices/", None, ALL),
    ("POST", "/api/v1/devices/", {"serial": "new_device"}, ADMIN),
    ("GET", "/api/v1/devices/{device}/", None, ALL),
    ("PATCH", "/api/v1/devices/{device}/", {"name": "Renamed"}, ADMIN),
    ("DELETE", "/api/v1/devices/{device}/", None, ADMIN),
    ("POST", "/api/v1/devices/{device}/bind-licenses", {"count": 1}, ADMIN),
    ("POST", "/api/v1/devices/{device}/entitlement", {}, ALL),
    ("POST", "/api/v1/devices/{device}/control-session", {"cockpit": "{cockpit}"}, CONTROL),
    ("GET", "/api/v1/cameras/", None, ALL),
    ("POST", "/api/v1/cameras/", {"device": "{device}", "width": 640, "height": 480}, ADMIN),
    ("GET", "/api/v1/cameras/{camera}/", None, ALL),
    ("PATCH", "/api/v1/cameras/{camera}/", {"priority": 5}, ADMIN),
    ("DELETE", "/api/v1/cameras/{camera}/", None, ADMIN),
    ("GET", "/api/v1/cockpits/", None, ALL),
    ("POST", "/api/v1/cockpits/", {"name": "Cockpit B"}, ADMIN),
    ("GET", "/api/v1/cockpits/{cockpit}/", None, ALL),
    ("PATCH", "/api/v1/cockpits/{cockpit}/", {"name": "Renamed"}, ADMIN),
    ("DELETE", "/api/v1/cockpits/{cockpit}/", None, ADMIN),
    ("GET", "/api/v1/licenses/", None, ALL),
    ("GET", "/api/v1/licenses/{license}/", None, ALL),
    ("POST", "/api/v1/licenses/{free_license}/bind", {"device": "{device}"}, ADMIN),
    ("POST", "/api/v1/licenses/{license}/unbind", None, ADMIN),
    ("POST", "/api/v1/control-sessions/{session}/heartbeat", None, CONTROL),
    ("DELETE", "/api/v1/control-sessions/{session}", None, CONTROL),
]
IDS = [f"{method} {path}" for method, path, _body, _roles in ENDPOINTS]
# Endpoints whose path names one of the tenant's objects.
OBJECT_ENDPOINTS = [e for e in ENDPOINTS if "{" in e[1]]


@pytest.fixture
def world(tenant):
    """The tenant's objects every endpoint can act on."""
    device = DeviceFactory(tenant=tenant, serial="truck_01")
    camera = CameraFactory(device=device)
    cockpit = CockpitFactory(tenant=tenant, name="Cockpit A")
    license = LicenseFactory(tenant=tenant, device=device)
    free_license = LicenseFactory(tenant=tenant)
    session = ControlSession.objects.create(
        device=device,
        cockpit=cockpit,
        lease_expires_at=license.expires_at,  # long enough for any test
    )
    return {
        "device": device.pk,
        "camera": camera.pk,
        "cockpit": cockpit.pk,
        "license": license.pk,
        "free_license": free_license.pk,
        "session": session.pk,
    }


def _fill(value, ids):
    if value is None:
        return None
    text = json.dumps(value)
    for name, pk in ids.items():
        text = text.replace(f'"{{{name}}}"', str(pk)).replace(f"{{{name}}}", str(pk))
    return json.loads(text)


def call(client, endpoint, ids):
    method, path, body, _roles = endpoint
    return client.generic(
        method,
        _fill(path, ids),
        data=json.dumps(_fill(body, ids)) if body is not None else "",
        content_type="application/json",
    )


def client_for(tenant, role):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant, role)[1]}")
    return client


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) >= {"code", "detail", "errors"}
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_no_key_is_401(endpoint, world, anon_api):
    response = call(anon_api, endpoint, world)
    assert_error(response, 401, "NOT_AUTHENTICATED")
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_wrong_or_revoked_key_is_401(endpoint, world, tenant):
    key, raw = make_api_key(tenant, ApiKey.Role.ADMIN)
    for header in (
        f"Bearer {raw}x",
        f"Bearer {raw[:-1]}",
        "Bearer",
        f"Bearer {raw} extra",
        f"Token {raw}",
        "Bearer " + "x" * 500,
    ):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=header)
        assert_error(call(client, endpoint, world), 401, "NOT_AUTHENTICATED")
    key.revoked_at = key.created_at
    key.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert_error(call(client, endpoint, world), 401, "NOT_AUTHENTICATED")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_role_that_does_not_allow_the_call_is_403(endpoint, world, tenant):
    refused = ALL - endpoint[3]
    for role in refused:
        response = call(client_for(tenant, role), endpoint, world)
        assert_error(response, 403, "FORBIDDEN")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_allowed_roles_get_through(endpoint, world, tenant):
    for role in sorted(endpoint[3]):
        response = call(client_for(tenant, role), endpoint, world)
        assert response.status_code < 300, (role, response.content)
        if endpoint[0] in ("POST", "PATCH", "DELETE") and endpoint[1] != (
            "/api/v1/devices/{device}/entitlement"
        ):
            break  # one write is enough: the object may be gone now


@pytest.mark.parametrize(
    "endpoint", OBJECT_ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in OBJECT_ENDPOINTS]
)
def test_another_tenants_object_is_404(endpoint, world, other_api):
    """Everything of `tenant` is a 404 to the other tenant's admin key: never data, never a
    400 or 403 that would confirm the object exists."""
    assert_error(call(other_api, endpoint, world), 404, "NOT_FOUND")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=IDS)
def test_suspended_tenant_is_403_tenant_suspended(endpoint, world, tenant, admin_api):
    """R9: a suspended tenant's API calls get 403 TENANT_SUSPENDED, whatever the key."""
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    assert_error(call(admin_api, endpoint, world), 403, "TENANT_SUSPENDED")


@pytest.mark.parametrize(
    "endpoint", OBJECT_ENDPOINTS, ids=[f"{e[0]} {e[1]}" for e in OBJECT_ENDPOINTS]
)
def test_ids_that_cannot_exist_are_404(endpoint, world, admin_api):
    for pk in (0, 999999, 2**63, 10**30):
        # The object the path names cannot exist; ids in the body stay valid.
        ids = {name: pk if f"{{{name}}}" in endpoint[1] else real for name, real in world.items()}
        response = call(admin_api, endpoint, ids)
        assert_error(response, 404, "NOT_FOUND")
