"""API v1 licenses: list/detail with read-time status (R5), filters, binding (R7).

Who may call is covered for every endpoint in console/tests/test_api_access.py.
"""

import datetime as dt

import pytest
from django.utils import timezone

from console.models import AuditEvent
from console.tests.factories import DeviceFactory, LicenseFactory
from licensing.models import License

pytestmark = pytest.mark.django_db

URL = "/api/v1/licenses/"


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant, serial="truck_01")


def test_detail_shape_with_iso_times_and_offset(viewer_api, tenant, device):
    lic = LicenseFactory(tenant=tenant, device=device)
    body = viewer_api.get(f"{URL}{lic.pk}/").json()
    assert body == {
        "id": lic.pk,
        "status": "active",
        "device": device.pk,
        "starts_at": body["starts_at"],
        "expires_at": body["expires_at"],
        "first_served_at": None,
    }
    # R12: shown in Asia/Shanghai with its offset; the same instant as stored.
    assert body["expires_at"].endswith("+08:00")
    assert dt.datetime.fromisoformat(body["expires_at"]) == lic.expires_at


def test_status_is_computed_at_read_time(admin_api, tenant, time_machine):
    """R5: a license past its expires_at is "expired" before any job runs, in the response
    and in the ?status= filter alike."""
    lic = LicenseFactory(tenant=tenant)
    assert lic.status == License.Status.ACTIVE
    time_machine.move_to(lic.expires_at + dt.timedelta(seconds=1))
    assert admin_api.get(f"{URL}{lic.pk}/").json()["status"] == "expired"
    assert [x["id"] for x in admin_api.get(URL, {"status": "expired"}).json()["results"]] == [
        lic.pk
    ]
    assert admin_api.get(URL, {"status": "active"}).json()["count"] == 0


def test_list_filters_orders_and_scopes(admin_api, tenant, other_tenant, device):
    now = timezone.now()
    soon = LicenseFactory(tenant=tenant, device=device, expires_at=now + dt.timedelta(days=10))
    later = LicenseFactory(tenant=tenant, expires_at=now + dt.timedelta(days=300))
    refunded = LicenseFactory(tenant=tenant, status=License.Status.REFUNDED)
    LicenseFactory(tenant=other_tenant)

    def ids(**query):
        response = admin_api.get(URL, query)
        assert response.status_code == 200, response.content
        return [x["id"] for x in response.json()["results"]]

    assert ids() == [soon.pk, later.pk, refunded.pk]
    assert ids(ordering="-expires_at") == [refunded.pk, later.pk, soon.pk]
    assert ids(status="active") == [soon.pk, later.pk]
    assert ids(status="refunded") == [refunded.pk]
    assert ids(device=device.pk) == [soon.pk]
    assert ids(device=device.pk, status="expired") == []


@pytest.mark.parametrize(
    "query",
    [
        {"status": "bogus"},
        {"device": "abc"},
        {"device": "-1"},
        {"ordering": "price"},
        {"page": "x"},
    ],
)
def test_list_rejects_bad_query_values(admin_api, query):
    response = admin_api.get(URL, query)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "INVALID"
    assert set(query) <= set(body["errors"])


# --- bind / unbind (R7) ----------------------------------------------------------------------


def test_bind_and_unbind(admin_api, tenant, device):
    lic = LicenseFactory(tenant=tenant)
    response = admin_api.post(f"{URL}{lic.pk}/bind", {"device": device.pk}, format="json")
    assert response.status_code == 200
    assert response.json()["device"] == device.pk
    lic.refresh_from_db()
    assert lic.device_id == device.pk
    # Binding again to the same device changes nothing.
    again = admin_api.post(f"{URL}{lic.pk}/bind", {"device": device.pk}, format="json")
    assert again.status_code == 200

    response = admin_api.post(f"{URL}{lic.pk}/unbind")
    assert response.status_code == 200
    assert response.json()["device"] is None
    assert list(
        AuditEvent.objects.filter(target_id=str(lic.pk)).values_list("action", flat=True)
    ) == ["license.unbound", "license.bound"]


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda t, d: LicenseFactory(tenant=t, device=DeviceFactory(tenant=t)), "LICENSE_BOUND"),
        (lambda t, d: LicenseFactory(tenant=t, status=License.Status.REFUNDED), "LICENSE_REFUNDED"),
        (
            lambda t, d: LicenseFactory(
                tenant=t,
                starts_at=timezone.now() - dt.timedelta(days=400),
                expires_at=timezone.now() - dt.timedelta(days=35),
            ),
            "LICENSE_EXPIRED",
        ),
    ],
)
def test_bind_conflicts_are_409(admin_api, tenant, device, make, code):
    """R7: expired or refunded licenses cannot be bound; a bound one is unbound first."""
    lic = make(tenant, device)
    before = lic.device_id
    response = admin_api.post(f"{URL}{lic.pk}/bind", {"device": device.pk}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == code
    lic.refresh_from_db()
    assert lic.device_id == before


@pytest.mark.parametrize(
    "body", [{}, {"device": "abc"}, {"device": None}, {"device": 10**30}, {"device": 0}, [1]]
)
def test_bind_validates(admin_api, tenant, body):
    lic = LicenseFactory(tenant=tenant)
    response = admin_api.post(f"{URL}{lic.pk}/bind", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID"


def test_bind_to_another_tenants_device_is_a_field_error(admin_api, tenant, other_tenant):
    lic = LicenseFactory(tenant=tenant)
    foreign = DeviceFactory(tenant=other_tenant)
    response = admin_api.post(f"{URL}{lic.pk}/bind", {"device": foreign.pk}, format="json")
    assert response.status_code == 400
    assert "device" in response.json()["errors"]
    lic.refresh_from_db()
    assert lic.device_id is None


# --- bind by count (R7) ----------------------------------------------------------------------


def test_bind_licenses_picks_the_soonest_expiring(admin_api, tenant, device):
    now = timezone.now()
    late = LicenseFactory(tenant=tenant, expires_at=now + dt.timedelta(days=300))
    soon = LicenseFactory(tenant=tenant, expires_at=now + dt.timedelta(days=20))
    mid = LicenseFactory(tenant=tenant, expires_at=now + dt.timedelta(days=100))
    LicenseFactory(tenant=tenant, status=License.Status.REFUNDED)
    response = admin_api.post(
        f"/api/v1/devices/{device.pk}/bind-licenses", {"count": 2}, format="json"
    )
    assert response.status_code == 200
    assert response.json() == {"bound": [soon.pk, mid.pk]}
    late.refresh_from_db()
    assert late.device_id is None


def test_bind_licenses_is_all_or_nothing(admin_api, tenant, device):
    LicenseFactory(tenant=tenant)
    response = admin_api.post(
        f"/api/v1/devices/{device.pk}/bind-licenses", {"count": 2}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["code"] == "NOT_ENOUGH_LICENSES"
    assert not License.objects.filter(device=device).exists()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"count": 0},
        {"count": -2},
        {"count": "two"},
        {"count": 1.5},
        {"count": 10**30},
        {"count": True},
    ],
)
def test_bind_licenses_validates(admin_api, tenant, device, body):
    LicenseFactory(tenant=tenant)
    response = admin_api.post(f"/api/v1/devices/{device.pk}/bind-licenses", body, format="json")
    assert response.status_code == 400
    assert "count" in response.json()["errors"]
    assert not License.objects.filter(device=device).exists()
