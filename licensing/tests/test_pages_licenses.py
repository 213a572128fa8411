"""The license list: status computed at read time (R5), last service date and days left in
Asia/Shanghai dates (R3, R11, R12), filters, pagination, and binding / unbinding one license
(R7) with the service's 409 refusals shown as messages."""

import datetime as dt
import re

import pytest
import time_machine
from django.utils import timezone

from console.models import AuditEvent, Tenant
from console.tests.factories import DeviceFactory, LicenseFactory
from console.timeutils import BUSINESS_TZ
from licensing import services
from licensing.models import License

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def cst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


def row(html: str, lic) -> str:
    match = re.search(rf'<tr data-license="{lic.pk}"[^>]*>(.*?)</tr>', html, re.S)
    assert match, f"no row for L-{lic.pk}"
    return match.group(1)


def listed(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'<tr data-license="(\d+)"', html)}


def expired_license(tenant, **kwargs):
    now = timezone.now()
    return LicenseFactory(
        tenant=tenant,
        starts_at=now - dt.timedelta(days=400),
        expires_at=now - dt.timedelta(minutes=1),
        **kwargs,
    )


# --- what the list shows ----------------------------------------------------------------------


def test_the_list_shows_status_dates_and_days_left(owner, tenant, alice):
    """R3: paid 2026-03-15 10:00 CST for a year → last service date 2027-03-15, expires
    2027-03-16 00:00 CST. On 2027-03-15 (the last day of service) one day is left (R11)."""
    device = DeviceFactory(tenant=tenant, serial="truck01")
    [lic] = services.licenses_issue(
        tenant=tenant, quantity=1, years=1, paid_at=cst(2026, 3, 15, 10)
    )
    services.license_bind(tenant=tenant, license=lic, device=device, at=cst(2026, 3, 15, 11))
    with time_machine.travel(cst(2026, 3, 16, 9), tick=False):
        html = owner.get("/licenses/").content.decode()
    line = row(html, lic)
    assert f"L-{lic.pk}" in line
    assert "Active" in line
    assert "truck01" in line
    assert "2026-03-15 10:00" in line  # starts, shown in Asia/Shanghai
    assert "2027-03-16 00:00" in line  # expires
    assert "2027-03-15" in line  # last service date
    assert "365 days left" in line  # days to the expiry date 2027-03-16
    with time_machine.travel(cst(2027, 3, 15, 23, 59), tick=False):
        owner.force_login(alice)  # a year on, the first session has expired
        line = row(owner.get("/licenses/").content.decode(), lic)
    assert "1 day left" in line and "urgency-urgent" in line and "Active" in line


def test_a_license_past_its_expiry_is_expired_before_any_job_runs(owner, tenant):
    """R5: the stored status still says active; the page computes it from expires_at."""
    lic = expired_license(tenant)
    assert lic.status == License.Status.ACTIVE
    line = row(owner.get("/licenses/").content.decode(), lic)
    assert "badge-expired" in line and "Expired" in line
    assert "—" in line  # no days left


def test_refunded_licenses_are_shown_refunded(owner, tenant):
    lic = LicenseFactory(tenant=tenant, status=License.Status.REFUNDED)
    assert "Refunded" in row(owner.get("/licenses/").content.decode(), lic)


def test_another_tenants_licenses_are_not_listed(owner, tenant, other_tenant):
    mine = LicenseFactory(tenant=tenant)
    LicenseFactory(tenant=other_tenant)
    assert listed(owner.get("/licenses/").content.decode()) == {mine.pk}


# --- filters and pages ------------------------------------------------------------------------


def test_filter_by_status_at_read_time(owner, tenant):
    active = LicenseFactory(tenant=tenant)
    expired = expired_license(tenant)
    refunded = LicenseFactory(tenant=tenant, status=License.Status.REFUNDED)
    assert listed(owner.get("/licenses/?status=active").content.decode()) == {active.pk}
    assert listed(owner.get("/licenses/?status=expired").content.decode()) == {expired.pk}
    assert listed(owner.get("/licenses/?status=refunded").content.decode()) == {refunded.pk}
    assert len(listed(owner.get("/licenses/?status=").content.decode())) == 3


def test_filter_by_device_and_unbound(owner, tenant):
    truck, crane = DeviceFactory(tenant=tenant), DeviceFactory(tenant=tenant)
    on_truck = LicenseFactory(tenant=tenant, device=truck)
    LicenseFactory(tenant=tenant, device=crane)
    free = LicenseFactory(tenant=tenant)
    assert listed(owner.get(f"/licenses/?device={truck.pk}").content.decode()) == {on_truck.pk}
    assert listed(owner.get("/licenses/?device=none").content.decode()) == {free.pk}


