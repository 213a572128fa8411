"""The API's one error shape, and session authentication for console users.

Every error is {"code", "detail", "errors"}: validation, 401, 403, 404, 405, 409, 410 and
paths that name no endpoint alike.
"""

import pytest
from rest_framework.exceptions import ErrorDetail
from rest_framework.test import APIClient

from console.api_errors import flatten_errors
from console.models import Membership
from console.tests.factories import DeviceFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_flatten_errors_joins_nested_fields_with_dots():
    detail = {
        "serial": [ErrorDetail("Required.")],
        "cameras": {2: [ErrorDetail("Not an id.")]},
        "items": [{}, {"width": [ErrorDetail("Too wide.")]}],
        "non_field_errors": [ErrorDetail("Bad.")],
    }
    assert flatten_errors(detail) == {
        "serial": ["Required."],
        "cameras.2": ["Not an id."],
        "items.1.width": ["Too wide."],
        "non_field_errors": ["Bad."],
    }


def test_flatten_errors_of_bare_messages():
    assert flatten_errors([ErrorDetail("Expected a dictionary.")]) == {
        "non_field_errors": ["Expected a dictionary."]
    }
    assert flatten_errors("Oops") == {"non_field_errors": ["Oops"]}
    assert flatten_errors({"cameras": ["A list.", {"0": ["Not an id."]}]}) == {
        "cameras": ["A list."],
        "cameras.1.0": ["Not an id."],
    }


def test_validation_error_names_the_field_in_detail(admin_api):
    body = admin_api.post("/api/v1/devices/", {}, format="json").json()
    assert body["code"] == "INVALID"
    assert body["detail"].startswith("serial: ")
    assert list(body["errors"]) == ["serial"]


@pytest.mark.parametrize(
    "path", ["/api/v1/devices/", "/api/v1/quote", "/api/v1/devices/{device}/entitlement"]
)
@pytest.mark.parametrize("body", ["[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000])
def test_json_nested_too_deep_is_a_400_not_a_500(admin_api, tenant, path, body):
    """Python's JSON parser gives up on deep nesting with a RecursionError, not a ValueError."""
    device = DeviceFactory(tenant=tenant)
    response = admin_api.generic(
        "POST", path.format(device=device.pk), body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID"
    assert response.json()["errors"] == {}


@pytest.mark.parametrize(
    "path", ["/api/v1/devices/", "/api/v1/quote", "/api/v1/devices/{device}/entitlement"]
)
def test_a_body_over_the_upload_limit_is_a_413_in_the_error_shape(
    admin_api, tenant, path, settings
):
    """Over DATA_UPLOAD_MAX_MEMORY_SIZE: Django's own answer would be an HTML 400."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    device = DeviceFactory(tenant=tenant)
    body = '{"serial": "' + "a" * 2000 + '"}'
    response = admin_api.generic(
        "POST", path.format(device=device.pk), body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "code": "PAYLOAD_TOO_LARGE",
        "detail": response.json()["detail"],
        "errors": {},
    }
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/",
        "/api/v1/nothing",
        "/api/v1/devices",
        "/api/v1/devices/-1/",
        "/api/v1/devices/abc/entitlement",
        "/api/v1/licenses/1/bind/",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_unknown_api_paths_are_json_404s(admin_api, path, method):
    response = admin_api.generic(method, path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "NOT_FOUND"
    assert response.json()["errors"] == {}


def test_session_user_reads_through_the_browsable_api(alice, tenant, other_tenant):
    mine = DeviceFactory(tenant=tenant)
    DeviceFactory(tenant=other_tenant)
    client = APIClient()
    client.force_login(alice)
    body = client.get("/api/v1/devices/", format="json").json()
    assert [d["id"] for d in body["results"]] == [mine.pk]
    html = client.get("/api/v1/devices/", HTTP_ACCEPT="text/html")
    assert html.status_code == 200
    assert html["Content-Type"].startswith("text/html")


def test_session_owner_writes_with_csrf_token(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/v1/devices/", {"serial": "truck_01"}, format="json")
    assert response.status_code == 403  # no CSRF token: a session is not a key
    assert response.json()["code"] == "FORBIDDEN"
    client = APIClient()
    client.force_login(alice)
    assert client.post("/api/v1/devices/", {"serial": "truck_01"}, format="json").status_code == 201


def test_session_viewer_may_read_not_write(bob, tenant):
    device = DeviceFactory(tenant=tenant)
    client = APIClient()
    client.force_login(bob)
    assert client.get(f"/api/v1/devices/{device.pk}/").status_code == 200
    entitlement = client.post(f"/api/v1/devices/{device.pk}/entitlement", {}, format="json")
    assert entitlement.status_code == 200
    response = client.delete(f"/api/v1/devices/{device.pk}/")
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


def test_session_user_of_another_tenant_gets_404(charlie, tenant):
    device = DeviceFactory(tenant=tenant)
    client = APIClient()
    client.force_login(charlie)
    assert client.get(f"/api/v1/devices/{device.pk}/").status_code == 404


def test_session_user_without_a_tenant_is_403(db):
    client = APIClient()
    client.force_login(UserFactory(email="nobody@example.com"))
    response = client.get("/api/v1/devices/")
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"


def test_session_admin_membership_acts_as_admin(tenant):
    user = UserFactory(email="dora@example.com")
    MembershipFactory(user=user, tenant=tenant, role=Membership.Role.ADMIN)
    client = APIClient()
    client.force_login(user)
    assert client.post("/api/v1/cockpits/", {"name": "Desk"}, format="json").status_code == 201
