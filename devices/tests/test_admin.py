"""Django admin for devices, cameras, cockpits and control sessions: pages answer with
search and filters, writes go through devices.services (validated and audited)."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from console.models import AuditEvent
from console.tests.factories import CameraFactory, CockpitFactory, DeviceFactory
from devices.models import Camera, ControlSession, FieldDevice, RemoteCockpit

pytestmark = pytest.mark.django_db


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def inline_management(prefix="cameras", initial=0, total=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "8",
    }


def test_device_changelist_shows_the_tenant_with_search_and_filter(
    staff_client, tenant, other_tenant, django_assert_max_num_queries
):
    device = DeviceFactory(tenant=tenant, serial="truck_07", name="Haul truck")
    for _ in range(3):
        CameraFactory(device=device)
    for i in range(5):
        DeviceFactory(tenant=other_tenant, serial=f"other_{i}")
    cl = staff_client.get(
        url(FieldDevice, "changelist"), {"q": "truck", "tenant__id__exact": tenant.pk}
    )
    assert cl.status_code == 200
    page = cl.content.decode()
    assert "truck_07" in page and "Acme Mining" in page
    assert "other_0" not in page
    # list_select_related and the prefetch keep the list a fixed number of queries.
    with django_assert_max_num_queries(12):
        assert staff_client.get(url(FieldDevice, "changelist")).status_code == 200


def test_device_change_page_with_cameras_inline(staff_client, tenant):
    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device, name="front cam")
    page = staff_client.get(url(FieldDevice, "change", device.pk))
    assert page.status_code == 200
    assert "front cam" in page.content.decode()


def test_device_added_in_admin_goes_through_the_service(staff_client, staff, tenant):
    data = {"tenant": tenant.pk, "serial": "rig_1", "name": "Rig", "max_concurrent_streams": "2"}
    data.update(inline_management(total=2))
    data.update(
        {
            "cameras-0-name": "a",
            "cameras-0-width": "1280",
            "cameras-0-height": "720",
            "cameras-0-enabled": "on",
            "cameras-0-priority": "3",
            "cameras-1-name": "b",
            "cameras-1-width": "640",
            "cameras-1-height": "480",
            "cameras-1-enabled": "on",
            "cameras-1-priority": "0",
        }
    )
    response = staff_client.post(url(FieldDevice, "add"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    device = FieldDevice.objects.get(serial="rig_1")
    assert device.max_concurrent_streams == 2
    assert sorted(device.cameras.values_list("slot", "width")) == [(1, 1280), (2, 640)]
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor"))
    assert actions == [
        ("device.created", staff.pk),
        ("camera.created", staff.pk),
        ("camera.created", staff.pk),
    ]


@pytest.mark.parametrize(
    ("serial", "width", "height"),
    [("Bad-Serial", "640", "480"), ("ok_1", "7681", "10"), ("ok_2", "7680", "4321")],
)
def test_device_admin_bad_input_is_a_form_error_and_changes_nothing(
    staff_client, tenant, serial, width, height
):
    data = {"tenant": tenant.pk, "serial": serial, "name": ""}
    data.update(inline_management(total=1))
    data.update({"cameras-0-width": width, "cameras-0-height": height, "cameras-0-priority": "0"})
    response = staff_client.post(url(FieldDevice, "add"), data)
    assert response.status_code == 200
    assert FieldDevice.objects.count() == 0
    assert Camera.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_device_admin_duplicate_serial_is_a_form_error(staff_client, tenant):
    DeviceFactory(tenant=tenant, serial="dup")
    data = {"tenant": tenant.pk, "serial": "dup", "name": ""}
    data.update(inline_management())
    assert staff_client.post(url(FieldDevice, "add"), data).status_code == 200
    assert FieldDevice.objects.count() == 1


def test_device_admin_refuses_a_ninth_camera(staff_client, tenant):
    device = DeviceFactory(tenant=tenant)
    cams = [CameraFactory(device=device) for _ in range(8)]
    data = {"serial": device.serial, "name": device.name, "max_concurrent_streams": ""}
    data.update(inline_management(initial=8, total=9))
    for i, cam in enumerate(cams):
        data.update(
            {
                f"cameras-{i}-id": cam.pk,
                f"cameras-{i}-device": device.pk,
                f"cameras-{i}-name": cam.name,
                f"cameras-{i}-width": cam.width,
                f"cameras-{i}-height": cam.height,
                f"cameras-{i}-enabled": "on",
                f"cameras-{i}-priority": "0",
            }
        )
    data.update({"cameras-8-width": "640", "cameras-8-height": "480", "cameras-8-priority": "0"})
    response = staff_client.post(url(FieldDevice, "change", device.pk), data)
    assert response.status_code == 200
    assert Camera.objects.filter(device=device).count() == 8


def test_device_edit_in_admin_is_audited_and_tenant_is_read_only(
    staff_client, tenant, other_tenant
):
    device = DeviceFactory(tenant=tenant, serial="old")
    data = {"tenant": other_tenant.pk, "serial": "new_serial", "name": "N"}
    data.update(inline_management())
    response = staff_client.post(url(FieldDevice, "change", device.pk), data)
    assert response.status_code == 302
    device.refresh_from_db()
    assert (device.serial, device.tenant_id) == ("new_serial", tenant.pk)
    event = AuditEvent.objects.get(action="device.updated")
    assert event.data["serial"] == "new_serial"


def test_device_without_licenses_is_deleted_from_the_admin(staff_client, tenant):
    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device)
    assert staff_client.get(url(FieldDevice, "delete", device.pk)).status_code == 200
    response = staff_client.post(url(FieldDevice, "delete", device.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not FieldDevice.objects.exists()
    assert AuditEvent.objects.filter(action="device.deleted").count() == 1


def test_camera_admin_pages_and_service_writes(staff_client, tenant):
    device = DeviceFactory(tenant=tenant, serial="cam_host")
    camera = CameraFactory(device=device, name="rear")
    cl = staff_client.get(url(Camera, "changelist"), {"q": "cam_host", "enabled__exact": "1"})
    assert cl.status_code == 200
    assert "rear" in cl.content.decode()
    assert staff_client.get(url(Camera, "change", camera.pk)).status_code == 200

    response = staff_client.post(
        url(Camera, "add"),
        {"device": device.pk, "name": "side", "width": "640", "height": "480", "priority": "2"},
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    side = Camera.objects.get(name="side")
    assert side.slot == 2
    response = staff_client.post(
        url(Camera, "change", side.pk),
        {"name": "side", "width": "800", "height": "600", "priority": "2", "enabled": "on"},
    )
    assert response.status_code == 302
    side.refresh_from_db()
    assert side.width == 800
    staff_client.post(url(Camera, "delete", side.pk), {"post": "yes"})
    assert not Camera.objects.filter(pk=side.pk).exists()
    assert list(AuditEvent.objects.order_by("id").values_list("action", flat=True)) == [
        "camera.created",
        "camera.updated",
        "camera.deleted",
    ]


def test_camera_admin_refuses_a_ninth_camera_and_bad_sizes(staff_client, tenant):
    device = DeviceFactory(tenant=tenant)
    for _ in range(8):
        CameraFactory(device=device)
    response = staff_client.post(
        url(Camera, "add"), {"device": device.pk, "width": "640", "height": "480", "priority": "0"}
    )
    assert response.status_code == 200
    other = DeviceFactory(tenant=tenant)
    response = staff_client.post(
        url(Camera, "add"), {"device": other.pk, "width": "7681", "height": "480", "priority": "0"}
    )
    assert response.status_code == 200
    assert Camera.objects.count() == 8


def test_cockpit_admin(staff_client, tenant):
    cockpit = CockpitFactory(tenant=tenant, name="Bay 3")
    cl = staff_client.get(
        url(RemoteCockpit, "changelist"), {"q": "bay", "tenant__id__exact": tenant.pk}
    )
    assert "Bay 3" in cl.content.decode()
    assert staff_client.get(url(RemoteCockpit, "change", cockpit.pk)).status_code == 200
    response = staff_client.post(url(RemoteCockpit, "add"), {"tenant": tenant.pk, "name": "Bay 4"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="cockpit.created").count() == 1


def test_control_session_admin_is_read_mostly(staff_client, tenant, staff):
    device = DeviceFactory(tenant=tenant, serial="dozer")
    cockpit = CockpitFactory(tenant=tenant)
    now = timezone.now()
    session = ControlSession.objects.create(
        device=device, cockpit=cockpit, started_at=now, lease_expires_at=now + dt.timedelta(30)
    )
    cl = staff_client.get(
        url(ControlSession, "changelist"), {"q": "dozer", "state": "live", "end_reason": ""}
    )
    assert cl.status_code == 200 and "dozer" in cl.content.decode()
    assert (
        staff_client.get(url(ControlSession, "changelist"), {"q": str(session.pk)}).status_code
        == 200
    )
    assert staff_client.get(url(ControlSession, "change", session.pk)).status_code == 200
    assert staff_client.get(url(ControlSession, "add")).status_code == 403
    assert staff_client.get(url(ControlSession, "delete", session.pk)).status_code == 403
    staff_client.post(
        url(ControlSession, "changelist"),
        {"action": "end_sessions", "_selected_action": [session.pk]},
    )
    session.refresh_from_db()
    assert session.end_reason == ControlSession.EndReason.RELEASED
    assert AuditEvent.objects.get(action="control.released").actor == staff


def test_import_jobs_are_read_only_in_the_admin(staff_client, tenant, alice):
    from devices.models import ImportJob

    job = ImportJob.objects.create(
        tenant=tenant,
        created_by=alice,
        file_name="fleet-north.csv",
        file_format=ImportJob.Format.CSV,
        content=b"serial\nnorth_01\n",
        status=ImportJob.Status.INVALID,
        rows_total=1,
        rows_checked=1,
        error_count=1,
        errors=[{"line": 2, "column": "serial", "message": "bad"}],
    )
    page = staff_client.get(url(ImportJob, "changelist"), {"q": "acme"})
    assert page.status_code == 200 and "fleet-north.csv" in page.content.decode()
    assert staff_client.get(url(ImportJob, "changelist"), {"status": "invalid"}).status_code == 200
    detail = staff_client.get(url(ImportJob, "change", job.pk))
    assert detail.status_code == 200
    assert "north_01" not in detail.content.decode()  # the file's bytes are not shown
    assert staff_client.get(url(ImportJob, "add")).status_code == 403
    assert staff_client.post(url(ImportJob, "delete", job.pk), {"post": "yes"}).status_code == 403
    assert ImportJob.objects.filter(pk=job.pk).exists()


def test_import_job_admin_leaves_the_files_bytes_unread(staff_client, tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import translation

    from devices.models import ImportJob

    job = ImportJob.objects.create(
        tenant=tenant, file_name="fleet.csv", file_format="csv", content=b"x" * 1000
    )
    for page in (url(ImportJob, "changelist"), url(ImportJob, "change", job.pk)):
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(page).status_code == 200
        selects = [q["sql"] for q in queries.captured_queries if '"devices_importjob"' in q["sql"]]
        assert selects and not [sql for sql in selects if '"content"' in sql], selects
    labels = {
        name: ImportJob._meta.get_field(name).verbose_name
        for name in ("errors", "preview", "language")
    }
    with translation.override("en"):
        english = {name: str(label) for name, label in labels.items()}
    assert english == {
        "errors": "first errors",
        "preview": "first rows",
        "language": "language",
    }
    with translation.override("zh-hans"):
        assert {str(label) for label in labels.values()} == {"前几个错误", "前几行", "语言"}