@pytest.mark.parametrize(
    "query", ["status=bogus", "device=abc", "device=999999", "device=" + "9" * 30]
)
def test_a_bad_filter_is_an_error_not_a_500(owner, tenant, query):
    LicenseFactory(tenant=tenant)
    response = owner.get(f"/licenses/?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Select a valid choice" in html
    assert listed(html) == set()


def test_another_tenants_device_is_not_a_filter(owner, tenant, other_tenant):
    theirs = DeviceFactory(tenant=other_tenant)
    LicenseFactory(tenant=other_tenant, device=theirs)
    html = owner.get(f"/licenses/?device={theirs.pk}").content.decode()
    assert "Select a valid choice" in html
    assert listed(html) == set()


def test_it_paginates_by_fifty(owner, tenant):
    LicenseFactory.create_batch(51, tenant=tenant)
    first = owner.get("/licenses/").content.decode()
    assert len(listed(first)) == 50
    assert "Page 1 of 2" in first
    second = owner.get("/licenses/?page=2").content.decode()
    assert len(listed(second)) == 1
    assert len(listed(owner.get("/licenses/?page=nope").content.decode())) == 50
    assert len(listed(owner.get("/licenses/?page=99").content.decode())) == 1


# --- bind and unbind one license (R7) ---------------------------------------------------------


def test_bind_and_unbind_from_the_list(owner, tenant, alice):
    device = DeviceFactory(tenant=tenant, serial="truck01")
    lic = LicenseFactory(tenant=tenant)
    response = owner.post(
        f"/licenses/{lic.pk}/bind/", {"device": device.pk, "next": "/licenses/?status=active"}
    )
    assert response.status_code == 302
    assert response.url == "/licenses/?status=active"
    lic.refresh_from_db()
    assert lic.device == device
    response = owner.post(f"/licenses/{lic.pk}/unbind/", {"confirmed": "1"}, follow=True)
    assert f"L-{lic.pk} is unbound." in response.content.decode()
    lic.refresh_from_db()
    assert lic.device is None
    actions = AuditEvent.objects.filter(actor=alice).values_list("action", flat=True)
    assert sorted(actions) == ["license.bound", "license.unbound"]


def test_binding_an_expired_license_is_refused_with_a_message(owner, tenant):
    device = DeviceFactory(tenant=tenant)
    lic = expired_license(tenant)
    response = owner.post(f"/licenses/{lic.pk}/bind/", {"device": device.pk}, follow=True)
    assert "An expired license cannot be bound." in response.content.decode()
    lic.refresh_from_db()
    assert lic.device is None


def test_binding_a_license_bound_elsewhere_is_refused_with_a_message(owner, tenant):
    truck, crane = DeviceFactory(tenant=tenant), DeviceFactory(tenant=tenant)
    lic = LicenseFactory(tenant=tenant, device=truck)
    response = owner.post(f"/licenses/{lic.pk}/bind/", {"device": crane.pk}, follow=True)
    assert "bound to another device; unbind it first" in response.content.decode()
    lic.refresh_from_db()
    assert lic.device == truck


def test_binding_a_refunded_license_is_refused_with_a_message(owner, tenant):
    device = DeviceFactory(tenant=tenant)
    lic = LicenseFactory(tenant=tenant, status=License.Status.REFUNDED)
    response = owner.post(f"/licenses/{lic.pk}/bind/", {"device": device.pk}, follow=True)
    assert "A refunded license cannot be bound." in response.content.decode()


@pytest.mark.parametrize("device", ["", "abc", "999999", "9" * 30])
def test_binding_to_a_bad_device_is_refused(owner, tenant, device):
    lic = LicenseFactory(tenant=tenant)
    response = owner.post(f"/licenses/{lic.pk}/bind/", {"device": device}, follow=True)
    assert response.status_code == 200
    assert 'class="message message-error"' in response.content.decode()
    lic.refresh_from_db()
    assert lic.device is None


def test_binding_to_another_tenants_device_is_refused(owner, tenant, other_tenant):
    lic = LicenseFactory(tenant=tenant)
    theirs = DeviceFactory(tenant=other_tenant)
    response = owner.post(f"/licenses/{lic.pk}/bind/", {"device": theirs.pk}, follow=True)
    assert "No such device in your organisation." in response.content.decode()
    lic.refresh_from_db()
    assert lic.device is None


def test_next_must_stay_on_this_site(owner, tenant):
    lic = LicenseFactory(tenant=tenant)
    response = owner.post(
        f"/licenses/{lic.pk}/unbind/", {"next": "https://evil.example/", "confirmed": "1"}
    )
    assert response.url == "/licenses/"


# --- read-only members and tenancy ------------------------------------------------------------


def test_viewer_sees_licenses_without_forms_and_cannot_bind(viewer, tenant):
    device = DeviceFactory(tenant=tenant)
    lic = LicenseFactory(tenant=tenant)
    html = viewer.get("/licenses/").content.decode()
    assert lic.pk in listed(html)
    assert 'id="renew-form"' not in html and "/bind/" not in html
    assert viewer.post(f"/licenses/{lic.pk}/bind/", {"device": device.pk}).status_code == 403
    bound = LicenseFactory(tenant=tenant, device=device)
    assert viewer.post(f"/licenses/{bound.pk}/unbind/").status_code == 403
    lic.refresh_from_db()
    bound.refresh_from_db()
    assert lic.device is None and bound.device == device


def test_a_suspended_tenant_cannot_bind(owner, tenant):
    device = DeviceFactory(tenant=tenant)
    lic = LicenseFactory(tenant=tenant)
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    assert owner.post(f"/licenses/{lic.pk}/bind/", {"device": device.pk}).status_code == 403
    lic.refresh_from_db()
    assert lic.device is None


def test_it_validates_ownership(owner, tenant, other_tenant):
    mine = DeviceFactory(tenant=tenant)
    theirs = LicenseFactory(tenant=other_tenant, device=DeviceFactory(tenant=other_tenant))
    assert owner.post(f"/licenses/{theirs.pk}/bind/", {"device": mine.pk}).status_code == 404
    assert owner.post(f"/licenses/{theirs.pk}/unbind/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.device is not None and theirs.device != mine


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/licenses/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")
