"""R7: binding one license, binding by count (soonest-expiring first, all or nothing),
unbinding, moving, and deleting a device that has licenses."""

import datetime as dt

import pytest
from django.db.models import ProtectedError

from console.errors import Conflict, InvalidInput, NotFound
from console.models import AuditEvent
from console.tests.factories import (
    CameraFactory,
    CockpitFactory,
    DeviceFactory,
    LicenseFactory,
)
from devices.models import Camera, ControlSession, FieldDevice
from licensing.models import License
from licensing.services import (
    control_acquire,
    device_delete_unbinding,
    license_bind,
    license_unbind,
    licenses_bind_count,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant, serial="truck_01")


def _lic(tenant, days: int, **kw) -> License:
    now = dt.datetime.now(dt.UTC)
    return LicenseFactory(
        tenant=tenant,
        starts_at=now - dt.timedelta(days=1),
        expires_at=now + dt.timedelta(days=days),
        **kw,
    )


def _counts():
    return (
        License.objects.filter(device__isnull=False).count(),
        AuditEvent.objects.count(),
    )


def test_r7_bind_one_license_is_audited(tenant, device, alice):
    lic = _lic(tenant, 100)
    bound = license_bind(tenant=tenant, license=lic, device=device, actor=alice)
    assert bound.device_id == device.pk
    lic.refresh_from_db()
    assert lic.device_id == device.pk
    event = AuditEvent.objects.get(action="license.bound")
    assert (event.target_id, event.actor, event.data) == (str(lic.pk), alice, {"device": device.pk})


def test_r7_binding_again_to_the_same_device_is_a_no_op(tenant, device):
    lic = _lic(tenant, 100)
    license_bind(tenant=tenant, license=lic, device=device)
    license_bind(tenant=tenant, license=lic, device=device.pk)
    assert AuditEvent.objects.filter(action="license.bound").count() == 1


def test_r7_license_bound_elsewhere_must_be_unbound_first(tenant, device):
    other_device = DeviceFactory(tenant=tenant)
    lic = _lic(tenant, 100, device=other_device)
    before = _counts()
    with pytest.raises(Conflict) as exc:
        license_bind(tenant=tenant, license=lic, device=device)
    assert exc.value.code == "LICENSE_BOUND"
    assert _counts() == before
    lic.refresh_from_db()
    assert lic.device_id == other_device.pk


def test_r7_move_is_unbind_then_bind_both_audited(tenant, device):
    target = DeviceFactory(tenant=tenant)
    lic = _lic(tenant, 100, device=device)
    license_unbind(tenant=tenant, license=lic)
    license_bind(tenant=tenant, license=lic, device=target)
    lic.refresh_from_db()
    assert lic.device_id == target.pk
    actions = list(
        AuditEvent.objects.filter(target_id=str(lic.pk))
        .order_by("id")
        .values_list("action", "data")
    )
    assert actions == [
        ("license.unbound", {"device": device.pk}),
        ("license.bound", {"device": target.pk}),
    ]


def test_r7_unbinding_an_unbound_license_changes_nothing(tenant):
    lic = _lic(tenant, 100)
    license_unbind(tenant=tenant, license=lic)
    assert AuditEvent.objects.count() == 0


def test_r7_expired_license_cannot_be_bound(tenant, device):
    now = dt.datetime.now(dt.UTC)
    lic = LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(days=400), expires_at=now - dt.timedelta(1)
    )
    before = _counts()
    with pytest.raises(Conflict) as exc:
        license_bind(tenant=tenant, license=lic, device=device)
    assert exc.value.code == "LICENSE_EXPIRED"
    assert _counts() == before


def test_r7_refunded_license_cannot_be_bound(tenant, device):
    lic = _lic(tenant, 100, status=License.Status.REFUNDED)
    before = _counts()
    with pytest.raises(Conflict) as exc:
        license_bind(tenant=tenant, license=lic, device=device)
    assert exc.value.code == "LICENSE_REFUNDED"
    assert _counts() == before


def test_r7_another_tenants_license_cannot_be_bound(tenant, other_tenant, device):
    theirs = _lic(other_tenant, 100)
    before = _counts()
    with pytest.raises(NotFound):
        license_bind(tenant=tenant, license=theirs, device=device)
    # …nor bound by the other tenant to our device.
    with pytest.raises(InvalidInput) as exc:
        license_bind(tenant=other_tenant, license=theirs, device=device)
    assert "device" in exc.value.errors
    assert _counts() == before


def test_r7_another_tenants_license_cannot_be_unbound(tenant, other_tenant):
    theirs = _lic(other_tenant, 100, device=DeviceFactory(tenant=other_tenant))
    with pytest.raises(NotFound):
        license_unbind(tenant=tenant, license=theirs)
    theirs.refresh_from_db()
    assert theirs.device_id is not None


def test_r7_bind_by_count_takes_the_soonest_expiring_first(tenant, device):
    late = _lic(tenant, 300)
    soon = _lic(tenant, 10)
    middle = _lic(tenant, 100)
    _lic(tenant, 5, status=License.Status.REFUNDED)  # never bound
    bound = licenses_bind_count(tenant=tenant, device=device, count=2)
    assert [lic.pk for lic in bound] == [soon.pk, middle.pk]
    assert set(License.objects.filter(device=device).values_list("pk", flat=True)) == {
        soon.pk,
        middle.pk,
    }
    late.refresh_from_db()
    assert late.device_id is None
    assert AuditEvent.objects.filter(action="license.bound").count() == 2


