"""R9: a suspended tenant. Every API operation of the schema answers 403 TENANT_SUSPENDED,
whatever the key; every console page of the tenant is read-only: a POST (or any other
write method) to any of them is refused with a page that says why and changes no row; the
shell's banner gives the staff's reason; no API key can be made.

The console's URLs are enumerated from the URL conf, the API's operations from the OpenAPI
generator, so a page or an endpoint added later is covered without an edit here."""

import json
import re

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from billing.tests.utils import new_order, paid_new_order
from console.models import ApiKey, Tenant
from console.staff_services import tenant_suspend
from console.tests.factories import (
    CameraFactory,
    CockpitFactory,
    DeviceFactory,
    LicenseFactory,
    make_api_key,
)
from devices.models import ControlSession

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

REFUSAL = "This organisation is suspended: the console is read-only"

# Pages that are not the tenant's (no member_required): accounts, the beta application,
# the language switch. A POST to them changes a user or a session, never a tenant's rows;
# each new one must be named here (or answer 405 to a POST) for the test to pass.
ACCOUNT_PAGES = {
    "signup",
    "signup-confirm",
    "login",
    "logout",
    "password_reset",
    "password_reset_confirm",
    "password_change",
    "apply",
    "application-withdraw",
    "set_language",
    # A user accepting an invitation is not yet a member (the invitation's own checks).
    "invitation-accept",
}
# Rows a POST to an account page may write: sessions, login counters.
NOT_COUNTED = {"sessions.session", "axes.accessattempt", "axes.accesslog", "axes.accessfailurelog"}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            route = prefix + str(pattern.pattern)
            if route.startswith(("admin/", "api/")):
                continue  # the admin is staff's; the API is tested below
            yield from _walk(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def console_urls():
    """(route, URL name, is a tenant page) for every page outside the admin and the API."""
    return [
        (route, pattern.name, getattr(pattern.callback, "tenant_page", False))
        for route, pattern in _walk(get_resolver().url_patterns)
        if not route.startswith(("healthz", ".well-known/", "api/"))
    ]


def _concrete(route: str, ids: dict) -> str:
    """/devices/<int:device_id>/ → /devices/12/ with the tenant's own objects."""

    def fill(match):
        name = match.group(2)
        if name == "action":
            return "disable"
        if name in ("token", "uidb64"):
            return "x"
        return str(ids.get(name, ids["pk"]))

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


def row_counts() -> dict[str, int]:
    return {
        model._meta.label_lower: model.objects.count()
        for model in apps.get_models()
        if model._meta.label_lower not in NOT_COUNTED and not model._meta.proxy
    }


# Every field any console form takes, valid: were the guard missing, most POSTs would
# change something.
FORM = {
    "serial": "truck_99",
    "name": "Renamed",
    "max_concurrent_streams": "2",
    "width": "1280",
    "height": "720",
    "enabled": "on",
    "priority": "1",
    "count": "1",
    "quantity": "1",
    "years": "1",
    "role": "admin",
    "reason": "because",
    "confirm": "on",
    "url": "https://example.com/hook",
    "events": "*",
}


@pytest.fixture
def suspended(tenant, alice):
    """alice's tenant, with every kind of object, then suspended by staff with a reason."""
    device = DeviceFactory(tenant=tenant, serial="truck_01")
    camera = CameraFactory(device=device)
    cockpit = CockpitFactory(tenant=tenant)
    license = LicenseFactory(tenant=tenant, device=device)
    free = LicenseFactory(tenant=tenant)
    order = new_order(tenant)
    paid = paid_new_order(tenant)
    key, _raw = make_api_key(tenant, ApiKey.Role.ADMIN)
    session = ControlSession.objects.create(
        device=device, cockpit=cockpit, lease_expires_at=license.expires_at
    )
    tenant_suspend(tenant=tenant, actor="test", reason="Unpaid invoice 2026-07")
    tenant.refresh_from_db()
    return {
        "device_id": device.pk,
        "camera_id": camera.pk,
        "cockpit_id": cockpit.pk,
        "license_id": free.pk,
        "order_id": paid.pk,
        "pending_order_id": order.pk,
        "pk": key.pk,
        "delivery_id": 1,
        "session_id": session.pk,
        "licenses": [license.pk, free.pk],
    }


def test_every_console_page_is_classified():
    """A page is the tenant's (member_required) or an account page named above."""
    for route, name, tenant_page in console_urls():
        assert tenant_page or name in ACCOUNT_PAGES or name is not None, route


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_every_tenant_page_refuses_writes_and_changes_nothing(owner, suspended, method):
    pages = [(route, name) for route, name, tenant_page in console_urls() if tenant_page]
    assert {"api-keys", "api-key-revoke", "device-edit", "order-new", "license-bind"} <= {
        name for _route, name in pages
    }
    before = row_counts()
    refused = set()
    for route, name in pages:
        url = _concrete(route, suspended)
        response = getattr(owner, method)(url, FORM if method == "post" else "")
        if response.status_code == 405:
            continue  # a read-only page: the method is not served to anyone
        refused.add(name)
        assert response.status_code == 403, (url, response.status_code)
        assert REFUSAL in response.content.decode(), url
        assert "Unpaid invoice 2026-07" in response.content.decode(), url
    assert row_counts() == before
    if method == "post":
        assert {"api-keys", "api-key-revoke", "devices", "order-new"} <= refused


def test_pages_that_are_not_the_tenants_change_no_tenant_row(owner, suspended):
    before = row_counts()
    for route, name, tenant_page in console_urls():
        if tenant_page or name in ("logout",):
            continue
        response = owner.post(_concrete(route, suspended), FORM)
        assert name in ACCOUNT_PAGES or response.status_code == 405, (route, name)
    after = row_counts()
    # An account page may touch the user (a password change), never a tenant's rows.
    for label in ("console.apikey", "console.membership", "devices.fielddevice", "billing.order"):
        assert after[label] == before[label], label


def test_key_creation_is_refused_and_the_form_hidden(owner, suspended, tenant):
    keys = ApiKey.objects.count()
    response = owner.post("/keys/", {"name": "Sneaky", "role": "admin"})
    assert response.status_code == 403
    assert b"fc_" not in response.content
    assert ApiKey.objects.count() == keys
    html = owner.get("/keys/").content.decode()
    assert 'name="role"' not in html and "Revoke" not in html
    assert "no key can be created or revoked" in html
    # …and the service refuses too, whoever calls it.
    from console.errors import Forbidden
    from console.services import api_key_create

    with pytest.raises(Forbidden):
        api_key_create(tenant=tenant, name="x", role="admin", actor="test")


def test_the_banner_says_why(owner, suspended):
    for url in ("/", "/devices/", "/orders/", "/keys/", "/team/"):
        html = owner.get(url).content.decode()
        assert 'id="suspended-banner"' in html, url
        assert "the console is read-only" in html
        assert "Reason: Unpaid invoice 2026-07" in html, url


def test_reactivated_pages_write_again(owner, suspended, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.ACTIVE)
    assert 'id="suspended-banner"' not in owner.get("/keys/").content.decode()
    response = owner.post("/keys/", {"name": "Gateway fleet", "role": "operator"})
    assert response.status_code == 200
    assert ApiKey.objects.filter(name="Gateway fleet").exists()


def test_viewer_of_a_suspended_tenant_is_refused_the_same_way(viewer, suspended):
    response = viewer.post("/keys/", {"name": "x", "role": "admin"})
    assert response.status_code == 403
    assert REFUSAL in response.content.decode()


# --- the API ----------------------------------------------------------------------------------


def api_operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_api_operation_is_403_tenant_suspended(suspended, tenant, client, alice):
    from rest_framework.test import APIClient

    operations = api_operations()
    assert {
        ("POST", "/api/v1/devices/{id}/entitlement"),
        ("POST", "/api/v1/devices/{id}/entitlement-token"),
        ("POST", "/api/v1/devices/{id}/control-session"),
        ("POST", "/api/v1/control-sessions/{id}/heartbeat"),
        ("DELETE", "/api/v1/control-sessions/{id}"),
    } <= set(operations)
    clients = []
    for role in ApiKey.Role.values:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant, role)[1]}")
        clients.append((role, api))
    session_client = APIClient()
    session_client.force_login(alice)
    clients.append(("console session", session_client))
    ids = {
        "/api/v1/devices/": suspended["device_id"],
        "/api/v1/cameras/": suspended["camera_id"],
        "/api/v1/cockpits/": suspended["cockpit_id"],
        "/api/v1/licenses/": suspended["license_id"],
        "/api/v1/orders/": suspended["order_id"],
        "/api/v1/control-sessions/": suspended["session_id"],
    }
    before = row_counts()
    for method, path in operations:
        concrete = path
        for prefix, pk in ids.items():
            if path.startswith(prefix):
                concrete = path.replace("{id}", str(pk))
        concrete = re.sub(r"\{\w+\}", "1", concrete)
        body = {"cockpit": suspended["cockpit_id"], "cameras": [], "count": 1}
        for role, api in clients:
            response = api.generic(
                method,
                concrete,
                data="" if method in ("GET", "DELETE") else json.dumps(body),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY="suspended-1",
                HTTP_X_CONTROL_TOKEN="x",
            )
            assert response.status_code == 403, (role, method, concrete, response.content)
            assert response.json()["code"] == "TENANT_SUSPENDED", (role, method, concrete)
    # Keys' last_used_at may be touched; nothing is created or deleted.
    assert row_counts() == before
