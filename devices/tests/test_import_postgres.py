"""The bulk import driven through its pages on PostgreSQL with transaction=True: no test
transaction hides a missing `atomic` (SELECT … FOR UPDATE outside one is an error there), and
the worker's tasks are queued by on_commit once the upload and the click really commit."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from console.models import AuditEvent, Membership
from console.tests.factories import DeviceFactory, MembershipFactory, TenantFactory, UserFactory
from devices import imports
from devices.models import Camera, FieldDevice, ImportJob

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres_only", "english"),
]


def csv_file(rows) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(imports.COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.fixture
def owner_client():
    tenant = TenantFactory(name="Acme Mining", slug="acme")
    user = UserFactory(email="owner@example.com")
    MembershipFactory(user=user, tenant=tenant, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    return tenant, user, client


def test_upload_check_import_through_the_pages(owner_client):
    tenant, user, client = owner_client
    rows = [
        [f"truck_{i:05d}", f"Truck {i}", "2", side, "1920", "1080", "yes", "0"]
        for i in range(5000)
        for side in ("front", "rear")
    ] + [["crane_01", "", "", "", "", "", "", ""]]
    response = client.post(
        reverse("device-import"), {"file": SimpleUploadedFile("fleet.csv", csv_file(rows))}
    )
    assert response.status_code == 302
    job = ImportJob.objects.get(tenant=tenant)
    page = client.get(response["Location"]).content.decode()
    assert "Every row is valid. Importing creates 5,001 devices and 10,000 cameras." in page
    assert (job.status, job.rows_total, job.rows_checked) == ("ready", 10_001, 10_001)

    url = reverse("device-import-job", args=[job.pk])
    assert "confirmed" in client.post(url).content.decode()
    with CaptureQueriesContext(connection) as queries:
        response = client.post(url, {"confirmed": "1"})
    assert response.status_code == 302
    sql = [q["sql"] for q in queries.captured_queries]
    assert any("FOR NO KEY UPDATE" in s and '"console_tenant"' in s for s in sql)
    job.refresh_from_db()
    assert job.status == "done", job.errors
    assert FieldDevice.objects.filter(tenant=tenant).count() == 5001
    assert Camera.objects.filter(device__tenant=tenant).count() == 10_000
    event = AuditEvent.objects.get(tenant=tenant, action="devices.imported")
    assert event.actor == user
    assert event.data == {"file": "fleet.csv", "devices": 5001, "cameras": 10_000}
    page = client.get(url).content.decode()
    assert "Imported 5,001 devices and 10,000 cameras" in page
    assert "truck_00000" in client.get(reverse("devices")).content.decode()


def test_a_serial_taken_after_the_dry_run_writes_nothing(owner_client):
    tenant, _user, client = owner_client
    rows = [["dev_a", "", "", "cam", "1280", "720", "", ""], ["dev_b", "", "", "", "", "", "", ""]]
    client.post(reverse("device-import"), {"file": SimpleUploadedFile("a.csv", csv_file(rows))})
    job = ImportJob.objects.get(tenant=tenant)
    assert job.status == "ready"
    DeviceFactory(tenant=tenant, serial="dev_b")
    response = client.post(
        reverse("device-import-job", args=[job.pk]), {"confirmed": "1"}, follow=True
    )
    assert "A device with this serial already exists." in response.content.decode()
    job.refresh_from_db()
    assert job.status == "invalid"
    assert list(FieldDevice.objects.values_list("serial", flat=True)) == ["dev_b"]
    assert Camera.objects.count() == 0


@pytest.mark.parametrize("line", [21, 302])
@pytest.mark.parametrize("column", ["serial", "name", "camera_name"])
def test_a_nul_in_a_cell_is_an_error_with_its_line_and_column(owner_client, column, line):
    """PostgreSQL stores no NUL in text or jsonb: one in the first 20 rows reached the
    preview's jsonb, one further down the devices' INSERT; either ended in "failed
    unexpectedly". (A NUL in the first 4 KB refuses the file as not CSV.)"""
    tenant, _user, client = owner_client
    name = "n" * 190
    rows = [[f"dev_{i:04d}", name, "", "cam", "1280", "720", "", ""] for i in range(2, 400)]
    cells = dict(zip(imports.COLUMNS, rows[line - 2], strict=True))
    cells[column] = f"{cells[column][:10]}\x00x"
    rows[line - 2] = [cells[c] for c in imports.COLUMNS]
    content = csv_file(rows)
    assert content.index(b"\x00") > 4096
    response = client.post(
        reverse("device-import"), {"file": SimpleUploadedFile("nul\x00.csv", content)}
    )
    assert response.status_code == 302
    job = ImportJob.objects.get(tenant=tenant)
    assert "\x00" not in job.file_name
    assert job.status == "invalid", job.errors
    assert job.errors == [
        {"line": line, "column": column, "message": "Null characters are not allowed."}
    ]
    page = client.get(response["Location"]).content.decode()
    assert "Null characters are not allowed." in page
    assert FieldDevice.objects.count() == 0


def test_the_sweep_reads_its_partial_indexes(owner_client):
    import datetime as dt

    from django.utils import timezone

    tenant, _user, _client = owner_client
    long_ago = timezone.now() - dt.timedelta(days=2)
    for status in ("validating", "ready", "done"):
        ImportJob.objects.create(
            tenant=tenant,
            file_name=f"{status}.csv",
            file_format="csv",
            content=b"x" if status != "done" else b"",
            status=status,
            created_at=long_ago,
            updated_at=long_ago,
        )
    with CaptureQueriesContext(connection) as queries:
        assert imports.import_jobs_sweep() == (1, 1)
    statements = [q["sql"] for q in queries.captured_queries if '"devices_importjob"' in q["sql"]]
    assert len(statements) == 3  # the lost jobs' kinds, their update, the old files' update
    plans = []
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for sql in statements:
                cursor.execute(f"EXPLAIN {sql}")
                plans.append("\n".join(line for (line,) in cursor.fetchall()))
        finally:
            cursor.execute("RESET enable_seqscan")
    assert "import_running_updated_idx" in plans[0], plans[0]
    assert "import_running_updated_idx" in plans[1], plans[1]
    assert "import_content_created_idx" in plans[2], plans[2]
