"""Benchmark: the bulk import of devices and cameras at fleet size (issue 12, item 9).

1. Uses the console pages' benchmark database (BENCH_CONSOLE_DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432/fc_bench_console) and its seed: bench/console_pages.py
   seeds it when missing. The file goes into the fleet tenant, which already has 10,000
   devices, so the serial checks run against a full table.
2. Builds a CSV of BENCH_IMPORT_ROWS rows (default 10,000: a third of the devices with one
   camera, a third with three, a third with five), and runs it through the services the
   pages call, with the worker's tasks run in this process (CELERY_TASK_ALWAYS_EAGER): the
   upload with its dry run (devices.imports.import_job_create → import_job_check), then the
   import (import_job_start → import_job_write, one transaction).
3. Prints each step's wall time, statement count and rows per second, and the process's
   peak memory; then deletes what it imported, so the seed stays as it was.

No target is set by the issue beyond "progress shown for large files (10,000 rows)": the
figures say how long a customer watches that progress. Numbers go to bench/RESULTS.md.

Run: `make bench`, or `.venv/bin/python bench/device_import.py` from the project folder.
"""

import csv
import io
import os
import resource
import time

import inprocess

DATABASE_URL = os.environ.get(
    "BENCH_CONSOLE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fc_bench_console"
)
ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "10000"))

inprocess.configure(DATABASE_URL)
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "true"
log, fail = inprocess.log, inprocess.fail


def file_rows(prefix: str, rows: int) -> tuple[list[list], int]:
    """`rows` camera rows after the header; returns them with the devices they hold."""
    from devices.imports import COLUMNS

    table: list[list] = [list(COLUMNS)]
    devices = 0
    while len(table) - 1 < rows:
        devices += 1
        count = min((1, 3, 5)[devices % 3], rows - (len(table) - 1))
        for slot in range(1, count + 1):
            serial, name = f"{prefix}{devices:06d}", f"Imported machine {devices}"
            table.append([serial, name, "", f"cam {slot}", 1280, 720, "yes", 10 - slot])
    return table, devices


def file_content(table: list[list], file_format: str) -> bytes:
    if file_format == "csv":
        out = io.StringIO(newline="")
        csv.writer(out).writerows(table)
        return out.getvalue().encode()
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    for row in table:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def main() -> None:
    import console_pages

    console_pages.setup_django()
    if not console_pages.seeded():
        log("seeding the console benchmark's database (bench/console_pages.py's seed) …")
        console_pages.seed()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from console.models import Tenant, User
    from devices import imports
    from devices.models import FieldDevice, ImportJob

    tenant = Tenant.objects.get(slug="bench-fleet")
    owner = User.objects.get(email="owner-fleet@example.com")
    existing = FieldDevice.objects.filter(tenant=tenant).count()
    figures = []
    for file_format in ("csv", "xlsx"):
        prefix = f"imp_{file_format}_"
        # A run stopped half-way leaves its devices: start from none.
        FieldDevice.objects.filter(tenant=tenant, serial__startswith=prefix).delete()
        table, devices = file_rows(prefix, ROWS)
        content = file_content(table, file_format)
        log(
            f"{file_format}: {ROWS:,} rows, {devices:,} devices, {ROWS:,} cameras, "
            f"{len(content) / 1024:.0f} KiB; the tenant has {existing:,} devices"
        )
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            job = imports.import_job_create(
                tenant=tenant,
                file_name=f"bench.{file_format}",
                content=content,
                language="en",
                actor=owner,
            )
            seconds = time.perf_counter() - started
        figures.append((file_format, "upload and dry run", seconds, len(queries)))
        job.refresh_from_db()
        if job.status != ImportJob.Status.READY:
            fail(f"the dry run ended {job.status}: {job.errors[:3]}")
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            imports.import_job_start(tenant=tenant, job=job, actor=owner)
            seconds = time.perf_counter() - started
        figures.append((file_format, "import (check again, write)", seconds, len(queries)))
        job.refresh_from_db()
        imported = FieldDevice.objects.filter(tenant=tenant, serial__startswith=prefix)
        created = imported.count()
        imported.delete()
        ImportJob.objects.filter(pk=job.pk).delete()
        if job.status != ImportJob.Status.DONE or created != devices:
            fail(f"the import ended {job.status} with {created} of {devices} devices")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    log("")
    log("| file | step | seconds | statements | rows/s |")
    log("|---|---|---:|---:|---:|")
    for file_format, step, seconds, statements in figures:
        log(f"| {file_format} | {step} | {seconds:.2f} | {statements} | {ROWS / seconds:,.0f} |")
    log(f"\npeak memory of the process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
