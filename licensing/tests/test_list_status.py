"""The device status in SQL (licensing.selectors.devices_with_status) against R1 in Python
(rules.requirement, rules.device_license_status): the device list filters and the dashboard
counts 10,000 devices by it, so it must agree with the device page on every device."""

import datetime as dt
import random

import pytest
from django.db import connection
from django.utils import timezone

from console.tests.factories import CameraFactory, DeviceFactory, LicenseFactory
from licensing import rules, selectors

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "aggregate",
    [
        0,
        1,
        460_799,
        460_800,
        921_600,
        1_382_399,
        1_382_400,
        1_536_000,
        2_304_000,
        1472 * 936,
        8 * 7680 * 4320,
    ],
)
def test_licenses_for_pixels_sql_matches_the_rule(aggregate):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {rules.licenses_for_pixels_sql(str(int(aggregate)))}")
        (value,) = cursor.fetchone()
    assert value == rules.licenses_for_pixels(aggregate)


def test_device_status_in_sql_matches_the_rule(tenant):
    rng = random.Random(12)
    sizes = [(640, 480), (1280, 720), (1472, 936), (1920, 1080), (3840, 2160), (7680, 4320)]
    now = timezone.now()
    expected = {}
    for i in range(40):
        k = rng.choice([None, None, 1, 2, 3])
        device = DeviceFactory(tenant=tenant, serial=f"d{i:02d}", max_concurrent_streams=k)
        cameras = []
        for _j in range(rng.randint(0, 5)):
            width, height = rng.choice(sizes)
            enabled = rng.random() > 0.2
            CameraFactory(device=device, width=width, height=height, enabled=enabled)
            if enabled:
                cameras.append(width * height)
        valid = rng.randint(0, 4)
        for _v in range(valid):
            LicenseFactory(tenant=tenant, device=device)
        # Licenses that do not count: expired and refunded.
        LicenseFactory(
            tenant=tenant,
            device=device,
            starts_at=now - dt.timedelta(days=400),
            expires_at=now - dt.timedelta(days=1),
        )
        required = rules.requirement(cameras, k).licenses
        expected[device.pk] = (
            required,
            valid,
            rules.device_license_status(required=required, valid=valid),
        )
    statuses = selectors.device_statuses(tenant, at=now)
    rows = selectors.devices_with_licensing(selectors.device_search(tenant, at=now), at=now)
    got = {d.pk: (lic.licenses_required, lic.licenses_valid, statuses[d.pk]) for d, lic in rows}
    assert got == expected
    counts = selectors.device_status_counts(tenant, at=now)
    for status in selectors.DEVICE_STATUSES:
        assert counts[status] == sum(1 for v in expected.values() if v[2] == status)
    for status in selectors.DEVICE_STATUSES:
        filtered = selectors.device_search(tenant, status=status, at=now)
        assert {d.pk for d in filtered} == {pk for pk, v in expected.items() if v[2] == status}


def test_a_device_without_enabled_cameras_needs_one_license(tenant, other_tenant):
    """R1: max(1, …) — and another tenant's licenses never count."""
    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device, enabled=False)
    theirs = DeviceFactory(tenant=other_tenant)
    LicenseFactory(tenant=other_tenant, device=theirs)
    assert selectors.device_statuses(tenant) == {device.pk: rules.UNLICENSED}
    LicenseFactory(tenant=tenant, device=device)
    assert selectors.device_statuses(tenant) == {device.pk: rules.LICENSED}
