"""R8 lease mechanics owned by devices: one open session per device (database-enforced),
lease length from the setting, lapse, takeover, extension and release."""

import datetime as dt

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from console.errors import Conflict, InvalidInput, NotFound
from console.models import AuditEvent
from console.tests.factories import CockpitFactory, DeviceFactory
from devices import services
from devices.models import ControlSession

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant)


@pytest.fixture
def cockpits(tenant):
    return CockpitFactory(tenant=tenant, name="A"), CockpitFactory(tenant=tenant, name="B")


def acquire(tenant, device, cockpit, **kw):
    with transaction.atomic():
        return services.control_session_acquire(tenant=tenant, device=device, cockpit=cockpit, **kw)


def test_r8_database_rejects_a_second_open_session_even_bypassing_the_service(
    tenant, device, cockpits
):
    now = timezone.now()
    lease = now + dt.timedelta(seconds=30)
    ControlSession.objects.create(
        device=device, cockpit=cockpits[0], started_at=now, lease_expires_at=lease
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        ControlSession.objects.create(
            device=device, cockpit=cockpits[1], started_at=now, lease_expires_at=lease
        )
    # Ended sessions do not count: history may hold many.
    ControlSession.objects.filter(device=device).update(ended_at=now)
    ControlSession.objects.create(
        device=device, cockpit=cockpits[1], started_at=now, lease_expires_at=lease
    )
    assert ControlSession.objects.filter(device=device).count() == 2


@pytest.mark.django_db(transaction=True)
def test_r8_acquire_needs_the_callers_transaction(tenant, device, cockpits):
    with pytest.raises(AssertionError):
        services.control_session_acquire(tenant=tenant, device=device, cockpit=cockpits[0])


def test_r8_acquire_then_another_cockpit_is_refused(tenant, device, cockpits):
    a, b = cockpits
    at = timezone.now()
    session, created = acquire(tenant, device, a, at=at)
    assert created
    assert session.lease_expires_at == at + dt.timedelta(seconds=30)
    with pytest.raises(Conflict) as exc:
        acquire(tenant, device, b, at=at + dt.timedelta(seconds=29))
    assert exc.value.code == "CONTROL_HELD"
    assert exc.value.extra == {"holder": a.pk, "lease_expires_at": session.lease_expires_at}
    assert ControlSession.objects.filter(ended_at__isnull=True).count() == 1


def test_r8_same_cockpit_gets_its_live_session_back_with_the_lease_extended(
    tenant, device, cockpits
):
    at = timezone.now()
    first, created = acquire(tenant, device, cockpits[0], at=at)
    again, created_again = acquire(
        tenant, device, cockpits[0], token=first.token, at=at + dt.timedelta(seconds=20)
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    again.refresh_from_db()
    assert again.lease_expires_at == at + dt.timedelta(seconds=50)
    assert ControlSession.objects.count() == 1


def test_the_same_cockpit_without_its_token_is_another_cockpits_request(tenant, device, cockpits):
    """CONTRACT (X-Control-Token): one cockpit cannot keep alive another's session by
    naming the same cockpit id; a trusted caller (an admin key) may."""
    at = timezone.now()
    first, _ = acquire(tenant, device, cockpits[0], at=at)
    assert len(first.token) >= 40 and first.token_digest != first.token
    for token in (None, "", first.token + "x"):
        with pytest.raises(Conflict) as exc:
            acquire(tenant, device, cockpits[0], token=token, at=at + dt.timedelta(seconds=5))
        assert exc.value.code == "CONTROL_HELD"
    again, created = acquire(
        tenant, device, cockpits[0], trusted=True, at=at + dt.timedelta(seconds=5)
    )
    assert (again.pk, created) == (first.pk, False)
    assert not hasattr(again, "token")  # shown once, when the session starts


def test_r8_lapsed_lease_frees_the_device(tenant, device, cockpits):
    a, b = cockpits
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        held, _ = acquire(tenant, device, a)
    with time_machine.travel(start + dt.timedelta(seconds=30), tick=False):
        taken, created = acquire(tenant, device, b)
    assert created and taken.cockpit_id == b.pk
    held.refresh_from_db()
    assert held.end_reason == ControlSession.EndReason.LAPSED
    # The record says when control really stopped: at the lapse, not when noticed.
    assert held.ended_at == held.lease_expires_at


def test_r8_force_takeover_ends_the_holders_session(tenant, device, cockpits, alice):
    a, b = cockpits
    at = timezone.now()
    held, _ = acquire(tenant, device, a, at=at)
    _taken, created = acquire(tenant, device, b, at=at, force=True, actor=alice)
    assert created
    held.refresh_from_db()
    assert held.ended_at == at
    assert held.end_reason == ControlSession.EndReason.TAKEN_OVER
    event = AuditEvent.objects.get(action="control.taken_over")
    assert event.data == {"device": device.pk, "from": a.pk, "to": b.pk}
    assert event.actor == alice


def test_r8_lease_length_comes_from_the_setting(tenant, device, cockpits, settings):
    settings.CONTROL_LEASE_SECONDS = 90
    at = timezone.now()
    session, _ = acquire(tenant, device, cockpits[0], at=at)
    assert session.lease_expires_at == at + dt.timedelta(seconds=90)
    services.control_session_extend(session=session, at=at + dt.timedelta(seconds=60))
    assert session.lease_expires_at == at + dt.timedelta(seconds=150)


def test_r8_release_ends_the_session_once(tenant, device, cockpits):
    at = timezone.now()
    session, _ = acquire(tenant, device, cockpits[0], at=at)
    services.control_session_end(tenant=tenant, session=session, at=at + dt.timedelta(seconds=5))
    services.control_session_end(tenant=tenant, session=session, at=at + dt.timedelta(seconds=6))
    session.refresh_from_db()
    assert session.end_reason == ControlSession.EndReason.RELEASED
    assert session.ended_at == at + dt.timedelta(seconds=5)
    assert AuditEvent.objects.filter(action="control.released").count() == 1
    # The device is free for anyone now.
    acquire(tenant, device, cockpits[1], at=at + dt.timedelta(seconds=7))


def test_r8_cleanup_ends_only_lapsed_leases(tenant, cockpits):
    at = timezone.now()
    lapsed_dev, live_dev = DeviceFactory(tenant=tenant), DeviceFactory(tenant=tenant)
    lapsed, _ = acquire(tenant, lapsed_dev, cockpits[0], at=at - dt.timedelta(seconds=31))
    live, _ = acquire(tenant, live_dev, cockpits[1], at=at)
    assert services.control_sessions_end_lapsed(at=at) == 1
    assert services.control_sessions_end_lapsed(at=at) == 0  # safe to re-run
    lapsed.refresh_from_db()
    live.refresh_from_db()
    assert lapsed.ended_at == lapsed.lease_expires_at
    assert live.ended_at is None


def test_r8_another_tenants_cockpit_or_device_is_refused(tenant, other_tenant, device, cockpits):
    theirs = CockpitFactory(tenant=other_tenant)
    with pytest.raises(InvalidInput):
        acquire(tenant, device, theirs)
    with pytest.raises(NotFound):
        acquire(other_tenant, device, theirs)
    with pytest.raises(NotFound), transaction.atomic():
        services.control_session_lock(tenant=other_tenant, session_id=0)
    assert ControlSession.objects.count() == 0
