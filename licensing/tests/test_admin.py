"""Django admin for licenses and the device delete that unbinds (R7): status shown as
computed at read time (R5), binding through the services, dates read-only."""

import datetime as dt

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from console.models import AuditEvent
from console.tests.factories import CameraFactory, DeviceFactory, LicenseFactory
from devices.models import FieldDevice
from licensing.admin import LicensedDeviceAdmin
from licensing.models import License

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def expired(tenant, **kw):
    now = timezone.now()
    return LicenseFactory(
        tenant=tenant,
        starts_at=now - dt.timedelta(days=400),
        expires_at=now - dt.timedelta(days=1),
        **kw,
    )


def test_device_admin_is_the_unbinding_one():
    assert isinstance(admin.site._registry[FieldDevice], LicensedDeviceAdmin)


def test_deleting_a_device_in_the_admin_unbinds_its_licenses(staff_client, staff, tenant):
    device = DeviceFactory(tenant=tenant, serial="gone")
    CameraFactory(device=device)
    lics = [LicenseFactory(tenant=tenant, device=device) for _ in range(2)]
    confirm = staff_client.get(url(FieldDevice, "delete", device.pk))
    assert confirm.status_code == 200
    page = confirm.content.decode()
    # Not blocked by the PROTECT foreign key: the licenses are listed as to be unbound.
    assert 'name="post"' in page
    assert str(lics[0]) in page

    response = staff_client.post(url(FieldDevice, "delete", device.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not FieldDevice.objects.filter(pk=device.pk).exists()
    assert License.objects.filter(device__isnull=True).count() == 2
    unbound = AuditEvent.objects.filter(action="license.unbound", actor=staff)
    assert {e.target_id for e in unbound} == {str(lic.pk) for lic in lics}
    assert AuditEvent.objects.filter(action="device.deleted", actor=staff).count() == 1


def test_bulk_delete_action_unbinds_too(staff_client, tenant):
    devices = [DeviceFactory(tenant=tenant) for _ in range(2)]
    for d in devices:
        LicenseFactory(tenant=tenant, device=d)
    ids = [d.pk for d in devices]
    confirm = staff_client.post(
        url(FieldDevice, "changelist"), {"action": "delete_selected", "_selected_action": ids}
    )
    assert confirm.status_code == 200
    staff_client.post(
        url(FieldDevice, "changelist"),
        {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
    )
    assert not FieldDevice.objects.exists()
    assert AuditEvent.objects.filter(action="license.unbound").count() == 2


def test_device_list_shows_valid_license_counts(staff_client, tenant):
    device = DeviceFactory(tenant=tenant, serial="counted")
    LicenseFactory(tenant=tenant, device=device)
    expired(tenant, device=device)
    cl = staff_client.get(url(FieldDevice, "changelist"), {"q": "counted", "o": "7"})
    assert cl.status_code == 200
    assert cl.context["cl"].result_list[0].lic_valid == 1


def test_license_changelist_status_computed_now_search_and_filters(
    staff_client, tenant, other_tenant
):
    live = LicenseFactory(tenant=tenant)
    dead = expired(tenant)  # stored "active", expired by its date (no job ran)
    theirs = LicenseFactory(tenant=other_tenant)

    def listed(params):
        response = staff_client.get(url(License, "changelist"), params)
        assert response.status_code == 200
        return {obj.pk for obj in response.context["cl"].result_list}

    assert listed({"status_now": "expired"}) == {dead.pk}
    assert listed({"status_now": "active"}) == {live.pk, theirs.pk}
    assert listed({"status__exact": "active"}) == {live.pk, dead.pk, theirs.pk}
    assert listed({"tenant__id__exact": other_tenant.pk}) == {theirs.pk}
    assert listed({"q": f"L-{dead.pk}"}) == {dead.pk}
    assert listed({"q": str(live.pk)}) >= {live.pk}
    assert listed({"q": "other"}) == {theirs.pk}
    assert listed({"bound": "yes"}) == set()
    page = staff_client.get(url(License, "changelist"), {"q": f"L-{dead.pk}"}).content.decode()
    assert "Expired" in page or "已过期" in page or "过期" in page


def test_license_change_page_and_no_add_or_delete(staff_client, tenant):
    lic = LicenseFactory(tenant=tenant)
    assert staff_client.get(url(License, "change", lic.pk)).status_code == 200
    assert staff_client.get(url(License, "add")).status_code == 403
    assert staff_client.get(url(License, "delete", lic.pk)).status_code == 403


def test_binding_in_the_admin_goes_through_the_service_and_dates_stay(staff_client, staff, tenant):
    lic = LicenseFactory(tenant=tenant)
    expires = lic.expires_at
    first, second = DeviceFactory(tenant=tenant), DeviceFactory(tenant=tenant)
    response = staff_client.post(
        url(License, "change", lic.pk),
        {"device": first.pk, "expires_at_0": "2099-01-01", "status": "refunded"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    lic.refresh_from_db()
    assert lic.device_id == first.pk
    assert lic.expires_at == expires
    assert lic.status == License.Status.ACTIVE
    # A move is an unbind then a bind, both audited.
    staff_client.post(url(License, "change", lic.pk), {"device": second.pk})
    lic.refresh_from_db()
    assert lic.device_id == second.pk
    actions = list(
        AuditEvent.objects.filter(target_id=str(lic.pk))
        .order_by("id")
        .values_list("action", "data", "actor")
    )
    assert actions == [
        ("license.bound", {"device": first.pk}, staff.pk),
        ("license.unbound", {"device": first.pk}, staff.pk),
        ("license.bound", {"device": second.pk}, staff.pk),
    ]


def test_admin_refuses_binding_expired_or_another_tenants_device(
    staff_client, tenant, other_tenant
):
    dead = expired(tenant)
    device = DeviceFactory(tenant=tenant)
    response = staff_client.post(url(License, "change", dead.pk), {"device": device.pk})
    assert response.status_code == 200  # the form, with its error
    live = LicenseFactory(tenant=tenant)
    theirs = DeviceFactory(tenant=other_tenant)
    response = staff_client.post(url(License, "change", live.pk), {"device": theirs.pk})
    assert response.status_code == 200
    assert License.objects.filter(device__isnull=False).count() == 0
    assert AuditEvent.objects.count() == 0


def test_unbind_action(staff_client, tenant):
    device = DeviceFactory(tenant=tenant)
    lics = [LicenseFactory(tenant=tenant, device=device) for _ in range(3)]
    staff_client.post(
        url(License, "changelist"),
        {"action": "unbind", "_selected_action": [lic.pk for lic in lics[:2]]},
    )
    assert list(License.objects.filter(device=device)) == [lics[2]]
    assert AuditEvent.objects.filter(action="license.unbound").count() == 2


def test_sent_reminders_are_read_only_in_the_admin(staff_client, tenant):
    from licensing.models import SentReminder

    reminder = SentReminder.objects.create(
        tenant=tenant, milestone=7, expiry_date=dt.date(2027, 3, 16), claim_token="t"
    )
    cl = staff_client.get(url(SentReminder, "changelist"), {"q": "acme", "milestone__exact": "7"})
    assert cl.status_code == 200
    assert [r.pk for r in cl.context["cl"].result_list] == [reminder.pk]
    assert staff_client.get(url(SentReminder, "change", reminder.pk)).status_code == 200
    assert staff_client.get(url(SentReminder, "add")).status_code == 403
    assert (
        staff_client.post(url(SentReminder, "delete", reminder.pk), {"post": "yes"}).status_code
        == 403
    )
