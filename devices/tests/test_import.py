"""Bulk import of devices and cameras (devices.imports, /devices/import/): the file's format,
every row error with its line and column, the dry run, the all-or-nothing write, roles,
tenancy and suspension."""

import csv
import io
import time

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from console.models import AuditEvent, Membership
from console.services import tenant_set_status
from console.tests.factories import DeviceFactory, MembershipFactory, UserFactory
from devices import imports
from devices.models import Camera, FieldDevice, ImportJob

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

HEADER = list(imports.COLUMNS)
S = ImportJob.Status


def csv_file(rows, header=HEADER) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def xlsx_file(rows, header=HEADER) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def upload(client, capture, content: bytes, name="devices.csv"):
    """POST the file; the worker's check runs when the upload commits (eager tasks)."""
    with capture(execute=True):
        response = client.post(
            reverse("device-import"), {"file": SimpleUploadedFile(name, content)}
        )
    return response


def latest_job() -> ImportJob:
    return ImportJob.objects.order_by("-id").first()


def import_now(client, capture, job):
    """The Import button, then the confirmation page's button."""
    url = reverse("device-import-job", args=[job.pk])
    asked = client.post(url)
    assert asked.status_code == 200
    assert "confirmed" in asked.content.decode()
    with capture(execute=True):
        response = client.post(url, {"confirmed": "1"})
    assert response.status_code == 302
    job.refresh_from_db()
    return response


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


GOOD_ROWS = [
    ["truck_01", "Haul truck 1", "2", "front", "1920", "1080", "yes", "10"],
    ["truck_01", "Haul truck 1", "2", "rear", "1280", "720", "no", "-5"],
    ["truck_01", "Haul truck 1", "2", "", "640", "480", "", ""],
    ["crane_07", "Quay crane 7", "", "", "", "", "", ""],
]


# --- the happy path ----------------------------------------------------------------------------


def test_a_valid_csv_is_checked_then_imported_all_at_once(owner, capture, tenant, alice):
    response = upload(owner, capture, csv_file(GOOD_ROWS))
    job = latest_job()
    assert response.status_code == 302
    assert response["Location"] == reverse("device-import-job", args=[job.pk])
    assert job.status == S.READY, job.errors
    assert (job.rows_total, job.rows_checked) == (4, 4)
    assert (job.devices_count, job.cameras_count, job.error_count) == (2, 3, 0)
    assert FieldDevice.objects.count() == 0  # a dry run writes nothing

    html = owner.get(reverse("device-import-job", args=[job.pk])).content.decode()
    assert "Every row is valid. Importing creates 2 devices and 3 cameras." in html
    assert 'id="import-preview"' in html and "Quay crane 7" in html
    assert 'http-equiv="refresh"' not in html

    import_now(owner, capture, job)
    assert job.status == S.DONE
    assert bytes(job.content) == b""  # the file is dropped once imported
    truck = FieldDevice.objects.get(tenant=tenant, serial="truck_01")
    assert (truck.name, truck.max_concurrent_streams) == ("Haul truck 1", 2)
    cameras = list(
        truck.cameras.order_by("slot").values_list(
            "slot", "name", "width", "height", "enabled", "priority"
        )
    )
    assert cameras == [
        (1, "front", 1920, 1080, True, 10),
        (2, "rear", 1280, 720, False, -5),
        (3, "", 640, 480, True, 0),
    ]
    crane = FieldDevice.objects.get(tenant=tenant, serial="crane_07")
    assert crane.max_concurrent_streams is None and crane.cameras.count() == 0
    event = AuditEvent.objects.get(action="devices.imported")
    assert event.tenant == tenant and event.actor == alice
    assert event.data == {"file": "devices.csv", "devices": 2, "cameras": 3}
    assert AuditEvent.objects.filter(action__startswith="device.").count() == 0

    html = owner.get(reverse("device-import-job", args=[job.pk])).content.decode()
    assert "Imported 2 devices and 3 cameras" in html
    assert reverse("devices") in html


