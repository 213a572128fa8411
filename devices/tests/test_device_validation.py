"""Bad input on devices, cameras and cockpits: a clear error (console.errors with field
errors) and nothing changed. R1 bounds: each side ≤ 7680, ≤ 7680 × 4320 in all, 8 cameras."""

import pytest
from django.db import IntegrityError, transaction

from console.errors import InvalidInput, NotFound
from console.models import AuditEvent
from console.tests.factories import CameraFactory, CockpitFactory, DeviceFactory
from devices import services
from devices.models import Camera, FieldDevice, RemoteCockpit

pytestmark = pytest.mark.django_db


def counts():
    return (
        FieldDevice.objects.count(),
        Camera.objects.count(),
        RemoteCockpit.objects.count(),
        AuditEvent.objects.count(),
    )


@pytest.mark.parametrize(
    "serial",
    [
        "Truck_01",  # uppercase
        "a" * 19,  # too long
        "",  # empty
        "truck-01",  # hyphen
        "truck 01",  # space
        " truck01",
        "truck01\n",  # a trailing newline slips past a "$" regex
        "trück",
        None,
    ],
)
def test_invalid_serials_are_refused(tenant, serial):
    before = counts()
    with pytest.raises(InvalidInput) as exc:
        services.device_create(tenant=tenant, serial=serial)
    assert "serial" in exc.value.errors
    assert exc.value.code == "INVALID"
    assert counts() == before


@pytest.mark.parametrize("serial", ["a", "a" * 18, "truck_01", "0_9"])
def test_valid_serials_are_accepted(tenant, serial):
    device = services.device_create(tenant=tenant, serial=serial)
    assert device.serial == serial


def test_serial_unique_per_tenant_only(tenant, other_tenant):
    services.device_create(tenant=tenant, serial="truck_01")
    before = counts()
    with pytest.raises(InvalidInput) as exc:
        services.device_create(tenant=tenant, serial="truck_01")
    assert "serial" in exc.value.errors
    assert counts() == before
    services.device_create(tenant=other_tenant, serial="truck_01")


def test_serial_rename_to_a_taken_one_is_refused(tenant):
    services.device_create(tenant=tenant, serial="a1")
    b = services.device_create(tenant=tenant, serial="b1")
    with pytest.raises(InvalidInput):
        services.device_update(tenant=tenant, device=b, serial="a1")
    b.refresh_from_db()
    assert b.serial == "b1"


def test_database_enforces_the_serial_format(tenant):
    with pytest.raises(IntegrityError), transaction.atomic():
        FieldDevice.objects.create(tenant=tenant, serial="Bad-Serial")
    with pytest.raises(IntegrityError), transaction.atomic():
        FieldDevice.objects.create(tenant=tenant, serial="bad\n")


@pytest.mark.parametrize("value", [0, 9, -1, "x"])
def test_max_concurrent_streams_is_1_to_8(tenant, value):
    before = counts()
    with pytest.raises(InvalidInput) as exc:
        services.device_create(tenant=tenant, serial="d1", max_concurrent_streams=value)
    assert "max_concurrent_streams" in exc.value.errors
    assert counts() == before


def test_unknown_device_field_is_refused(tenant):
    device = DeviceFactory(tenant=tenant)
    with pytest.raises(InvalidInput) as exc:
        services.device_update(tenant=tenant, device=device, tenant_id=99)
    assert "tenant_id" in exc.value.errors


@pytest.mark.parametrize(
    ("width", "height", "field"),
    [
        (0, 720, "width"),
        (1280, 0, "height"),
        (-1280, 720, "width"),
        (1280, -1, "height"),
        (7681, 100, "width"),  # a side over 7680
        (100, 7681, "height"),
        (7680, 4321, "width"),  # each side fine, total over 7680 × 4320
        (4321, 7680, "width"),
        ("wide", 720, "width"),
        (None, 720, "width"),
    ],
)
def test_bad_resolutions_are_refused(tenant, width, height, field):
    device = DeviceFactory(tenant=tenant)
    before = counts()
    with pytest.raises(InvalidInput) as exc:
        services.camera_create(tenant=tenant, device=device, width=width, height=height)
    assert field in exc.value.errors
    assert counts() == before


