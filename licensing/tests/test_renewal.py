"""R4: renewal by whole years, from the current last service date, only while valid."""

import datetime as dt

import pytest
import time_machine

from console.errors import Conflict, InvalidInput
from console.models import AuditEvent
from console.tests.factories import DeviceFactory, TenantFactory
from console.timeutils import BUSINESS_TZ
from licensing.models import License
from licensing.services import license_bind, licenses_issue, licenses_renew

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def cst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


def test_r4_guide_example_bought_2027_02_28_renewed_once(tenant):
    [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=cst(2027, 2, 28, 11, 0))
    assert lic.expires_at == cst(2028, 2, 29, 0, 0)
    assert lic.last_service_date == dt.date(2028, 2, 28)

    [ext] = licenses_renew(tenant=tenant, license_ids=[lic.pk], years=1, at=cst(2027, 9, 1))
    lic.refresh_from_db()
    assert ext.previous_expires_at == cst(2028, 2, 29)
    assert ext.new_expires_at == lic.expires_at == cst(2029, 3, 1, 0, 0)
    assert lic.last_service_date == dt.date(2029, 2, 28)


def test_r4_renewal_counts_from_last_service_date_not_from_today(tenant):
    [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=cst(2026, 3, 15, 10, 0))
    # Renewing on the last service day itself, or months early, gives the same date.
    licenses_renew(tenant=tenant, license_ids=[lic.pk], years=2, at=cst(2027, 3, 15, 23, 0))
    lic.refresh_from_db()
    assert lic.last_service_date == dt.date(2029, 3, 15)
    assert lic.expires_at == cst(2029, 3, 16)


def test_r4_renewal_keeps_the_binding_and_is_audited(tenant):
    device = DeviceFactory(tenant=tenant)
    paid = cst(2026, 1, 10, 8, 0)
    [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=paid)
    license_bind(tenant=tenant, license=lic, device=device, at=paid)
    licenses_renew(tenant=tenant, license_ids=[lic.pk], years=1, at=cst(2026, 6, 1))
    lic.refresh_from_db()
    assert lic.device_id == device.pk
    event = AuditEvent.objects.get(action="license.renewed")
    assert event.target_id == str(lic.pk)
    assert event.data["years"] == 1


def test_r4_renewal_refused_once_expired_and_nothing_changes(tenant):
    paid = cst(2026, 3, 15, 10, 0)
    live, dead = licenses_issue(tenant=tenant, quantity=2, years=1, paid_at=paid)
    License.objects.filter(pk=dead.pk).update(expires_at=cst(2026, 6, 1))
    before = AuditEvent.objects.count()
    with pytest.raises(Conflict) as exc:
        licenses_renew(
            tenant=tenant, license_ids=[live.pk, dead.pk], years=1, at=cst(2026, 6, 1, 0, 0)
        )
    assert exc.value.code == "LICENSE_EXPIRED"
    assert exc.value.extra["licenses"] == [dead.pk]
    assert "buy new licenses" in str(exc.value.detail)
    # All or nothing: the still-valid one is not renewed either.
    live.refresh_from_db()
    assert live.expires_at == cst(2027, 3, 16)
    assert AuditEvent.objects.count() == before


def test_r4_renewal_refused_at_the_expiry_instant_with_time_machine(tenant):
    [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=cst(2026, 3, 15, 10, 0))
    with time_machine.travel(cst(2027, 3, 15, 23, 59, 59), tick=False):
        licenses_renew(tenant=tenant, license_ids=[lic.pk], years=1)
    lic.refresh_from_db()
    with time_machine.travel(lic.expires_at, tick=False), pytest.raises(Conflict):
        licenses_renew(tenant=tenant, license_ids=[lic.pk], years=1)


def test_r4_refunded_license_cannot_be_renewed(tenant):
    [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=cst(2026, 3, 15))
    License.objects.filter(pk=lic.pk).update(status=License.Status.REFUNDED)
    with pytest.raises(Conflict):
        licenses_renew(tenant=tenant, license_ids=[lic.pk], years=1, at=cst(2026, 4, 1))


def test_r4_renewal_of_another_tenants_license_is_refused(tenant):
    other = TenantFactory()
    [theirs] = licenses_issue(tenant=other, quantity=1, years=1, paid_at=cst(2026, 3, 15))
    with pytest.raises(InvalidInput):
        licenses_renew(tenant=tenant, license_ids=[theirs.pk], years=1, at=cst(2026, 4, 1))
    theirs.refresh_from_db()
    assert theirs.expires_at == cst(2027, 3, 16)


@pytest.mark.parametrize("years", [0, -1, 11, 1.0, "1", None])
def test_r4_renewal_needs_whole_years(tenant, years):
    [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=cst(2026, 3, 15))
    with pytest.raises(InvalidInput):
        licenses_renew(tenant=tenant, license_ids=[lic.pk], years=years, at=cst(2026, 4, 1))


def test_r4_renewal_needs_at_least_one_license(tenant):
    with pytest.raises(InvalidInput):
        licenses_renew(tenant=tenant, license_ids=[], years=1, at=cst(2026, 4, 1))


def test_r4_renewing_many_licenses_stays_cheap(tenant, django_assert_max_num_queries):
    paid = cst(2026, 3, 15, 10, 0)
    licenses = licenses_issue(tenant=tenant, quantity=300, years=1, paid_at=paid)
    with django_assert_max_num_queries(12):
        exts = licenses_renew(
            tenant=tenant, license_ids=[lic.pk for lic in licenses], years=1, at=cst(2026, 4, 1)
        )
    assert len(exts) == 300
    assert License.objects.filter(expires_at=cst(2028, 3, 16)).count() == 300
    assert AuditEvent.objects.filter(action="license.renewed").count() == 300
