"""API v1 control sessions: one cockpit at a time under a lease (R8), the license check
before control, the R10 mark, takeover by admin keys only.

Who may call is covered for every endpoint in console/tests/test_api_access.py.
"""

import datetime as dt

import pytest
from django.conf import settings
from django.utils import timezone

from console.tests.factories import CockpitFactory, DeviceFactory, LicenseFactory
from devices.models import ControlSession
from licensing.models import License

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(tenant):
    device = DeviceFactory(tenant=tenant, serial="truck_01")
    LicenseFactory(tenant=tenant, device=device)
    return device


@pytest.fixture
def desk_a(tenant):
    return CockpitFactory(tenant=tenant, name="Desk A")


@pytest.fixture
def desk_b(tenant):
    return CockpitFactory(tenant=tenant, name="Desk B")


@pytest.fixture
def now(time_machine):
    at = timezone.now().replace(microsecond=0)
    time_machine.move_to(at, tick=False)
    return at


def acquire(client, device, cockpit, token=None, **extra):
    headers = {"HTTP_X_CONTROL_TOKEN": token} if token else {}
    return client.post(
        f"/api/v1/devices/{device.pk}/control-session",
        {"cockpit": cockpit.pk, **extra},
        format="json",
        **headers,
    )


def heartbeat(client, session_id, token=None):
    headers = {"HTTP_X_CONTROL_TOKEN": token} if token else {}
    return client.post(f"/api/v1/control-sessions/{session_id}/heartbeat", **headers)


def release(client, session_id, token=None):
    headers = {"HTTP_X_CONTROL_TOKEN": token} if token else {}
    return client.delete(f"/api/v1/control-sessions/{session_id}", **headers)


def test_acquire_creates_a_session(operator_api, device, desk_a, now):
    response = acquire(operator_api, device, desk_a)
    assert response.status_code == 201
    body = response.json()
    session = ControlSession.objects.get()
    lease = settings.CONTROL_LEASE_SECONDS
    assert body == {
        "id": session.pk,
        "device": device.pk,
        "cockpit": desk_a.pk,
        "lease_expires_at": body["lease_expires_at"],
        "lease_seconds": lease,
        "token": body["token"],
    }
    # The cockpit's credential, shown once; only its digest is stored.
    assert len(body["token"]) >= 40 and body["token"] not in session.token_digest
    assert dt.datetime.fromisoformat(body["lease_expires_at"]) == now + dt.timedelta(seconds=lease)
    assert body["lease_expires_at"].endswith("+08:00")


def test_same_cockpit_gets_its_live_session_back_extended(
    operator_api, device, desk_a, now, time_machine
):
    first = acquire(operator_api, device, desk_a).json()
    time_machine.shift(dt.timedelta(seconds=10))
    response = acquire(operator_api, device, desk_a, token=first["token"])
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == first["id"] and "token" not in body
    assert dt.datetime.fromisoformat(body["lease_expires_at"]) == now + dt.timedelta(
        seconds=10 + settings.CONTROL_LEASE_SECONDS
    )


def test_another_cockpit_gets_409_control_held(operator_api, device, desk_a, desk_b, now):
    """R8: at most one cockpit controls a device; the refusal names the holder."""
    held = acquire(operator_api, device, desk_a).json()
    response = acquire(operator_api, device, desk_b)
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "CONTROL_HELD"
    assert body["holder"] == desk_a.pk
    assert body["lease_expires_at"] == held["lease_expires_at"]
    assert body["errors"] == {}
    assert ControlSession.objects.filter(ended_at__isnull=True).count() == 1


def test_lapsed_lease_frees_the_device(operator_api, device, desk_a, desk_b, now, time_machine):
    acquire(operator_api, device, desk_a)
    time_machine.shift(dt.timedelta(seconds=settings.CONTROL_LEASE_SECONDS))
    response = acquire(operator_api, device, desk_b)
    assert response.status_code == 201
    assert response.json()["cockpit"] == desk_b.pk


def test_force_takeover_needs_an_admin_key(operator_api, admin_api, device, desk_a, desk_b):
    held = acquire(operator_api, device, desk_a).json()
    response = acquire(operator_api, device, desk_b, force=True)
    assert response.status_code == 403
    assert response.json()["code"] == "FORBIDDEN"
    assert ControlSession.objects.get(pk=held["id"]).ended_at is None

    response = acquire(admin_api, device, desk_b, force=True)
    assert response.status_code == 201
    assert response.json()["cockpit"] == desk_b.pk
    old = ControlSession.objects.get(pk=held["id"])
    assert old.ended_at is not None
    assert old.end_reason == ControlSession.EndReason.TAKEN_OVER
    # The old holder's heartbeat now learns it has lost control.
    assert heartbeat(operator_api, held["id"], held["token"]).json()["code"] == "SESSION_ENDED"


def test_no_valid_license_is_403(operator_api, tenant, desk_a):
    """R8: a device with 0 valid licenses cannot be taken under control."""
    bare = DeviceFactory(tenant=tenant)
    LicenseFactory(tenant=tenant)  # unbound
    response = acquire(operator_api, bare, desk_a)
    assert response.status_code == 403
    assert response.json()["code"] == "NO_VALID_LICENSE"
    assert not ControlSession.objects.exists()


