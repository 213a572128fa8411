"""R8 "may I drive?": the license check before control, heartbeats and release, and the
one-controller race on PostgreSQL."""

import datetime as dt
import threading

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from console.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from console.tests.factories import CockpitFactory, DeviceFactory, LicenseFactory, TenantFactory
from devices.models import ControlSession
from licensing.models import License
from licensing.services import (
    control_acquire,
    control_heartbeat,
    control_release,
    license_unbind,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(tenant):
    device = DeviceFactory(tenant=tenant)
    LicenseFactory(tenant=tenant, device=device)
    return device


@pytest.fixture
def cockpit(tenant):
    return CockpitFactory(tenant=tenant)


def test_r8_acquire_with_a_valid_license(tenant, device, cockpit):
    session, created = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    assert created
    assert session.cockpit_id == cockpit.pk
    assert session.lease_expires_at > timezone.now()
    # R10: control counts as service.
    assert License.objects.get(device=device).first_served_at is not None


def test_r8_zero_valid_licenses_cannot_take_control(tenant, cockpit):
    device = DeviceFactory(tenant=tenant)
    now = timezone.now()
    LicenseFactory(
        tenant=tenant,
        device=device,
        starts_at=now - dt.timedelta(days=366),
        expires_at=now - dt.timedelta(seconds=1),
    )
    with pytest.raises(Forbidden) as exc:
        control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    assert exc.value.code == "NO_VALID_LICENSE"
    assert ControlSession.objects.count() == 0


def test_r8_same_cockpit_again_gets_its_session_back(tenant, device, cockpit):
    at = timezone.now()
    first, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk, at=at)
    later = at + dt.timedelta(seconds=10)
    again, created = control_acquire(
        tenant=tenant, device=device, cockpit_id=cockpit.pk, token=first.token, at=later
    )
    assert not created
    assert again.pk == first.pk
    assert again.lease_expires_at == later + dt.timedelta(seconds=30)


def test_r8_other_cockpit_is_refused_until_forced(tenant, device, cockpit):
    other = CockpitFactory(tenant=tenant)
    held, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    with pytest.raises(Conflict) as exc:
        control_acquire(tenant=tenant, device=device, cockpit_id=other.pk)
    assert exc.value.code == "CONTROL_HELD"
    assert exc.value.extra["holder"] == cockpit.pk
    taken, created = control_acquire(tenant=tenant, device=device, cockpit_id=other.pk, force=True)
    assert created and taken.cockpit_id == other.pk
    held.refresh_from_db()
    assert held.end_reason == ControlSession.EndReason.TAKEN_OVER
    # The old holder's heartbeat now finds its session ended.
    with pytest.raises(Gone):
        control_heartbeat(tenant=tenant, session_id=held.pk, token=held.token)


def test_r8_lapsed_lease_frees_the_device_with_time_machine(tenant, device, cockpit):
    other = CockpitFactory(tenant=tenant)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        held, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    with (
        time_machine.travel(start + dt.timedelta(seconds=29), tick=False),
        pytest.raises(Conflict),
    ):
        control_acquire(tenant=tenant, device=device, cockpit_id=other.pk)
    with time_machine.travel(start + dt.timedelta(seconds=30), tick=False):
        _taken, created = control_acquire(tenant=tenant, device=device, cockpit_id=other.pk)
    assert created
    held.refresh_from_db()
    assert held.end_reason == ControlSession.EndReason.LAPSED


def test_r8_heartbeat_extends_a_live_lease(tenant, device, cockpit):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        session, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    with time_machine.travel(start + dt.timedelta(seconds=25), tick=False):
        beat = control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)
    assert beat.lease_expires_at == start + dt.timedelta(seconds=55)
    session.refresh_from_db()
    assert session.lease_expires_at == start + dt.timedelta(seconds=55)


def test_r8_heartbeat_after_lapse_is_session_ended(tenant, device, cockpit):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        session, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    with (
        time_machine.travel(start + dt.timedelta(seconds=31), tick=False),
        pytest.raises(Gone) as exc,
    ):
        control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)
    assert exc.value.code == "SESSION_ENDED"
    session.refresh_from_db()
    assert session.ended_at == session.lease_expires_at
    assert session.end_reason == ControlSession.EndReason.LAPSED


def test_r8_heartbeat_after_losing_the_last_license_ends_the_session(tenant, device, cockpit):
    session, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    license_unbind(tenant=tenant, license=License.objects.get(device=device))
    with pytest.raises(Forbidden) as exc:
        control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)
    assert exc.value.code == "NO_VALID_LICENSE"
    session.refresh_from_db()
    assert session.ended_at is not None
    assert session.end_reason == ControlSession.EndReason.NO_VALID_LICENSE
    # Ended for good: the next heartbeat is SESSION_ENDED.
    with pytest.raises(Gone):
        control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)


def test_r8_heartbeat_at_license_expiry_ends_the_session(tenant, cockpit):
    device = DeviceFactory(tenant=tenant)
    now = timezone.now()
    lic = LicenseFactory(
        tenant=tenant,
        device=device,
        starts_at=now - dt.timedelta(days=1),
        expires_at=now + dt.timedelta(seconds=20),
    )
    with time_machine.travel(now, tick=False):
        session, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    with time_machine.travel(lic.expires_at, tick=False), pytest.raises(Forbidden):
        control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)


def test_r8_release_frees_the_device(tenant, device, cockpit):
    session, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    control_release(tenant=tenant, session_id=session.pk, token=session.token)
    session.refresh_from_db()
    assert session.end_reason == ControlSession.EndReason.RELEASED
    other = CockpitFactory(tenant=tenant)
    assert control_acquire(tenant=tenant, device=device, cockpit_id=other.pk)[1]
    with pytest.raises(Gone):
        control_heartbeat(tenant=tenant, session_id=session.pk, token=session.token)


def test_r8_other_tenant_cannot_touch_sessions_or_use_its_cockpit(
    tenant, other_tenant, device, cockpit
):
    session, _ = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    theirs = CockpitFactory(tenant=other_tenant)
    with pytest.raises(InvalidInput):
        control_acquire(tenant=tenant, device=device, cockpit_id=theirs.pk)
    with pytest.raises(NotFound):
        control_acquire(tenant=other_tenant, device=device, cockpit_id=theirs.pk)
    with pytest.raises(NotFound):
        control_heartbeat(tenant=other_tenant, session_id=session.pk, token=session.token)
    with pytest.raises(NotFound):
        control_release(tenant=other_tenant, session_id=session.pk, token=session.token)
    session.refresh_from_db()
    assert session.ended_at is None


@pytest.mark.django_db(transaction=True)
def test_r8_twenty_cockpits_race_and_exactly_one_wins(postgres_only):
    tenant = TenantFactory()
    device = DeviceFactory(tenant=tenant)
    LicenseFactory(tenant=tenant, device=device)
    cockpits = [CockpitFactory(tenant=tenant) for _ in range(20)]
    barrier = threading.Barrier(len(cockpits))
    outcomes: list[str] = []
    lock = threading.Lock()

    def race(cockpit_id: int) -> None:
        try:
            barrier.wait()
            try:
                control_acquire(tenant=tenant, device=device, cockpit_id=cockpit_id)
                result = "won"
            except Conflict as exc:
                result = exc.code
            except Exception as exc:  # anything else is a failure to report
                result = repr(exc)
            with lock:
                outcomes.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(c.pk,)) for c in cockpits]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["CONTROL_HELD"] * 19 + ["won"]
    assert ControlSession.objects.filter(device=device, ended_at__isnull=True).count() == 1