def test_a_valid_xlsx_with_numbers_and_booleans_imports(owner, capture, tenant):
    rows = [
        ["truck_01", "Haul truck 1", 2, "front", 1920, 1080, True, 10],
        ["truck_01", "Haul truck 1", 2.0, "rear", 1280.0, 720, False, None],
        ["012345", None, None, None, None, None, None, None],  # a serial typed as text
        [None] * 8,  # a blank row is skipped, but still counts as a line
        ["truck_02", "Haul truck 2", None, None, 640, 480, "是", None],
    ]
    upload(owner, capture, xlsx_file(rows), name="fleet.xlsx")
    job = latest_job()
    assert job.file_format == ImportJob.Format.XLSX
    assert job.status == S.READY, job.errors
    assert (job.devices_count, job.cameras_count, job.rows_total) == (3, 3, 4)
    assert [row["line"] for row in job.preview] == [2, 3, 4, 6]
    import_now(owner, capture, job)
    assert job.status == S.DONE
    assert set(FieldDevice.objects.values_list("serial", flat=True)) == {
        "truck_01",
        "truck_02",
        "012345",
    }
    assert list(
        Camera.objects.filter(device__serial="truck_01").order_by("slot").values_list("enabled")
    ) == [(True,), (False,)]


@pytest.mark.parametrize(
    ("word", "enabled"),
    [
        ("true", True),
        ("FALSE", False),
        ("Yes", True),
        ("no", False),
        ("1", True),
        ("0", False),
        ("是", True),
        ("否", False),
        ("", True),
    ],
)
def test_enabled_takes_yes_and_no_in_every_spelling(word, enabled):
    check = imports.RowCheck(None, {})
    check.row(2, dict(zip(HEADER, ["cam_dev", "", "", "c", "1280", "720", word, ""], strict=True)))
    assert check.error_count == 0
    assert check.devices["cam_dev"].cameras[0]["enabled"] is enabled


def test_chinese_headers_and_a_bom_are_accepted(owner, capture):
    header = [imports.CHINESE_HEADERS[c] for c in imports.COLUMNS]
    content = b"\xef\xbb\xbf" + csv_file(
        [["truck_01", "1号矿卡", "", "前视", "1920", "1080", "是", "1"]], header=header
    )
    upload(owner, capture, content)
    job = latest_job()
    assert job.status == S.READY, job.errors
    assert (job.devices_count, job.cameras_count) == (1, 1)


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_the_templates_parse_back_cleanly(owner, capture, settings, file_format, language):
    owner.cookies[settings.LANGUAGE_COOKIE_NAME] = language
    response = owner.get(reverse("device-import-template"), {"format": file_format})
    assert response.status_code == 200
    assert f"devices-template.{file_format}" in response["Content-Disposition"]
    upload(owner, capture, response.content, name=f"template.{file_format}")
    job = latest_job()
    assert job.status == S.READY, job.errors
    assert (job.devices_count, job.cameras_count) == (2, 2)
    import_now(owner, capture, job)
    assert job.status == S.DONE
    assert FieldDevice.objects.count() == 2


def test_an_unknown_template_format_is_a_404(owner):
    assert owner.get(reverse("device-import-template"), {"format": "pdf"}).status_code == 404


# --- row errors, with line and column -----------------------------------------------------------

OK = ["dev_ok", "", "", "cam", "1280", "720", "", ""]


def row(**changes):
    values = dict(zip(HEADER, OK, strict=True))
    values.update(changes)
    return [values[c] for c in HEADER]


