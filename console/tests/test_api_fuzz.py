"""Fuzz API v1 from its own OpenAPI schema (/api/schema/) with schemathesis, in-process.

For every operation, valid and invalid inputs (bounded, deterministic): never a 5xx, and
every response matches the status codes, media type and body schema the schema documents.
Half of the generated ids are swapped for real objects of the tenant, so entitlement,
binding and control paths run for real, not only their 404s.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from console.api import MAX_ID
from console.models import ApiKey
from console.tests.factories import (
    CameraFactory,
    CockpitFactory,
    DeviceFactory,
    LicenseFactory,
    make_api_key,
)
from console.wsgi import application
from devices.models import ControlSession

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)

# Ids of the current test's objects, by kind; filled by the `world` fixture.
REAL: dict[str, list[int]] = {}

# Which kind of object a path's {id} names.
_PATH_KINDS = [
    ("/api/v1/devices/", "device"),
    ("/api/v1/cameras/", "camera"),
    ("/api/v1/cockpits/", "cockpit"),
    ("/api/v1/licenses/", "license"),
    ("/api/v1/control-sessions/", "session"),
]


def _real(kind: str, value):
    """A generated id swapped for a real one of `kind`, for every other valid id: the swap
    keeps a valid input valid and leaves invalid inputs alone."""
    if type(value) is not int or not 1 <= value <= MAX_ID or value % 2 or not REAL.get(kind):
        return value
    ids = REAL[kind]
    return ids[(value // 2) % len(ids)]


@schema.hook
def map_path_parameters(context, path_parameters):
    if path_parameters and "id" in path_parameters:
        for prefix, kind in _PATH_KINDS:
            if context.operation.path.startswith(prefix):
                path_parameters["id"] = _real(kind, path_parameters["id"])
                break
    return path_parameters


@schema.hook
def map_body(context, body):
    if isinstance(body, dict):
        for field, kind in (("device", "device"), ("cockpit", "cockpit")):
            if field in body:
                body[field] = _real(kind, body[field])
        if isinstance(body.get("cameras"), list):
            body["cameras"] = [_real("camera", value) for value in body["cameras"]]
    return body


@pytest.fixture
def world(tenant, other_tenant):
    """A tenant with a device, cameras, cockpits, bound and free licenses and a live
    session; another tenant with objects that must stay out of reach."""
    device = DeviceFactory(tenant=tenant, serial="truck_01")
    bare = DeviceFactory(tenant=tenant, serial="truck_02")
    cameras = [
        CameraFactory(device=device, width=1920, height=1080, priority=2),
        CameraFactory(device=device, width=1280, height=720),
        CameraFactory(device=device, width=640, height=480, enabled=False),
        CameraFactory(device=bare),
    ]
    cockpits = [CockpitFactory(tenant=tenant), CockpitFactory(tenant=tenant)]
    licenses = [LicenseFactory(tenant=tenant, device=device) for _i in range(2)]
    licenses += [LicenseFactory(tenant=tenant) for _i in range(3)]
    session = ControlSession.objects.create(
        device=device, cockpit=cockpits[0], lease_expires_at=licenses[0].expires_at
    )
    foreign = DeviceFactory(tenant=other_tenant, serial="truck_01")
    CameraFactory(device=foreign)
    LicenseFactory(tenant=other_tenant, device=foreign)
    REAL.clear()
    REAL.update(
        device=[device.pk, bare.pk],
        camera=[c.pk for c in cameras],
        cockpit=[c.pk for c in cockpits],
        license=[lic.pk for lic in licenses],
        session=[session.pk],
    )
    _key, raw = make_api_key(tenant, ApiKey.Role.ADMIN)
    # The raw WSGI app closes "old" connections around each request, which would close the
    # test's transaction on PostgreSQL; Django's own test client unhooks it the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Bearer {raw}"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
        REAL.clear()


@schema.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_v1_conforms_to_its_schema(case, world):
    case.call_and_validate(
        headers=world,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            negative_data_rejection,
        ],
    )
