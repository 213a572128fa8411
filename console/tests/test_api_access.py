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


# --- every operation and every page, with another tenant's ids ----------------------------------
#
# The lists above name the endpoints one by one; these probes take them from the OpenAPI
# generator and the URL conf instead, so an endpoint or a page added later is probed
# without an edit here. Every call is made by the *other* tenant (each key role, each
# console role) with `tenant`'s object ids in the path, the query and the body: the answer
# is a refusal (404, or 403 for a role that may not make the call at all, or 405), and no
# answer names anything of `tenant`.

# Strings only `tenant`'s objects carry: none may appear in another tenant's answers.
MARKERS = (
    "zz_victim_9q",
    "VictimCamZ9",
    "VictimCockpitZ9",
    "victim-z9.example",
    "VictimKeyZ9",
    "VictimImportZ9",
)
REFUSED = {403, 404, 405}


@pytest.fixture
def victim(tenant, alice, settings):
    """`tenant` with one of everything, named with MARKERS."""
    from billing.tests.utils import paid_new_order
    from console import webhooks
    from console.models import BetaApplication, WebhookDelivery, WebhookEvent
    from console.tests.factories import BetaApplicationFactory

    settings.WEBHOOK_ALLOW_PRIVATE = True  # no DNS look-up for the example host
    device = DeviceFactory(tenant=tenant, serial="zz_victim_9q", name="VictimCamZ9 carrier")
    camera = CameraFactory(device=device, name="VictimCamZ9")
    cockpit = CockpitFactory(tenant=tenant, name="VictimCockpitZ9")
    order = paid_new_order(tenant, quantity=2)
    license = LicenseFactory(tenant=tenant, device=device)
    session = ControlSession.objects.create(
        device=device, cockpit=cockpit, lease_expires_at=license.expires_at
    )
    key, _raw = make_api_key(tenant, ApiKey.Role.ADMIN, name="VictimKeyZ9")
    endpoint, _secret = webhooks.webhook_endpoint_create(
        tenant=tenant, url="https://victim-z9.example/hook", events=["*"]
    )
    event = WebhookEvent.objects.create(tenant=tenant, type="ping", data={})
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event=event, next_attempt_at=event.created_at
    )
    application = BetaApplicationFactory(applicant=alice)
    assert application.state in BetaApplication.State.values
    from devices.models import ImportJob

    job = ImportJob.objects.create(
        tenant=tenant,
        created_by=alice,
        file_name="VictimImportZ9.csv",
        file_format=ImportJob.Format.CSV,
        content=b"serial,name\nzz_import_9q,VictimCamZ9 import\n",
        status=ImportJob.Status.READY,
        rows_total=1,
        rows_checked=1,
        devices_count=1,
        preview=[{"line": 2, "serial": "zz_import_9q", "name": "VictimCamZ9 import"}],
    )
    return {
        "device": device.pk,
        "camera": camera.pk,
        "cockpit": cockpit.pk,
        "license": license.pk,
        "order": order.pk,
        "session": session.pk,
        "key": key.pk,
        "endpoint": endpoint.pk,
        "delivery": delivery.pk,
        "application": application.pk,
        "job": job.pk,
    }


def _victim_rows(tenant) -> tuple:
    """What the probes must leave as it is."""
    from billing.models import Order
    from console.models import WebhookEndpoint
    from devices.models import Camera, FieldDevice, ImportJob, RemoteCockpit
    from licensing.models import License

    return (
        list(FieldDevice.objects.filter(tenant=tenant).values()),
        list(Camera.objects.filter(device__tenant=tenant).values()),
        list(RemoteCockpit.objects.filter(tenant=tenant).values()),
        list(License.objects.filter(tenant=tenant).values()),
        list(Order.objects.filter(tenant=tenant).values()),
        list(ControlSession.objects.filter(device__tenant=tenant).values("id", "ended_at")),
        list(ApiKey.objects.filter(tenant=tenant).values("id", "name", "revoked_at")),
        list(WebhookEndpoint.objects.filter(tenant=tenant).values("id", "url", "enabled")),
        list(ImportJob.objects.filter(tenant=tenant).values("id", "status", "finished_at")),
    )


