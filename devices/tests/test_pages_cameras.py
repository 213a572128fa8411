"""Adding, editing and deleting a device's cameras from its pages: resolution presets, the R1
size limits (each side ≤ 7680, ≤ 7680 × 4320 pixels) and the 8-camera cap as clear form
errors that change nothing; viewers read-only (403); another tenant's ids → 404."""

import pytest

from console.models import AuditEvent
from console.tests.factories import CameraFactory, DeviceFactory
from devices.models import Camera

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant, serial="truck01")


def add(client, device, **fields):
    data = {"preset": "custom", "name": "", "width": "", "height": "", "priority": "0"}
    data.update({"enabled": "on"})
    data.update({k: str(v) for k, v in fields.items()})
    if data.get("enabled") == "False":
        del data["enabled"]
    return client.post(f"/devices/{device.pk}/cameras/add/", data)


# --- adding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "size"),
    [
        ("720p", (1280, 720)),
        ("1080p", (1920, 1080)),
        ("1440p", (2560, 1440)),
        ("4k", (3840, 2160)),
        ("vga", (640, 480)),
    ],
)
def test_a_preset_sets_the_size(owner, device, preset, size):
    response = add(owner, device, preset=preset, name="front")
    assert response.status_code == 302
    assert response.url == f"/devices/{device.pk}/"
    camera = Camera.objects.get(device=device)
    assert (camera.width, camera.height) == size
    assert camera.name == "front" and camera.enabled


def test_the_preset_wins_over_sizes_left_in_the_boxes(owner, device):
    """Without JavaScript the boxes may hold older values; the picked preset is meant."""
    add(owner, device, preset="vga", width=9999, height="x")
    camera = Camera.objects.get(device=device)
    assert (camera.width, camera.height) == (640, 480)


def test_a_custom_size(owner, device, alice):
    response = add(owner, device, width=1472, height=936, priority=5, enabled=False)
    assert response.status_code == 302
    camera = Camera.objects.get(device=device)
    assert (camera.width, camera.height, camera.priority, camera.enabled) == (1472, 936, 5, False)
    assert AuditEvent.objects.get(action="camera.created").actor == alice


def test_the_largest_camera_is_accepted(owner, device):
    assert add(owner, device, width=7680, height=4320).status_code == 302


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        (0, 720, "greater than or equal to 1"),
        (7681, 720, "less than or equal to 7680"),
        (1280, 7681, "less than or equal to 7680"),
        (8000, 5000, "less than or equal to 7680"),
        (7680, 4321, "at most 7680 × 4320 (33,177,600) pixels"),
        (-5, 720, "greater than or equal to 1"),
        ("", "", "Enter the width and height, or pick a preset."),
        (1280, "", "Enter the width and height, or pick a preset."),
        ("wide", 720, "Enter a whole number."),
        (1280.5, 720, "Enter a whole number."),
    ],
)
def test_a_bad_size_is_a_form_error_and_adds_nothing(owner, device, width, height, message):
    response = add(owner, device, width=width, height=height)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'name="width"' in html  # the form is shown again
    assert not Camera.objects.exists()


def test_a_bad_priority_is_a_form_error(owner, device):
    response = add(owner, device, preset="720p", priority=5000)
    assert response.status_code == 200
    assert not Camera.objects.exists()


def test_a_ninth_camera_is_refused(owner, device):
    """R1: a field device carries at most 8 streams."""
    CameraFactory.create_batch(8, device=device)
    response = add(owner, device, preset="720p")
    assert response.status_code == 200
    assert "This device already has 8 cameras." in response.content.decode()
    assert device.cameras.count() == 8


def test_the_device_page_offers_no_add_form_once_full(owner, device):
    CameraFactory.create_batch(7, device=device)
    assert 'id="add-camera"' in owner.get(f"/devices/{device.pk}/").content.decode()
    CameraFactory(device=device)
    html = owner.get(f"/devices/{device.pk}/").content.decode()
    assert 'id="add-camera"' not in html
    assert "the most one device carries" in html


def test_the_add_page_alone_shows_a_blank_form(owner, device):
    response = owner.get(f"/devices/{device.pk}/cameras/add/")
    assert response.status_code == 200
    assert "data-resolution-presets" in response.content.decode()


# --- editing and deleting ---------------------------------------------------------------------


def test_owner_edits_a_camera(owner, device):
    camera = CameraFactory(device=device, width=1280, height=720)
    page = owner.get(f"/devices/{device.pk}/cameras/{camera.pk}/edit/").content.decode()
    assert '<option value="720p" selected>' in page
    response = owner.post(
        f"/devices/{device.pk}/cameras/{camera.pk}/edit/",
        {"preset": "custom", "name": "rear", "width": "800", "height": "600", "priority": "2"},
    )
    assert response.status_code == 302
    camera.refresh_from_db()
    assert (camera.name, camera.width, camera.height, camera.priority) == ("rear", 800, 600, 2)
    assert camera.enabled is False  # the box was not ticked


def test_editing_with_a_bad_size_changes_nothing(owner, device):
    camera = CameraFactory(device=device, width=1280, height=720)
    response = owner.post(
        f"/devices/{device.pk}/cameras/{camera.pk}/edit/",
        {"preset": "custom", "width": "8000", "height": "5000", "priority": "0"},
    )
    assert response.status_code == 200
    camera.refresh_from_db()
    assert (camera.width, camera.height) == (1280, 720)


def test_owner_deletes_a_camera(owner, device):
    camera = CameraFactory(device=device)
    response = owner.post(f"/devices/{device.pk}/cameras/{camera.pk}/delete/")
    assert response.status_code == 302
    assert not Camera.objects.exists()


def test_deleting_is_a_post(owner, device):
    camera = CameraFactory(device=device)
    assert owner.get(f"/devices/{device.pk}/cameras/{camera.pk}/delete/").status_code == 405
    assert Camera.objects.exists()


# --- read-only members and tenancy ------------------------------------------------------------


def test_viewer_cannot_change_cameras(viewer, device):
    camera = CameraFactory(device=device, width=1280, height=720)
    assert add(viewer, device, preset="vga").status_code == 403
    edit = {"preset": "vga", "priority": "0"}
    url = f"/devices/{device.pk}/cameras/{camera.pk}"
    assert viewer.post(f"{url}/edit/", edit).status_code == 403
    assert viewer.post(f"{url}/delete/").status_code == 403
    camera.refresh_from_db()
    assert (camera.width, Camera.objects.count()) == (1280, 1)
    html = viewer.get(f"/devices/{device.pk}/").content.decode()
    assert 'id="add-camera"' not in html
    assert "/delete/" not in html


def test_it_validates_ownership(owner, other_tenant, device):
    theirs = DeviceFactory(tenant=other_tenant)
    their_camera = CameraFactory(device=theirs, width=1280, height=720)
    assert add(owner, theirs, preset="vga").status_code == 404
    url = f"/devices/{theirs.pk}/cameras/{their_camera.pk}"
    assert owner.get(f"{url}/edit/").status_code == 404
    assert owner.post(f"{url}/delete/").status_code == 404
    # Their camera under one of our device ids is not found either.
    url = f"/devices/{device.pk}/cameras/{their_camera.pk}"
    assert owner.post(f"{url}/edit/", {"preset": "vga", "priority": "0"}).status_code == 404
    assert Camera.objects.get().width == 1280
    assert theirs.cameras.count() == 1