def test_r7_bind_by_count_skips_expired_bound_and_other_tenants(tenant, other_tenant, device):
    now = dt.datetime.now(dt.UTC)
    LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(400), expires_at=now - dt.timedelta(1)
    )
    _lic(tenant, 10, device=DeviceFactory(tenant=tenant))
    _lic(other_tenant, 10)
    free = _lic(tenant, 200)
    assert [lic.pk for lic in licenses_bind_count(tenant=tenant, device=device, count=1)] == [
        free.pk
    ]


def test_r7_bind_by_count_is_all_or_nothing(tenant, device):
    _lic(tenant, 10)
    _lic(tenant, 20)
    before = _counts()
    with pytest.raises(Conflict) as exc:
        licenses_bind_count(tenant=tenant, device=device, count=3)
    assert exc.value.code == "NOT_ENOUGH_LICENSES"
    assert exc.value.extra == {"available": 2}
    assert _counts() == before


@pytest.mark.parametrize("count", [0, -1, True, "2", 2.0, None, 10_001])
def test_r7_bind_by_count_rejects_bad_counts(tenant, device, count):
    _lic(tenant, 10)
    with pytest.raises(InvalidInput) as exc:
        licenses_bind_count(tenant=tenant, device=device, count=count)
    assert "count" in exc.value.errors
    assert _counts() == (0, 0)


def test_r7_bind_by_count_to_another_tenants_device_is_refused(tenant, other_tenant):
    _lic(tenant, 10)
    with pytest.raises(InvalidInput):
        licenses_bind_count(tenant=tenant, device=DeviceFactory(tenant=other_tenant), count=1)
    assert _counts() == (0, 0)


def test_r7_deleting_a_device_unbinds_its_licenses_in_one_transaction(tenant, device, alice):
    CameraFactory(device=device)
    cockpit = CockpitFactory(tenant=tenant)
    first, second = _lic(tenant, 10, device=device), _lic(tenant, 20, device=device)
    elsewhere = _lic(tenant, 30, device=DeviceFactory(tenant=tenant))
    control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)

    unbound = device_delete_unbinding(tenant=tenant, device=device, actor=alice)

    assert unbound == 2
    assert not FieldDevice.objects.filter(pk=device.pk).exists()
    assert not Camera.objects.filter(device_id=device.pk).exists()
    assert not ControlSession.objects.filter(device_id=device.pk).exists()
    for lic in (first, second):
        lic.refresh_from_db()
        assert lic.device_id is None
    elsewhere.refresh_from_db()
    assert elsewhere.device_id is not None
    unbinds = AuditEvent.objects.filter(action="license.unbound")
    assert {e.target_id for e in unbinds} == {str(first.pk), str(second.pk)}
    assert all(e.data == {"device": device.pk, "reason": "device_deleted"} for e in unbinds)
    assert AuditEvent.objects.filter(action="device.deleted", actor=alice).count() == 1


def test_r7_device_delete_failure_rolls_back_the_unbinding(tenant, device, monkeypatch):
    """Same transaction: if the delete fails, the licenses stay bound and nothing is audited."""
    lic = _lic(tenant, 10, device=device)
    before = AuditEvent.objects.count()

    def boom(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("licensing.services.binding.device_services.device_delete", boom)
    with pytest.raises(RuntimeError):
        device_delete_unbinding(tenant=tenant, device=device)
    lic.refresh_from_db()
    assert lic.device_id == device.pk
    assert AuditEvent.objects.count() == before


def test_r7_a_device_with_licenses_cannot_be_deleted_behind_the_services_back(tenant, device):
    _lic(tenant, 10, device=device)
    with pytest.raises(ProtectedError):
        device.delete()


def test_r7_another_tenants_device_cannot_be_deleted(tenant, other_tenant):
    theirs = DeviceFactory(tenant=other_tenant)
    with pytest.raises(NotFound):
        device_delete_unbinding(tenant=tenant, device=theirs)
    assert FieldDevice.objects.filter(pk=theirs.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_r7_concurrent_bind_by_count_never_shares_a_license(postgres_only):
    """Ten binders ask for 2 of 5 free licenses at once: exactly two succeed, no license is
    bound twice, the others bind none (all or nothing)."""
    import threading

    from django.db import connection

    from console.tests.factories import TenantFactory

    tenant = TenantFactory()
    for days in range(5):
        _lic(tenant, 10 + days)
    devices = [DeviceFactory(tenant=tenant) for _ in range(10)]
    barrier = threading.Barrier(len(devices))
    outcomes: list[str] = []

    def bind(device_id: int) -> None:
        try:
            barrier.wait()
            try:
                licenses_bind_count(tenant=tenant, device=device_id, count=2)
                outcomes.append("bound")
            except Conflict as exc:
                outcomes.append(exc.code)
            except Exception as exc:
                outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=bind, args=(d.pk,)) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["NOT_ENOUGH_LICENSES"] * 8 + ["bound"] * 2
    per_device = [License.objects.filter(device=d).count() for d in devices]
    assert sorted(per_device) == [0] * 8 + [2] * 2
    assert License.objects.filter(device__isnull=True).count() == 1