def _api_operations() -> list[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


# Which object a path's {id} names, by the path's start.
_KINDS = [
    ("/api/v1/devices/", "device"),
    ("/api/v1/cameras/", "camera"),
    ("/api/v1/cockpits/", "cockpit"),
    ("/api/v1/licenses/", "license"),
    ("/api/v1/orders/", "order"),
    ("/api/v1/control-sessions/", "session"),
    ("/api/v1/webhook-endpoints/", "endpoint"),
]


def _api_path(path: str, ids: dict) -> str:
    for prefix, kind in _KINDS:
        if path.startswith(prefix):
            path = path.replace("{id}", str(ids[kind]))
    return path.replace("{delivery_id}", str(ids["delivery"]))


def _victim_body(ids: dict) -> dict:
    """Every body field that names an object, naming `tenant`'s."""
    return {
        "device": ids["device"],
        "cockpit": ids["cockpit"],
        "cameras": [ids["camera"]],
        "licenses": [ids["license"]],
        "kind": "renewal",
        "years": 1,
        "count": 1,
        "width": 640,
        "height": 480,
        "name": "probe",
        "serial": "probe_1",
        "reason": "probe",
        "url": "https://probe.example/hook",
        "events": ["*"],
    }


def _assert_no_victim_data(response, where):
    body = response.content.decode(errors="replace")
    for marker in MARKERS:
        assert marker not in body, (where, marker)


def test_every_api_operation_refuses_another_tenants_ids(victim, tenant, other_tenant, alice):
    operations = _api_operations()
    assert len(operations) >= 35
    callers = [(role, client_for(other_tenant, role)) for role in sorted(ALL)]
    before = _victim_rows(tenant)
    probed = 0
    for method, path in operations:
        url = _api_path(path, victim)
        names_object = url != path
        for role, client in callers:
            response = client.generic(
                method,
                url,
                data="" if method in ("GET", "DELETE") else json.dumps(_victim_body(victim)),
                content_type="application/json",
                HTTP_IDEMPOTENCY_KEY=f"probe-{method}-{path}",
                HTTP_X_CONTROL_TOKEN="probe",
            )
            where = (role, method, url, response.status_code)
            _assert_no_victim_data(response, where)
            if names_object:
                assert response.status_code in REFUSED, where
            else:
                # A collection: the victim's ids in the body or the query are refused (a
                # 4xx), or the answer is the caller's own data (checked above).
                assert response.status_code < 500, where
            probed += 1
        if method == "GET" and not names_object:
            for role, client in callers:
                for field in ("device", "cockpit", "license"):
                    response = client.get(url, {field: victim[field]})
                    _assert_no_victim_data(response, (role, url, field))
                    assert response.status_code < 500
    assert probed == len(operations) * len(callers)
    assert _victim_rows(tenant) == before


def _console_routes():
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                route = prefix + str(pattern.pattern)
                if not route.startswith(("admin/", "api/", "i18n/")):
                    yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.name

    return list(walk(get_resolver().url_patterns))


# URL keyword → the victim object it names (anything else numeric: the key).
_PAGE_KINDS = {
    "device_id": "device",
    "camera_id": "camera",
    "cockpit_id": "cockpit",
    "license_id": "license",
    "order_id": "order",
    "session_id": "session",
    "delivery_id": "delivery",
    "job_id": "job",
}
_PK_KINDS = {"keys/": "key", "webhooks/": "endpoint", "application/": "application"}


def _page_url(route: str, ids: dict) -> str | None:
    import re

    if "<" not in route or re.search(r"<(?:str:)?(token|uidb64)>", route):
        return None  # no object in the path, or a signed link

    def fill(match):
        name = match.group(2)
        if name == "action":
            return "disable"
        if name in _PAGE_KINDS:
            return str(ids[_PAGE_KINDS[name]])
        for prefix, kind in _PK_KINDS.items():
            if route.startswith(prefix):
                return str(ids[kind])
        return str(ids["key"])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", fill, route)


@pytest.mark.parametrize("role", ["owner", "admin", "viewer"])
def test_every_console_page_refuses_another_tenants_ids(victim, tenant, other_tenant, role):
    from django.test import Client

    from console.tests.factories import MembershipFactory, UserFactory

    user = UserFactory(email=f"{role}@other.example")
    MembershipFactory(user=user, tenant=other_tenant, role=role)
    client = Client()
    client.force_login(user)
    before = _victim_rows(tenant)
    pages = [(route, name, _page_url(route, victim)) for route, name in _console_routes()]
    pages = [(route, name, url) for route, name, url in pages if url]
    assert {
        "device-edit",
        "license-bind",
        "order-detail",
        "api-key-revoke",
        "device-import-job",
    } <= {name for _route, name, _url in pages}
    for _route, _name, url in pages:
        for method in ("get", "post"):
            form = {"device": victim["device"], "count": 1, "name": "probe", "serial": "p1"}
            response = getattr(client, method)(url, form if method == "post" else None)
            where = (role, method.upper(), url, response.status_code)
            _assert_no_victim_data(response, where)
            assert response.status_code in REFUSED, where
    # the lists of the caller's own tenant, asked about the victim's objects
    for url in ("/devices/", "/licenses/", "/orders/", "/keys/", "/team/"):
        for field in ("device", "q", "license"):
            # "zz_victim" finds the victim's serial if the search crosses tenants (the page
            # may echo the query itself, which is not a marker).
            response = client.get(url, {field: victim.get(field, "zz_victim")})
            _assert_no_victim_data(response, (role, url, field))
    assert _victim_rows(tenant) == before