@pytest.mark.parametrize(
    ("rows", "line", "column", "message"),
    [
        ([row(serial="Truck-1")], 2, "serial", "lowercase letters, digits and underscores"),
        ([row(serial="")], 2, "serial", "This field is required."),
        ([row(serial="a" * 19)], 2, "serial", "at most 18 characters"),
        ([row(name="n" * 201)], 2, "name", "at most 200 characters"),
        ([row(max_concurrent_streams="9")], 2, "max_concurrent_streams", "less than or equal to 8"),
        (
            [row(max_concurrent_streams="0")],
            2,
            "max_concurrent_streams",
            "greater than or equal to 1",
        ),
        ([row(max_concurrent_streams="two")], 2, "max_concurrent_streams", "Enter a whole number."),
        ([row(camera_name="x" * 101)], 2, "camera_name", "at most 100 characters"),
        ([row(width="")], 2, "width", "This field is required."),
        ([row(height="")], 2, "height", "This field is required."),
        ([row(width="1280.5")], 2, "width", "Enter a whole number."),
        ([row(width="7681")], 2, "width", "less than or equal to 7680"),
        ([row(height="0")], 2, "height", "greater than or equal to 1"),
        ([row(width="7680", height="4321")], 2, "width", "7680 × 4320 pixels"),
        ([row(enabled="maybe")], 2, "enabled", "Enter yes or no"),
        ([row(priority="1001")], 2, "priority", "less than or equal to 1000"),
        ([row(priority="-1001")], 2, "priority", "greater than or equal to -1000"),
        ([row(priority="high")], 2, "priority", "Enter a whole number."),
        ([row(), row(name="Other")], 3, "name", "Differs from line 2"),
        (
            [row(), row(max_concurrent_streams="2")],
            3,
            "max_concurrent_streams",
            "Differs from line 2",
        ),
        ([row()] * 9, 10, "serial", "more than 8 cameras"),
        (
            [row(camera_name="", width="", height=""), row()],
            3,
            "camera_name",
            "Line 2 lists device dev_ok without cameras",
        ),
        ([row(), row(camera_name="", width="", height="")], 3, "camera_name", "already on line 2"),
    ],
)
def test_each_row_error_names_its_line_column_and_rule(owner, capture, rows, line, column, message):
    upload(owner, capture, csv_file(rows))
    job = latest_job()
    assert job.status == S.INVALID
    found = [(e["line"], e["column"]) for e in job.errors if message in e["message"]]
    assert (line, column) in found, job.errors
    assert FieldDevice.objects.count() == 0
    html = owner.get(reverse("device-import-job", args=[job.pk])).content.decode()
    assert "nothing was written" in html
    assert 'id="import-button"' not in html


def test_a_serial_the_tenant_already_has_is_an_error_on_its_first_line(owner, capture, tenant):
    DeviceFactory(tenant=tenant, serial="dev_ok")
    upload(owner, capture, csv_file([row(serial="new_one"), row(), row()]))
    job = latest_job()
    assert job.errors == [
        {"line": 3, "column": "serial", "message": "A device with this serial already exists."}
    ]


def test_another_tenants_serial_is_free(owner, capture, other_tenant):
    DeviceFactory(tenant=other_tenant, serial="dev_ok")
    upload(owner, capture, csv_file([row()]))
    assert latest_job().status == S.READY


def test_the_column_is_named_as_the_file_names_it(owner, capture):
    header = [imports.CHINESE_HEADERS[c] for c in imports.COLUMNS]
    upload(owner, capture, csv_file([row(width="wide")], header=header))
    assert latest_job().errors[0]["column"] == "宽度"


def test_errors_are_capped_with_the_total_shown(owner, capture):
    rows = [row(serial=f"dev_{i}", width="0") for i in range(imports.MAX_ERRORS_KEPT + 100)]
    upload(owner, capture, csv_file(rows))
    job = latest_job()
    assert job.error_count == imports.MAX_ERRORS_KEPT + 100
    assert len(job.errors) == imports.MAX_ERRORS_KEPT
    html = owner.get(reverse("device-import-job", args=[job.pk])).content.decode()
    assert "600 errors: nothing was written" in html
    assert "… and 100 more errors, not listed." in html


