"""R11, R13: what a reminder says per device — its R6 service now and from the expiry date
on, as licensing.rules.device_service decides it (the enabled cameras by priority, at most
max_concurrent_streams) — and the split of the jobs into modules by concern."""

import datetime as dt

import pytest
import time_machine

from console.tests.factories import CameraFactory, DeviceFactory
from console.timeutils import BUSINESS_TZ
from licensing import jobs, rules
from licensing.models import License
from licensing.reminder_content import reminder_content, service_instants
from licensing.services import licenses_issue

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def cst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


PAID = cst(2026, 3, 15, 10, 0)
EXPIRY_DATE = dt.date(2027, 3, 16)  # R3: the licenses paid on PAID for a year


def issue(tenant, quantity, *, device=None, paid_at=PAID, years=1):
    with time_machine.travel(paid_at, tick=False):
        licenses = licenses_issue(tenant=tenant, quantity=quantity, years=years, paid_at=paid_at)
    if device is not None:
        License.objects.filter(pk__in=[lic.pk for lic in licenses]).update(device=device)
    return licenses


def change_of(content, serial):
    return next(d for d in content.devices if d.device.serial == serial)


def test_r6_a_device_left_short_is_degraded_not_cut_off(tenant):
    """Two enabled 720p cameras need 2 licenses; with the one lasting license left the device
    keeps one of them (degraded); its disabled camera is not counted at all."""
    crane = DeviceFactory(tenant=tenant, serial="crane_1")
    CameraFactory(device=crane, priority=1)
    CameraFactory(device=crane, priority=5)
    CameraFactory(device=crane, enabled=False)
    issue(tenant, 1, device=crane)
    issue(tenant, 1, device=crane, years=2)
    content = reminder_content(tenant=tenant, expiry_date=EXPIRY_DATE, at=cst(2027, 3, 9, 9))
    crane_change = change_of(content, "crane_1")
    assert (crane_change.service_before, crane_change.service_after) == (
        rules.VALID,
        rules.DEGRADED,
    )
    assert (crane_change.cameras_before, crane_change.cameras_after) == (2, 1)
    assert crane_change.cameras_pushed == 2  # the disabled camera is not pushed
    assert (crane_change.licenses_before, crane_change.licenses_after) == (2, 1)
    assert crane_change.licenses_required == 2
    assert crane_change.changes and not crane_change.loses_all
    assert crane_change.service_after_display == "degraded service"


def test_r6_max_concurrent_streams_bounds_what_the_device_pushes(tenant):
    """k = 1 of three cameras: the device pushes one (R1 needs 1 license), so one license is
    full service, and the email counts one camera, not three."""
    mast = DeviceFactory(tenant=tenant, serial="mast_1", max_concurrent_streams=1)
    for priority in (0, 3, 1):
        CameraFactory(device=mast, priority=priority)
    issue(tenant, 1, device=mast)
    content = reminder_content(tenant=tenant, expiry_date=EXPIRY_DATE, at=cst(2027, 3, 9, 9))
    mast_change = change_of(content, "mast_1")
    assert (mast_change.service_before, mast_change.service_after) == (
        rules.VALID,
        rules.NO_VALID_LICENSE,
    )
    assert (mast_change.cameras_pushed, mast_change.cameras_before) == (1, 1)
    assert mast_change.cameras_after == 0
    assert mast_change.loses_all


def test_r13_service_now_counts_every_license_valid_now(tenant):
    """ "Service now" is now: a license that expires before this expiry date still counts
    today, and none of them counts from the expiry date on."""
    truck = DeviceFactory(tenant=tenant, serial="truck_1")
    CameraFactory(device=truck)
    CameraFactory(device=truck)
    issue(tenant, 1, device=truck)  # expiry date 2027-03-16
    issue(tenant, 1, device=truck, paid_at=PAID - dt.timedelta(days=4))  # 2027-03-12
    content = reminder_content(tenant=tenant, expiry_date=EXPIRY_DATE, at=cst(2027, 3, 9, 9))
    truck_change = change_of(content, "truck_1")
    assert (truck_change.licenses_before, truck_change.licenses_after) == (2, 0)
    assert (truck_change.service_before, truck_change.service_after) == (
        rules.VALID,
        rules.NO_VALID_LICENSE,
    )
    assert truck_change.expiring == 1
    assert content.license_count == 1


def test_r13_the_expiry_notice_compares_before_the_expiry_instant_with_now(tenant):
    """Sent late (03-18), the notice shows the service the device had before its licenses
    expired and the service it has now, with a license bought and bound since."""
    truck = DeviceFactory(tenant=tenant, serial="truck_1")
    CameraFactory(device=truck)
    issue(tenant, 1, device=truck)
    issue(tenant, 1, device=truck, paid_at=cst(2027, 3, 17, 15))
    content = reminder_content(tenant=tenant, expiry_date=EXPIRY_DATE, at=cst(2027, 3, 18, 0, 5))
    truck_change = change_of(content, "truck_1")
    assert (truck_change.licenses_before, truck_change.licenses_after) == (1, 1)
    assert not truck_change.changes


def test_r13_service_instants():
    expiry_instant = cst(2027, 3, 16)
    before, after = service_instants(expiry_date=EXPIRY_DATE, at=cst(2027, 3, 9, 9))
    assert (before, after) == (cst(2027, 3, 9, 9), expiry_instant)
    before, after = service_instants(expiry_date=EXPIRY_DATE, at=cst(2027, 3, 16, 0, 5))
    assert before == expiry_instant - dt.timedelta(microseconds=1)
    assert after == cst(2027, 3, 16, 0, 5)
    # R5: a license expiring at the expiry instant is valid just before it, not at it
    assert rules.is_valid(status="active", starts_at=PAID, expires_at=expiry_instant, at=before)
    assert not rules.is_valid(
        status="active", starts_at=PAID, expires_at=expiry_instant, at=expiry_instant
    )


def test_licensing_jobs_keeps_its_public_names():
    """Commands, tasks and scripts imported these from licensing.jobs before the split."""
    from licensing import expiry, reminder_content, reminders

    assert jobs.licenses_expire_due is expiry.licenses_expire_due
    assert jobs.reminders_send_due is reminders.reminders_send_due
    assert jobs.reminder_send is reminders.reminder_send
    assert jobs.reminder_content is reminder_content.reminder_content
    for name in jobs.__all__:
        assert hasattr(jobs, name), name