def test_largest_resolutions_are_accepted(tenant):
    device = DeviceFactory(tenant=tenant)
    services.camera_create(tenant=tenant, device=device, width=7680, height=4320)
    services.camera_create(tenant=tenant, device=device, width=4320, height=7680)
    services.camera_create(tenant=tenant, device=device, width=7680, height=1)


def test_database_enforces_camera_sizes(tenant):
    device = DeviceFactory(tenant=tenant)
    for w, h in [(0, 10), (7681, 10), (7680, 4321)]:
        with pytest.raises(IntegrityError), transaction.atomic():
            Camera.objects.create(device=device, slot=1, width=w, height=h)


def test_a_ninth_camera_is_refused(tenant):
    device = DeviceFactory(tenant=tenant)
    for _ in range(8):
        services.camera_create(tenant=tenant, device=device, width=640, height=480)
    before = counts()
    with pytest.raises(InvalidInput) as exc:
        services.camera_create(tenant=tenant, device=device, width=640, height=480)
    assert exc.value.code == "TOO_MANY_CAMERAS"
    assert "device" in exc.value.errors
    assert counts() == before


def test_database_caps_a_device_at_eight_cameras(tenant):
    device = DeviceFactory(tenant=tenant)
    with pytest.raises(IntegrityError), transaction.atomic():
        Camera.objects.create(device=device, slot=9, width=640, height=480)


def test_freed_slot_is_reused(tenant):
    device = DeviceFactory(tenant=tenant)
    cams = [
        services.camera_create(tenant=tenant, device=device, width=640, height=480)
        for _ in range(8)
    ]
    services.camera_delete(tenant=tenant, camera=cams[2])
    again = services.camera_create(tenant=tenant, device=device, width=320, height=240)
    assert again.slot == cams[2].slot


def test_camera_update_validates_and_changes_nothing_on_error(tenant):
    camera = CameraFactory(device=DeviceFactory(tenant=tenant), width=1280, height=720)
    before = counts()
    with pytest.raises(InvalidInput):
        services.camera_update(tenant=tenant, camera=camera, width=7681)
    with pytest.raises(InvalidInput):
        services.camera_update(tenant=tenant, camera=camera, priority=5000)
    with pytest.raises(InvalidInput):
        services.camera_update(tenant=tenant, camera=camera, slot=3)
    camera.refresh_from_db()
    assert (camera.width, camera.priority) == (1280, 0)
    assert counts() == before


def test_camera_on_another_tenants_device_is_refused(tenant, other_tenant):
    theirs = DeviceFactory(tenant=other_tenant)
    with pytest.raises(InvalidInput) as exc:
        services.camera_create(tenant=tenant, device=theirs, width=640, height=480)
    assert "device" in exc.value.errors
    assert Camera.objects.count() == 0


def test_another_tenants_objects_are_not_found(tenant, other_tenant):
    device = DeviceFactory(tenant=other_tenant)
    camera = CameraFactory(device=device)
    cockpit = CockpitFactory(tenant=other_tenant)
    before = counts()
    with pytest.raises(NotFound):
        services.device_update(tenant=tenant, device=device, name="mine now")
    with pytest.raises(NotFound):
        services.camera_update(tenant=tenant, camera=camera, name="mine")
    with pytest.raises(NotFound):
        services.camera_delete(tenant=tenant, camera=camera)
    with pytest.raises(NotFound):
        services.cockpit_update(tenant=tenant, cockpit=cockpit, name="mine")
    with pytest.raises(NotFound):
        services.cockpit_delete(tenant=tenant, cockpit=cockpit)
    assert counts() == before


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_cockpit_needs_a_name(tenant, name):
    with pytest.raises(InvalidInput) as exc:
        services.cockpit_create(tenant=tenant, name=name)
    assert "name" in exc.value.errors
    assert RemoteCockpit.objects.count() == 0


def test_changes_are_audited(tenant, alice):
    device = services.device_create(tenant=tenant, serial="d1", actor=alice)
    camera = services.camera_create(tenant=tenant, device=device, width=640, height=480)
    services.camera_update(tenant=tenant, camera=camera, priority=4)
    services.device_update(tenant=tenant, device=device, name="Loader")
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["device.created", "camera.created", "camera.updated", "device.updated"]