def test_one_bad_row_among_many_writes_nothing(owner, capture):
    rows = [row(serial=f"dev_{i}") for i in range(300)] + [row(serial="BAD")]
    upload(owner, capture, csv_file(rows))
    job = latest_job()
    assert job.status == S.INVALID and job.error_count == 1
    assert job.errors[0]["line"] == 302
    assert bytes(job.content) == b""
    response = owner.post(reverse("device-import-job", args=[job.pk]), {"confirmed": "1"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == S.INVALID
    assert FieldDevice.objects.count() == 0 and Camera.objects.count() == 0


# --- file errors: a form error, no job -----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "devices.csv", "file is empty."),
        (
            csv_file([], header=["serial", "name"]),
            "devices.csv",
            "Missing columns: max_concurrent_streams",
        ),
        (csv_file([], header=[*HEADER, "colour"]), "devices.csv", "Unknown columns: colour."),
        (csv_file([], header=[*HEADER, "serial"]), "devices.csv", "Columns named twice: serial."),
        (";".join(HEADER).encode(), "devices.csv", "with commas, not semicolons"),
        ("serial,名称".encode("gb18030"), "devices.csv", "not UTF-8"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100,
            "devices.xls",
            "Upload a CSV or XLSX",
        ),
        (b"%PDF-1.7\x00\x00", "devices.pdf", "Upload a CSV or XLSX"),
        (b"PK\x03\x04 not really a zip", "devices.xlsx", "not a valid XLSX workbook"),
        (b"serial,name", "devices.xlsx", "not a valid XLSX workbook"),
    ],
)
def test_an_unreadable_file_is_a_form_error_and_no_job(owner, capture, content, name, message):
    response = upload(owner, capture, content, name=name)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html, html[html.find("errorlist") - 200 :][:600]
    assert ImportJob.objects.count() == 0


def test_a_file_over_5_mb_is_refused(owner, capture):
    content = csv_file([]) + b"#" * imports.MAX_FILE_BYTES
    response = upload(owner, capture, content)
    assert "The file is larger than 5 MB." in response.content.decode()
    assert ImportJob.objects.count() == 0


def test_no_file_is_a_form_error(owner):
    response = owner.post(reverse("device-import"), {})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()


def test_a_header_without_rows_is_an_error_of_the_job(owner, capture):
    upload(owner, capture, csv_file([]))
    job = latest_job()
    assert job.status == S.INVALID
    assert job.errors == [
        {"line": None, "column": "", "message": "The file has no rows below its header."}
    ]


def test_too_many_rows_is_an_error_of_the_job(owner, capture, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 5)
    upload(owner, capture, csv_file([row(serial=f"d{i}") for i in range(6)]))
    job = latest_job()
    assert job.status == S.INVALID
    assert "more than 5 rows" in job.errors[0]["message"]


# --- the import: checked again, all or nothing --------------------------------------------------


def test_a_serial_taken_between_the_dry_run_and_the_import_writes_nothing(owner, capture, tenant):
    upload(owner, capture, csv_file([row(serial="dev_a"), row(serial="dev_b")]))
    job = latest_job()
    assert job.status == S.READY
    DeviceFactory(tenant=tenant, serial="dev_b")  # registered on its page meanwhile
    import_now(owner, capture, job)
    assert job.status == S.INVALID
    assert job.errors == [
        {"line": 3, "column": "serial", "message": "A device with this serial already exists."}
    ]
    assert set(FieldDevice.objects.values_list("serial", flat=True)) == {"dev_b"}
    assert Camera.objects.count() == 0
    assert not AuditEvent.objects.filter(action="devices.imported").exists()
    html = owner.get(reverse("device-import-job", args=[job.pk])).content.decode()
    assert "A device with this serial already exists." in html


def test_a_unique_serial_race_at_the_insert_writes_nothing(owner, capture, tenant, monkeypatch):
    """The insert itself fails (a device registered after the re-check, before the write)."""
    upload(owner, capture, csv_file([row(serial="dev_a"), row(serial="dev_b")]))
    job = latest_job()
    recheck = imports.RowCheck.recheck_taken

    def taken_right_after(self):
        recheck(self)
        DeviceFactory(tenant=tenant, serial="dev_b")

    monkeypatch.setattr(imports.RowCheck, "recheck_taken", taken_right_after)
    import_now(owner, capture, job)
    assert job.status == S.INVALID
    assert "was registered while the file was imported" in job.errors[0]["message"]
    assert set(FieldDevice.objects.values_list("serial", flat=True)) == {"dev_b"}
    assert Camera.objects.count() == 0


