"""R15: the events a change stores for webhooks, in its own transaction: bindings, device
service changes, the nightly expiry (per batch), control sessions."""

import datetime as dt

import pytest
from django.utils import timezone

from console import webhooks
from console.models import WebhookEvent
from console.tests.factories import CockpitFactory, DeviceFactory, LicenseFactory
from devices.models import Camera
from devices.services import control_sessions_end_lapsed
from licensing.expiry import licenses_expire_due
from licensing.services import control_acquire, license_bind, license_unbind

pytestmark = pytest.mark.django_db


@pytest.fixture
def listening(tenant, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    endpoint, _secret = webhooks.webhook_endpoint_create(
        tenant=tenant, url="https://127.0.0.1/hook", events=["*"]
    )
    return endpoint


@pytest.fixture
def device(tenant):
    device = DeviceFactory(tenant=tenant)
    Camera.objects.create(device=device, name="front", width=1280, height=720, slot=1)
    return device


def events(type_=None):
    rows = WebhookEvent.objects.order_by("created_at", "type")
    if type_:
        rows = rows.filter(type=type_)
    return [(e.type, e.data) for e in rows]


def test_binding_and_unbinding_tell_the_license_and_the_service_change(tenant, device, listening):
    lic = LicenseFactory(tenant=tenant)
    license_bind(tenant=tenant, license=lic, device=device)
    assert events("license.bound")[0][1]["license"] == lic.pk
    assert events("device.service_changed") == [
        (
            "device.service_changed",
            {"device": device.pk, "code": {"before": "NO_VALID_LICENSE", "after": "VALID"}},
        )
    ]
    license_unbind(tenant=tenant, license=lic)
    assert events("license.unbound")[0][1]["device"] == device.pk
    assert events("device.service_changed")[-1][1]["code"] == {
        "before": "VALID",
        "after": "NO_VALID_LICENSE",
    }


def test_no_endpoint_no_event(tenant, device):
    lic = LicenseFactory(tenant=tenant)
    license_bind(tenant=tenant, license=lic, device=device)
    assert not WebhookEvent.objects.exists()


def test_nightly_expiry_tells_each_tenant_once_per_date(tenant, other_tenant, device, listening):
    now = timezone.now()
    expired = [
        LicenseFactory(
            tenant=tenant,
            starts_at=now - dt.timedelta(days=400),
            expires_at=now - dt.timedelta(hours=1),
            device=device if n == 0 else None,
        )
        for n in range(3)
    ]
    LicenseFactory(
        tenant=other_tenant,
        starts_at=now - dt.timedelta(days=400),
        expires_at=now - dt.timedelta(hours=1),
    )
    run = licenses_expire_due(at=now, batch_size=2)
    assert run.expired == 4
    told = events("license.expired")
    assert sorted(pk for _t, data in told for pk in data["licenses"]) == [lic.pk for lic in expired]
    assert {data["expiry_date"] for _t, data in told} == {
        str(timezone.localdate(now - dt.timedelta(hours=1)))
    }
    assert events("device.service_changed") == [
        (
            "device.service_changed",
            {"device": device.pk, "code": {"before": "VALID", "after": "NO_VALID_LICENSE"}},
        )
    ]
    # the other tenant has no endpoint: nothing stored for it
    assert set(WebhookEvent.objects.values_list("tenant_id", flat=True)) == {tenant.pk}


def test_control_started_and_ended(tenant, device, listening):
    license_bind(tenant=tenant, license=LicenseFactory(tenant=tenant), device=device)
    cockpit = CockpitFactory(tenant=tenant)
    session, _created = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    assert events("control.started")[0][1]["session"] == session.pk
    ended = control_sessions_end_lapsed(at=timezone.now() + dt.timedelta(hours=1))
    assert ended == 1
    assert events("control.ended")[0][1]["reason"] == "lapsed"


def test_a_camera_change_tells_the_service_change(tenant, device, listening, admin_api, owner):
    """R15: a camera added, changed or deleted through the API or the console page moves
    the device's service level: one `device.service_changed` event with it."""
    LicenseFactory(tenant=tenant, device=device)  # one license: 1280×720 fits, no more
    body = {"device": device.pk, "width": 1920, "height": 1080, "name": "wide"}
    response = admin_api.post("/api/v1/cameras/", body, format="json")
    assert response.status_code == 201
    camera_id = response.json()["id"]
    codes = [data["code"] for _type, data in events("device.service_changed")]
    assert codes[-1] == {"before": "VALID", "after": "DEGRADED"}
    patched = admin_api.patch(f"/api/v1/cameras/{camera_id}/", {"enabled": False}, format="json")
    assert patched.status_code == 200
    codes = [data["code"] for _type, data in events("device.service_changed")]
    assert codes[-1] == {"before": "DEGRADED", "after": "VALID"}
    # A change that does not move the level tells nothing.
    admin_api.patch(f"/api/v1/cameras/{camera_id}/", {"name": "wide angle"}, format="json")
    assert len(events("device.service_changed")) == len(codes)
    # The console page: re-enabled, the wide camera degrades the device again; deleting it
    # on the page restores full service, told once.
    admin_api.patch(f"/api/v1/cameras/{camera_id}/", {"enabled": True}, format="json")
    owner.post(f"/devices/{device.pk}/cameras/{camera_id}/delete/", {"confirmed": "1"})
    assert not device.cameras.filter(pk=camera_id).exists()
    codes = [data["code"] for _type, data in events("device.service_changed")]
    assert codes[-2:] == [
        {"before": "VALID", "after": "DEGRADED"},
        {"before": "DEGRADED", "after": "VALID"},
    ]
