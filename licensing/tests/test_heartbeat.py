"""R8 heartbeats: one conditional UPDATE … RETURNING after the key, which extends a live lease
while the device has a valid license and ends the session in the same statement when it
has none; R10 without a write per beat.

The statement is hand-written, so it is checked here against the ORM's validity rule
(licensing.rules.valid_q) at every kind of license and instant.
"""

import datetime as dt
import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.errors import Forbidden, Gone, NotFound
from console.models import ApiKey, AuditEvent
from console.tests.factories import (
    CockpitFactory,
    DeviceFactory,
    LicenseFactory,
    TenantFactory,
    make_api_key,
)
from devices.models import ControlSession
from licensing.models import License
from licensing.services import control_acquire, control_heartbeat, license_bind

pytestmark = pytest.mark.django_db

DAY = dt.timedelta(days=1)


@pytest.fixture
def now(time_machine):
    at = timezone.now().replace(microsecond=0)
    time_machine.move_to(at, tick=False)
    return at


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant, serial="loader_3")


@pytest.fixture
def session(tenant, device, now):
    LicenseFactory(tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + 90 * DAY)
    cockpit = CockpitFactory(tenant=tenant)
    session, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    return session


def beat(client, session_id, token=None):
    headers = {"HTTP_X_CONTROL_TOKEN": token} if token else {}
    return client.post(f"/api/v1/control-sessions/{session_id}/heartbeat", **headers)


def test_a_heartbeat_is_the_key_and_one_statement(operator_api, session, now, time_machine):
    """R8 hot path: the key look-up and the conditional UPDATE; no BEGIN/COMMIT pair, no
    R10 write, whatever the number of licenses."""
    for _i in range(20):
        LicenseFactory(tenant=session.device.tenant, device=session.device)
    beat(operator_api, session.pk, session.token)  # stamps the key's last_used_at
    time_machine.shift(dt.timedelta(seconds=5))
    with CaptureQueriesContext(connection) as ctx:
        response = beat(operator_api, session.pk, session.token)
    assert response.status_code == 200, response.json()
    statements = [q["sql"] for q in ctx.captured_queries]
    assert len(statements) == 2, statements
    assert statements[1].lstrip().upper().startswith("UPDATE")
    body = response.json()
    assert body["id"] == session.pk and body["lease_seconds"] == 30
    expected = now + dt.timedelta(seconds=35)
    assert dt.datetime.fromisoformat(body["lease_expires_at"]) == expected
    session.refresh_from_db()
    assert session.lease_expires_at == expected and session.ended_at is None


# Each kind of license, and whether it lets the session go on at `now` (R5, R6).
LICENSES = {
    "valid": ({"starts_at": -DAY, "expires_at": DAY}, True),
    "expires_now": ({"starts_at": -DAY, "expires_at": dt.timedelta(0)}, False),
    "expires_in_a_second": ({"starts_at": -DAY, "expires_at": dt.timedelta(seconds=1)}, True),
    "not_started": ({"starts_at": DAY, "expires_at": 2 * DAY}, False),
    "refunded": ({"starts_at": -DAY, "expires_at": DAY, "status": License.Status.REFUNDED}, False),
    "stored_expired_flag": (
        {"starts_at": -DAY, "expires_at": DAY, "status": License.Status.EXPIRED},
        True,  # R5: validity comes from expires_at, not from the job's flag
    ),
}


@pytest.mark.parametrize("kind", sorted(LICENSES))
def test_the_statement_agrees_with_the_validity_rule(tenant, device, now, time_machine, kind):
    fields, _expected = LICENSES[kind]
    license = LicenseFactory(
        tenant=tenant, device=device, starts_at=now - DAY, expires_at=now + DAY
    )
    cockpit = CockpitFactory(tenant=tenant)
    session, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    values = {
        name: (now + value if isinstance(value, dt.timedelta) else value)
        for name, value in fields.items()
    }
    License.objects.filter(pk=license.pk).update(
        **values, device=None if kind == "refunded" else device
    )
    orm_says = License.objects.filter(device=device).valid_at(now).exists()
    assert orm_says is LICENSES[kind][1]
    if orm_says:
        lease = control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)
        assert lease.lease_expires_at == now + dt.timedelta(seconds=30)
    else:
        with pytest.raises(Forbidden) as refused:
            control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)
        assert refused.value.code == "NO_VALID_LICENSE"
        session.refresh_from_db()
        assert session.ended_at == now
        assert session.end_reason == ControlSession.EndReason.NO_VALID_LICENSE
        assert AuditEvent.objects.filter(action="control.no_valid_license").count() == 1


