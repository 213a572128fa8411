"""R6: "may this device push these streams now?" — full, degraded or no service."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from console.errors import InvalidInput, NotFound
from console.tests.factories import CameraFactory, DeviceFactory, LicenseFactory
from licensing.models import License
from licensing.rules import (
    CONCURRENCY_LIMIT,
    DISABLED,
    NOT_ENOUGH_LICENSES,
    choose_cameras,
)
from licensing.selectors import device_entitlement_inputs
from licensing.services import (
    DEGRADED,
    NO_VALID_LICENSE,
    VALID,
    entitlement_decide,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant, serial="loader_7")


def bind_licenses(tenant, device, n: int, days: int = 100) -> list[License]:
    now = timezone.now()
    return [
        LicenseFactory(
            tenant=tenant,
            device=device,
            starts_at=now - dt.timedelta(days=1),
            expires_at=now + dt.timedelta(days=days + i),
        )
        for i in range(n)
    ]


def cam(device, w, h, priority=0, enabled=True):
    return CameraFactory(device=device, width=w, height=h, priority=priority, enabled=enabled)


def test_r6_guide_device_with_one_license_is_degraded_to_the_first_two(tenant, device):
    big = cam(device, 1280, 720, priority=10)
    mid = cam(device, 640, 480, priority=5)
    low = cam(device, 640, 480, priority=1)
    bind_licenses(tenant, device, 1)

    result = entitlement_decide(tenant=tenant, device_id=device.pk)

    assert result.code == DEGRADED
    assert result.licenses_valid == 1
    assert result.licenses_required == 2  # R1 for all three: 1.67 → 2
    # 1,228,800 px → 1.33 → 1 license: the first two fit, the third does not.
    assert result.granted_cameras == [big.pk, mid.pk]
    assert result.denied_cameras == [low.pk]


def test_r6_enough_licenses_is_full_service(tenant, device):
    cams = [cam(device, 1280, 720), cam(device, 640, 480), cam(device, 640, 480)]
    lics = bind_licenses(tenant, device, 2)
    result = entitlement_decide(tenant=tenant, device_id=device.pk)
    assert result.code == VALID
    assert sorted(result.granted_cameras) == sorted(c.pk for c in cams)
    assert result.denied_cameras == []
    assert result.valid_until == min(lic.expires_at for lic in lics)


def test_r6_equal_priority_takes_the_lower_camera_id_first(tenant, device):
    first = cam(device, 1280, 720, priority=3)
    second = cam(device, 1280, 720, priority=3)
    bind_licenses(tenant, device, 1)
    result = entitlement_decide(tenant=tenant, device_id=device.pk)
    assert (result.granted_cameras, result.denied_cameras) == ([first.pk], [second.pk])


def test_r6_skips_what_does_not_fit_and_keeps_a_later_smaller_camera(tenant, device):
    small_first = cam(device, 640, 480, priority=9)  # 307,200
    huge = cam(device, 1920, 1080, priority=8)  # +2,073,600 → 2.58 → 3 > 2: skipped
    medium = cam(device, 1280, 720, priority=7)  # 1,228,800 → 1.33 → 1 ≤ 2: kept
    tiny = cam(device, 320, 240, priority=6)  # still fits
    bind_licenses(tenant, device, 2)
    result = entitlement_decide(tenant=tenant, device_id=device.pk)
    assert result.code == DEGRADED
    assert result.granted_cameras == [small_first.pk, medium.pk, tiny.pk]
    assert result.denied_cameras == [huge.pk]


def test_r6_never_keeps_more_than_max_concurrent_streams(tenant):
    device = DeviceFactory(tenant=tenant, max_concurrent_streams=2)
    cams = [cam(device, 320, 240, priority=p) for p in (1, 4, 3, 2)]
    bind_licenses(tenant, device, 8)
    result = entitlement_decide(tenant=tenant, device_id=device.pk, camera_ids=[c.pk for c in cams])
    assert result.granted_cameras == [cams[1].pk, cams[2].pk]
    assert result.denied_cameras == [cams[3].pk, cams[0].pk]
    assert result.denied_reasons == {cams[3].pk: CONCURRENCY_LIMIT, cams[0].pk: CONCURRENCY_LIMIT}
    assert result.code == DEGRADED
    # R1 for the request honours k too: the two largest count.
    assert result.licenses_required == 1


def test_r6_omitted_cameras_are_what_the_device_pushes(tenant):
    """CONTRACT (changed): no cameras named means the enabled cameras by priority, at most
    max_concurrent_streams — so a licensed device gets VALID, never a CONCURRENCY_LIMIT."""
    device = DeviceFactory(tenant=tenant, max_concurrent_streams=2)
    cams = [cam(device, 320, 240, priority=p) for p in (1, 4, 3, 2)]
    cam(device, 640, 480, priority=9, enabled=False)
    bind_licenses(tenant, device, 1)
    result = entitlement_decide(tenant=tenant, device_id=device.pk)
    assert result.code == VALID
    assert result.granted_cameras == [cams[1].pk, cams[2].pk]
    assert result.denied_cameras == [] and result.denied_reasons == {}


def test_r6_zero_valid_licenses_is_no_service(tenant, device):
    cams = [cam(device, 640, 480), cam(device, 320, 240)]
    now = timezone.now()
    # An expired and a refunded license do not count.
    LicenseFactory(
        tenant=tenant,
        device=device,
        starts_at=now - dt.timedelta(days=400),
        expires_at=now - dt.timedelta(seconds=1),
    )
    LicenseFactory(tenant=tenant, status=License.Status.REFUNDED)
    result = entitlement_decide(tenant=tenant, device_id=device.pk)
    assert result.code == NO_VALID_LICENSE
    assert result.licenses_valid == 0
    assert result.granted_cameras == []
    assert sorted(result.denied_cameras) == sorted(c.pk for c in cams)
    assert result.valid_until is None


def test_r6_license_expiry_degrades_at_the_instant_and_rebinding_restores(tenant, device):
    cams = [cam(device, 1280, 720, priority=2), cam(device, 1280, 720, priority=1)]
    now = timezone.now()
    short, _long = bind_licenses(tenant, device, 2, days=10)
    short.expires_at = now + dt.timedelta(days=5)
    short.save()
    with time_machine.travel(short.expires_at, tick=False):
        result = entitlement_decide(tenant=tenant, device_id=device.pk)
        assert result.code == DEGRADED
        assert result.granted_cameras == [cams[0].pk]
        # Buying and binding a new license restores service at once.
        bind_licenses(tenant, device, 1)
        assert entitlement_decide(tenant=tenant, device_id=device.pk).code == VALID


def test_r6_disabled_cameras_are_denied(tenant, device):
    on = cam(device, 640, 480)
    off = cam(device, 640, 480, enabled=False)
    bind_licenses(tenant, device, 4)
    # Omitted: all enabled cameras — the disabled one is not even requested.
    result = entitlement_decide(tenant=tenant, device_id=device.pk)
    assert (result.code, result.granted_cameras, result.denied_cameras) == (VALID, [on.pk], [])
    # Asked for explicitly: denied.
    result = entitlement_decide(tenant=tenant, device_id=device.pk, camera_ids=[on.pk, off.pk])
    assert result.code == DEGRADED
    assert (result.granted_cameras, result.denied_cameras) == ([on.pk], [off.pk])
    assert result.licenses_required == 1


def test_r6_requested_subset_only(tenant, device):
    a = cam(device, 1280, 720)
    cam(device, 1920, 1080)
    bind_licenses(tenant, device, 1)
    result = entitlement_decide(tenant=tenant, device_id=device.pk, camera_ids=[a.pk, a.pk])
    assert (result.code, result.granted_cameras, result.licenses_required) == (VALID, [a.pk], 1)


def test_r6_another_devices_camera_is_an_error(tenant, device):
    cam(device, 640, 480)
    foreign = cam(DeviceFactory(tenant=tenant), 640, 480)
    bind_licenses(tenant, device, 1)
    with pytest.raises(InvalidInput) as exc:
        entitlement_decide(tenant=tenant, device_id=device.pk, camera_ids=[foreign.pk])
    assert "cameras" in exc.value.errors
    assert License.objects.filter(first_served_at__isnull=False).count() == 0


def test_r6_another_tenants_device_is_not_found(tenant, other_tenant):
    theirs = DeviceFactory(tenant=other_tenant)
    with pytest.raises(NotFound):
        entitlement_decide(tenant=tenant, device_id=theirs.pk)


def test_r10_a_grant_stamps_first_served_at_on_every_valid_bound_license(tenant, device):
    cam(device, 640, 480)
    lics = bind_licenses(tenant, device, 2)
    spare = LicenseFactory(tenant=tenant)  # unbound: not served
    at = timezone.now()
    with time_machine.travel(at, tick=False):
        entitlement_decide(tenant=tenant, device_id=device.pk)
    for lic in lics:
        lic.refresh_from_db()
        assert lic.first_served_at == at
    spare.refresh_from_db()
    assert spare.first_served_at is None
    # A later grant does not move the first date.
    with time_machine.travel(at + dt.timedelta(hours=1), tick=False):
        entitlement_decide(tenant=tenant, device_id=device.pk)
    lics[0].refresh_from_db()
    assert lics[0].first_served_at == at


def test_r10_no_grant_no_stamp(tenant, device):
    cam(device, 640, 480, enabled=False)
    lic = bind_licenses(tenant, device, 1)[0]
    result = entitlement_decide(tenant=tenant, device_id=device.pk)
    assert result.granted_cameras == []
    lic.refresh_from_db()
    assert lic.first_served_at is None


def test_r6_steady_state_is_a_fixed_few_queries(tenant, device, django_assert_num_queries):
    """R6 hot path: one statement to read, whatever the number of cameras and licenses,
    once the licenses are marked served."""
    for _ in range(8):
        cam(device, 640, 480)
    bind_licenses(tenant, device, 3)
    entitlement_decide(tenant=tenant, device_id=device.pk)  # stamps first_served_at
    with django_assert_num_queries(1):
        first = entitlement_decide(tenant=tenant, device_id=device.pk)
    assert first.code == VALID
    assert device_entitlement_inputs(tenant, device.pk).lic_valid == 3


def test_r6_choose_cameras_pure_function():
    class C:
        def __init__(self, pk, w, h, priority=0, enabled=True):
            self.pk, self.pixels, self.priority, self.enabled = pk, w * h, priority, enabled

    cams = [C(1, 1280, 720, 10), C(2, 640, 480, 5), C(3, 640, 480, 1)]
    choice = choose_cameras(cams, licenses_valid=1, max_concurrent_streams=None)
    assert [c.pk for c in choice.kept] == [1, 2]
    assert [c.pk for c in choice.denied] == [3]
    assert choice.reasons == {3: NOT_ENOUGH_LICENSES}
    choice = choose_cameras(cams, licenses_valid=0, max_concurrent_streams=None)
    assert choice.kept == [] and len(choice.denied) == 3
    assert set(choice.reasons.values()) == {NOT_ENOUGH_LICENSES}


def test_r6_denied_reasons_name_each_cause():
    class C:
        def __init__(self, pk, w, h, priority=0, enabled=True):
            self.pk, self.pixels, self.priority, self.enabled = pk, w * h, priority, enabled

    cams = [C(1, 1280, 720, 9), C(2, 1280, 720, 8), C(3, 640, 480, 7, enabled=False)]
    cams.append(C(4, 640, 480, 1))
    choice = choose_cameras(cams, licenses_valid=5, max_concurrent_streams=2)
    assert [c.pk for c in choice.kept] == [1, 2]
    assert choice.reasons == {3: DISABLED, 4: CONCURRENCY_LIMIT}
    choice = choose_cameras(cams, licenses_valid=1, max_concurrent_streams=None)
    # 1280×720 + 640×480 is 1.33 → 1 license: camera 4 still fits after 2 is skipped.
    assert [c.pk for c in choice.kept] == [1, 4]
    assert choice.reasons == {2: NOT_ENOUGH_LICENSES, 3: DISABLED}
