"""R3 validity dates and R5 expiry computed at read time (no job involved)."""

import datetime as dt

import pytest
import time_machine

from console.errors import InvalidInput
from console.models import AuditEvent
from console.timeutils import BUSINESS_TZ, add_years
from licensing import selectors
from licensing.models import License
from licensing.rules import expiry_after_years
from licensing.services import licenses_issue

pytestmark = pytest.mark.django_db


def cst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


def test_r3_add_years_turns_feb_29_into_feb_28():
    assert add_years(dt.date(2028, 2, 29), 1) == dt.date(2029, 2, 28)
    assert add_years(dt.date(2028, 2, 29), 4) == dt.date(2032, 2, 29)
    assert add_years(dt.date(2027, 2, 28), 1) == dt.date(2028, 2, 28)


def test_r3_expiry_is_midnight_cst_after_the_last_service_date():
    assert expiry_after_years(from_date=dt.date(2027, 3, 15), years=1) == cst(2028, 3, 16)
    assert expiry_after_years(from_date=dt.date(2028, 2, 29), years=1) == cst(2029, 3, 1)
    assert expiry_after_years(from_date=dt.date(2026, 12, 31), years=1) == cst(2028, 1, 1)


def test_r3_paid_date_is_the_shanghai_date_not_utc():
    """Paid 2026-03-15 01:00 CST is still 2026-03-14 in UTC; the Shanghai date counts."""
    paid = cst(2026, 3, 15, 1, 0)
    assert paid.astimezone(dt.UTC).date() == dt.date(2026, 3, 14)
    [lic] = licenses_issue(tenant=_tenant(), quantity=1, years=1, paid_at=paid)
    assert lic.expires_at == cst(2027, 3, 16)
    assert lic.last_service_date == dt.date(2027, 3, 15)


def _tenant():
    from console.tests.factories import TenantFactory

    return TenantFactory()


def test_r3_r5_paid_2026_03_15_boundaries_without_any_job(tenant):
    paid = cst(2026, 3, 15, 10, 0)
    with time_machine.travel(paid, tick=False):
        [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=paid)
    lic.refresh_from_db()
    assert lic.starts_at == paid
    assert lic.last_service_date == dt.date(2027, 3, 15)
    assert lic.expires_at == cst(2027, 3, 16, 0, 0)

    with time_machine.travel(cst(2027, 3, 15, 23, 59, 59), tick=False):
        lic.refresh_from_db()
        assert lic.current_status == License.Status.ACTIVE
        assert License.objects.valid_at(cst(2027, 3, 15, 23, 59, 59)).filter(pk=lic.pk).exists()
        assert selectors.license_list(tenant, status="active").filter(pk=lic.pk).exists()
        assert not selectors.license_list(tenant, status="expired").exists()

    with time_machine.travel(cst(2027, 3, 16, 0, 0), tick=False):
        lic.refresh_from_db()
        # No job ran: the stored status is still "active", yet the license is expired.
        assert lic.status == License.Status.ACTIVE
        assert lic.current_status == License.Status.EXPIRED
        assert not License.objects.valid_at(cst(2027, 3, 16)).filter(pk=lic.pk).exists()
        assert selectors.license_list(tenant, status="expired").filter(pk=lic.pk).exists()
        assert not selectors.license_list(tenant, status="active").exists()


def test_r3_paid_on_feb_29_expires_march_1_of_the_next_year(tenant):
    paid = cst(2028, 2, 29, 15, 30)
    [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=paid)
    assert lic.last_service_date == dt.date(2029, 2, 28)
    assert lic.expires_at == cst(2029, 3, 1, 0, 0)
    assert lic.status_at(cst(2029, 2, 28, 23, 59, 59)) == License.Status.ACTIVE
    assert lic.status_at(cst(2029, 3, 1)) == License.Status.EXPIRED


def test_r3_license_is_not_valid_before_payment(tenant):
    paid = cst(2026, 3, 15, 10, 0)
    [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=paid)
    assert not lic.is_valid_at(paid - dt.timedelta(seconds=1))
    assert lic.is_valid_at(paid)


def test_r5_refunded_license_never_counts(tenant):
    [lic] = licenses_issue(tenant=tenant, quantity=1, years=1, paid_at=cst(2026, 1, 1))
    License.objects.filter(pk=lic.pk).update(status=License.Status.REFUNDED)
    lic.refresh_from_db()
    at = cst(2026, 6, 1)
    assert lic.status_at(at) == License.Status.REFUNDED
    assert not lic.is_valid_at(at)
    assert not License.objects.valid_at(at).exists()
    assert list(License.objects.with_status_at("refunded", at)) == [lic]
    assert not License.objects.with_status_at("active", at).exists()


def test_issue_is_bulk_and_audited(tenant, django_assert_max_num_queries):
    paid = cst(2026, 5, 1, 9, 0)
    with django_assert_max_num_queries(8):
        licenses = licenses_issue(tenant=tenant, quantity=250, years=2, paid_at=paid)
    assert len(licenses) == 250
    assert all(lic.pk for lic in licenses)
    assert License.objects.filter(tenant=tenant, expires_at=cst(2028, 5, 2)).count() == 250
    (issued,) = AuditEvent.objects.filter(tenant=tenant, action="license.issued")
    assert issued.data["ids"] == [lic.pk for lic in licenses]
    assert issued.data["count"] == 250


@pytest.mark.parametrize(
    ("quantity", "years", "field"),
    [
        (0, 1, "quantity"),
        (-3, 1, "quantity"),
        (True, 1, "quantity"),
        ("2", 1, "quantity"),
        (1, 0, "years"),
        (1, 11, "years"),
        (1, 1.5, "years"),
    ],
)
def test_issue_rejects_bad_input_and_changes_nothing(tenant, quantity, years, field):
    with pytest.raises(InvalidInput) as exc:
        licenses_issue(tenant=tenant, quantity=quantity, years=years, paid_at=cst(2026, 1, 1))
    assert field in exc.value.errors
    assert License.objects.count() == 0
    assert AuditEvent.objects.count() == 0