def test_a_lapsed_or_ended_session_is_gone(tenant, session, now, time_machine):
    time_machine.shift(dt.timedelta(seconds=31))
    with pytest.raises(Gone):
        control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)
    session.refresh_from_db()
    # Ended at the lapse itself, so the record says when control really stopped.
    assert session.ended_at == now + dt.timedelta(seconds=30)
    assert session.end_reason == ControlSession.EndReason.LAPSED
    with pytest.raises(Gone):
        control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)


def test_another_tenants_session_is_not_found(session, other_tenant):
    with pytest.raises(NotFound):
        control_heartbeat(tenant=other_tenant, session_id=session.pk, token=session.token)
    session.refresh_from_db()
    assert session.ended_at is None


def test_it_validates_ownership(session, other_api):
    response = beat(other_api, session.pk)
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"


def test_r10_a_license_bound_during_a_session_has_served(tenant, device, session, now):
    """R10 without a write per beat: the start marked the licenses bound then; a license
    bound while the session is live is marked when it is bound."""
    assert not License.objects.filter(device=device, first_served_at__isnull=True).exists()
    late = LicenseFactory(tenant=tenant, starts_at=now - DAY, expires_at=now + 30 * DAY)
    bound = license_bind(tenant=tenant, license=late, device=device)
    assert bound.first_served_at == now
    idle = DeviceFactory(tenant=tenant)
    spare = LicenseFactory(tenant=tenant, starts_at=now - DAY, expires_at=now + 30 * DAY)
    assert license_bind(tenant=tenant, license=spare, device=idle).first_served_at is None


def test_r10_after_the_session_ended_binding_does_not_serve(tenant, device, session, now):
    ControlSession.objects.filter(pk=session.pk).update(ended_at=now)
    late = LicenseFactory(tenant=tenant, starts_at=now - DAY, expires_at=now + 30 * DAY)
    assert license_bind(tenant=tenant, license=late, device=device).first_served_at is None


@pytest.mark.django_db(transaction=True)
def test_postgresql_heartbeats_race_an_unbind(postgres_only):
    """On PostgreSQL, through the API: heartbeats from a cockpit while an admin key unbinds
    the device's last license. Whatever the interleaving, once the unbind committed the
    next beat ends the session (403), and the session is never left extended past a beat
    that saw no license."""
    from rest_framework.test import APIClient

    tenant = TenantFactory()
    device = DeviceFactory(tenant=tenant)
    license = LicenseFactory(tenant=tenant, device=device)
    cockpit = CockpitFactory(tenant=tenant)
    _key, raw = make_api_key(tenant, ApiKey.Role.ADMIN)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    started = client.post(
        f"/api/v1/devices/{device.pk}/control-session", {"cockpit": cockpit.pk}, format="json"
    )
    assert started.status_code == 201
    session_id = started.json()["id"]
    statuses: list[int] = []

    def beats():
        beater = APIClient()
        beater.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        try:
            for _i in range(30):
                statuses.append(beat(beater, session_id).status_code)
        finally:
            connections.close_all()

    thread = threading.Thread(target=beats)
    thread.start()
    assert client.post(f"/api/v1/licenses/{license.pk}/unbind").status_code == 200
    thread.join()
    assert set(statuses) <= {200, 403, 410}
    after = beat(client, session_id)
    assert after.status_code in (403, 410)
    session = ControlSession.objects.get(pk=session_id)
    assert session.ended_at is not None
    if 403 in statuses:
        # Once a beat saw no license, every later one is gone: the end was final.
        assert set(statuses[statuses.index(403) + 1 :]) <= {410}
        assert session.end_reason == ControlSession.EndReason.NO_VALID_LICENSE
    assert AuditEvent.objects.filter(action="license.unbound").count() == 1