def test_acquire_marks_licenses_served(operator_api, device, desk_a):
    """R10: a control session counts as service: the device's valid licenses are marked."""
    assert not License.objects.filter(first_served_at__isnull=False).exists()
    acquire(operator_api, device, desk_a)
    assert License.objects.get(device=device).first_served_at is not None


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"cockpit": "abc"},
        {"cockpit": None},
        {"cockpit": 0},
        {"cockpit": 10**30},
        {"cockpit": "{desk}", "force": "perhaps"},
        [1],
    ],
)
def test_acquire_validates(admin_api, device, desk_a, body):
    if isinstance(body, dict):
        body = {k: (desk_a.pk if v == "{desk}" else v) for k, v in body.items()}
    response = admin_api.post(f"/api/v1/devices/{device.pk}/control-session", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID"
    assert not ControlSession.objects.exists()


def test_another_tenants_cockpit_is_a_field_error(admin_api, device, other_tenant):
    foreign = CockpitFactory(tenant=other_tenant)
    response = acquire(admin_api, device, foreign)
    assert response.status_code == 400
    assert "cockpit" in response.json()["errors"]
    assert not ControlSession.objects.exists()


def test_heartbeat_extends_the_lease(operator_api, device, desk_a, now, time_machine):
    started = acquire(operator_api, device, desk_a).json()
    session_id = started["id"]
    time_machine.shift(dt.timedelta(seconds=20))
    response = heartbeat(operator_api, session_id, started["token"])
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == session_id
    assert dt.datetime.fromisoformat(body["lease_expires_at"]) == now + dt.timedelta(
        seconds=20 + settings.CONTROL_LEASE_SECONDS
    )


def test_heartbeat_after_the_lease_lapsed_is_410(operator_api, device, desk_a, now, time_machine):
    started = acquire(operator_api, device, desk_a).json()
    session_id = started["id"]
    time_machine.shift(dt.timedelta(seconds=settings.CONTROL_LEASE_SECONDS + 1))
    response = heartbeat(operator_api, session_id, started["token"])
    assert response.status_code == 410
    assert response.json()["code"] == "SESSION_ENDED"
    assert ControlSession.objects.get(pk=session_id).ended_at is not None


def test_heartbeat_after_the_last_license_went_is_403_and_ends(
    operator_api, admin_api, device, desk_a
):
    """R8: a heartbeat on a device that lost its last valid license ends the session."""
    started = acquire(operator_api, device, desk_a).json()
    session_id, token = started["id"], started["token"]
    lic = License.objects.get(device=device)
    assert admin_api.post(f"/api/v1/licenses/{lic.pk}/unbind").status_code == 200
    response = heartbeat(operator_api, session_id, token)
    assert response.status_code == 403
    assert response.json()["code"] == "NO_VALID_LICENSE"
    session = ControlSession.objects.get(pk=session_id)
    assert session.end_reason == ControlSession.EndReason.NO_VALID_LICENSE
    assert heartbeat(operator_api, session_id, token).json()["code"] == "SESSION_ENDED"


def test_release_is_204_and_idempotent(operator_api, device, desk_a, desk_b):
    started = acquire(operator_api, device, desk_a).json()
    session_id, token = started["id"], started["token"]
    response = release(operator_api, session_id, token)
    assert response.status_code == 204
    assert response.content == b""
    session = ControlSession.objects.get(pk=session_id)
    assert session.end_reason == ControlSession.EndReason.RELEASED
    assert release(operator_api, session_id, token).status_code == 204
    assert heartbeat(operator_api, session_id, token).status_code == 410
    assert acquire(operator_api, device, desk_b).status_code == 201


def test_session_paths_reject_other_methods(operator_api, device, desk_a):
    session_id = acquire(operator_api, device, desk_a).json()["id"]
    response = operator_api.get(f"/api/v1/control-sessions/{session_id}")
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    assert operator_api.get(f"/api/v1/control-sessions/{session_id}/heartbeat").status_code == 405


def test_an_operator_key_needs_the_sessions_token(operator_api, admin_api, device, desk_a, now):
    """CONTRACT (X-Control-Token): with an operator key, heartbeat and DELETE need the token
    of the 201 that started the session (missing or wrong: 403 CONTROL_TOKEN_REQUIRED);
    asking again without it is another cockpit's request (409); an admin key may act on
    any session of its tenant without it."""
    started = acquire(operator_api, device, desk_a).json()
    session_id, token = started["id"], started["token"]
    for wrong in (None, token[:-1], "x" * 43):
        response = heartbeat(operator_api, session_id, wrong)
        assert response.status_code == 403
        assert response.json()["code"] == "CONTROL_TOKEN_REQUIRED"
        assert release(operator_api, session_id, wrong).status_code == 403
        assert acquire(operator_api, device, desk_a, token=wrong).status_code == 409
    session = ControlSession.objects.get(pk=session_id)
    assert session.ended_at is None and session.lease_expires_at == now + dt.timedelta(
        seconds=settings.CONTROL_LEASE_SECONDS
    )
    assert heartbeat(operator_api, session_id, token).status_code == 200
    assert heartbeat(admin_api, session_id).status_code == 200
    assert acquire(admin_api, device, desk_a).status_code == 200
    assert release(admin_api, session_id).status_code == 204
    assert ControlSession.objects.get(pk=session_id).end_reason == "released"