def test_import_runs_once_however_often_it_is_clicked(owner, capture):
    upload(owner, capture, csv_file([row()]))
    job = latest_job()
    import_now(owner, capture, job)
    url = reverse("device-import-job", args=[job.pk])
    with capture(execute=True):
        response = owner.post(url, {"confirmed": "1"}, follow=True)
    # the second click lands on the imported job's page, with no error
    assert response.redirect_chain == [(url, 302)]
    html = response.content.decode()
    assert "not ready" not in html
    assert "Imported 1 device and 1 camera" in html
    assert FieldDevice.objects.count() == 1
    # the task delivered twice (a worker lost after the commit) finds the job done
    assert imports.import_job_write(job_id=job.pk) is None
    assert imports.import_job_check(job_id=job.pk) is None
    assert FieldDevice.objects.count() == 1


def test_a_broker_down_fails_the_job_instead_of_leaving_it_waiting(owner, capture, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(imports, "enqueue", down)
    upload(owner, capture, csv_file([row()]))
    job = latest_job()
    assert job.status == S.FAILED
    assert bytes(job.content) == b""
    assert "could not be started" in job.errors[0]["message"]


def test_the_job_page_shows_progress_and_refreshes_itself_while_running(owner, tenant):
    job = ImportJob.objects.create(
        tenant=tenant, file_name="big.csv", file_format="csv", rows_total=10_000, rows_checked=2500
    )
    html = owner.get(reverse("device-import-job", args=[job.pk])).content.decode()
    assert '<meta http-equiv="refresh" content="2">' in html
    assert '<progress max="10000" value="2500"' in html
    assert "2500 of 10000 rows checked (25%)." in html
    assert "<script" not in html.split("</head>")[1]


def test_a_check_older_than_a_day_is_not_imported(owner, capture, tenant):
    import datetime as dt

    upload(owner, capture, csv_file([row()]))
    job = latest_job()
    ImportJob.objects.filter(pk=job.pk).update(
        created_at=job.created_at - dt.timedelta(days=1, minutes=1)
    )
    response = owner.post(
        reverse("device-import-job", args=[job.pk]), {"confirmed": "1"}, follow=True
    )
    assert "more than a day old" in response.content.decode()
    assert FieldDevice.objects.count() == 0
    # the sweep drops the old file's bytes; an upload no longer touches other jobs
    upload(owner, capture, csv_file([row(serial="dev_2")]))
    job.refresh_from_db()
    assert bytes(job.content) != b""
    assert imports.import_jobs_sweep() == (0, 1)
    job.refresh_from_db()
    assert bytes(job.content) == b""


def test_progress_is_recorded_in_batches(owner, capture, monkeypatch):
    seen = []
    progress = imports._progress

    def spy(job_id, status):
        record = progress(job_id, status)

        def wrapped(n):
            seen.append((status, n))
            record(n)

        return wrapped

    monkeypatch.setattr(imports, "_progress", spy)
    upload(owner, capture, csv_file([row(serial=f"d{i}") for i in range(1200)]))
    assert seen == [("validating", 500), ("validating", 1000), ("validating", 1200)]
    assert latest_job().rows_checked == 1200


# --- roles, tenancy, suspension ---------------------------------------------------------------


def test_a_viewer_sees_the_imports_but_cannot_upload_or_import(viewer, capture, tenant):
    job = ImportJob.objects.create(
        tenant=tenant, file_name="x.csv", file_format="csv", status=S.READY, content=b"x"
    )
    html = viewer.get(reverse("device-import")).content.decode()
    assert "x.csv" in html and 'type="file"' not in html
    assert "only owners and admins" in html
    response = viewer.post(
        reverse("device-import"), {"file": SimpleUploadedFile("a.csv", csv_file([row()]))}
    )
    assert response.status_code == 403
    html = viewer.get(reverse("device-import-job", args=[job.pk])).content.decode()
    assert 'id="import-button"' not in html
    response = viewer.post(reverse("device-import-job", args=[job.pk]), {"confirmed": "1"})
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == S.READY and ImportJob.objects.count() == 1


def test_an_admin_imports(client, capture, tenant):
    admin = UserFactory(email="admin@example.com")
    MembershipFactory(user=admin, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(admin)
    upload(client, capture, csv_file([row()]))
    import_now(client, capture, latest_job())
    assert FieldDevice.objects.filter(tenant=tenant).count() == 1


def test_another_tenants_job_is_a_404(client, capture, tenant, charlie):
    job = ImportJob.objects.create(
        tenant=tenant, file_name="secret.csv", file_format="csv", status=S.READY, content=b"x"
    )
    client.force_login(charlie)
    url = reverse("device-import-job", args=[job.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"confirmed": "1"}).status_code == 404
    assert "secret.csv" not in client.get(reverse("device-import")).content.decode()
    job.refresh_from_db()
    assert job.status == S.READY


def test_a_suspended_tenant_cannot_upload_or_import(owner, capture, tenant):
    upload(owner, capture, csv_file([row()]))
    job = latest_job()
    tenant_set_status(tenant=tenant, status="suspended", actor="test")
    response = upload(owner, capture, csv_file([row(serial="dev_2")]))
    assert response.status_code == 403
    url = reverse("device-import-job", args=[job.pk])
    assert owner.post(url, {"confirmed": "1"}).status_code == 403
    html = owner.get(reverse("device-import")).content.decode()
    assert 'type="file"' not in html
    assert 'id="import-button"' not in owner.get(url).content.decode()
    assert ImportJob.objects.count() == 1 and FieldDevice.objects.count() == 0


def test_a_tenant_suspended_after_the_click_gets_nothing_written(owner, capture, tenant):
    upload(owner, capture, csv_file([row()]))
    job = latest_job()
    ImportJob.objects.filter(pk=job.pk).update(status=S.IMPORTING)
    tenant_set_status(tenant=tenant, status="suspended", actor="test")
    assert imports.import_job_write(job_id=job.pk) == S.INVALID
    job.refresh_from_db()
    assert job.errors[0]["message"] == "This tenant is suspended."
    assert FieldDevice.objects.count() == 0


def test_the_page_states_the_limits_the_import_applies(owner, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 12_345)
    monkeypatch.setattr(imports, "MAX_FILE_BYTES", 3 * 1024 * 1024)
    html = owner.get(reverse("device-import")).content.decode()
    assert "at most 3 MB and 12,345 rows." in html
    assert "a whole number from -1000 to 1000." in html
    assert "Only the workbook's first worksheet is read." in html


def test_the_devices_page_links_to_the_import(owner):
    html = owner.get(reverse("devices")).content.decode()
    assert reverse("device-import") in html


# --- a fleet's file ----------------------------------------------------------------------------


def test_10000_rows_are_checked_and_imported(owner, capture, tenant):
    rows = [
        [f"truck_{i:05d}", f"Truck {i}", "2", side, "1920", "1080", "yes", "0"]
        for i in range(5000)
        for side in ("front", "rear")
    ]
    content = csv_file(rows)
    started = time.monotonic()
    upload(owner, capture, content)
    job = latest_job()
    assert job.status == S.READY, job.errors[:3]
    assert (job.rows_total, job.rows_checked) == (10_000, 10_000)
    assert (job.devices_count, job.cameras_count) == (5000, 10_000)
    import_now(owner, capture, job)
    elapsed = time.monotonic() - started
    assert job.status == S.DONE
    assert FieldDevice.objects.filter(tenant=tenant).count() == 5000
    assert Camera.objects.filter(device__tenant=tenant).count() == 10_000
    assert set(Camera.objects.values_list("slot", flat=True)) == {1, 2}
    assert elapsed < 20, elapsed
