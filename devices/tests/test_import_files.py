"""Bulk import: files made to hurt, or made by other programs than ours — NUL bytes deep in a
CSV, XLSX archives that unpack to gigabytes, a sheet's stale or inflated <dimension>, a
million blank rows, headers thousands of cells wide, serials typed as numbers. Each is a
clear error (a form error, or a row's line and column), never a crash or a worker's memory."""

import io
import itertools
import re
import tracemalloc
import zipfile

import openpyxl
import pytest

from devices import imports
from devices.models import FieldDevice, ImportJob
from devices.tests.test_import import HEADER, csv_file, latest_job, row, upload, xlsx_file

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

S = ImportJob.Status
SHEET = "xl/worksheets/sheet1.xml"


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def rewritten(content: bytes, name: str, change) -> bytes:
    """The workbook with its part `name` changed by `change(bytes) -> bytes`."""
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            target.writestr(info.filename, change(data) if info.filename == name else data)
    return out.getvalue()


def with_part(content: bytes, name: str, chunk: bytes, times: int) -> bytes:
    """The workbook with a part of `times` × `chunk`, written as a stream."""
    out = io.BytesIO(content)
    with (
        zipfile.ZipFile(out, "a", zipfile.ZIP_DEFLATED) as archive,
        archive.open(name, "w", force_zip64=True) as part,
    ):
        for _ in range(times):
            part.write(chunk)
    return out.getvalue()


def form_error(response) -> str:
    assert response.status_code == 200
    html = response.content.decode()
    return html[html.find("errorlist") :][:800]


# --- 1. NUL bytes ------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["serial", "name", "camera_name"])
def test_a_nul_deep_in_a_csv_is_an_error_of_its_cell(owner, capture, column):
    rows = [row(serial=f"dev_{i:04d}") for i in range(300)]  # well past the first 4 KB
    rows.append(row(**{"serial": "dev_nul", column: "bad\x00value"}))
    content = csv_file(rows)
    assert content.index(b"\x00") > 4096
    upload(owner, capture, content)
    job = latest_job()
    assert job.status == S.INVALID
    assert job.errors == [
        {"line": 302, "column": column, "message": "Null characters are not allowed."}
    ]
    assert 302 not in [shown["line"] for shown in job.preview]
    assert FieldDevice.objects.count() == 0


# --- 2. archives that unpack to too much -------------------------------------------------------


SHARED_STRING = b"<si><t>a</t></si>" * 61_681  # about 1 MB


def test_a_workbook_unpacking_past_the_cap_is_refused_before_it_is_read(owner, capture):
    content = with_part(xlsx_file([row()]), "xl/sharedStrings.xml", SHARED_STRING, 60)
    assert len(content) < imports.MAX_FILE_BYTES
    tracemalloc.start()
    try:
        response = upload(owner, capture, content, name="fleet.xlsx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "The workbook unpacks to more than 50 MB" in form_error(response)
    assert peak < 40 * 1024 * 1024
    assert ImportJob.objects.count() == 0


def test_a_part_packed_far_tighter_than_a_spreadsheet_is_refused(owner, capture):
    content = with_part(xlsx_file([row()]), "xl/sharedStrings.xml", SHARED_STRING, 3)
    response = upload(owner, capture, content, name="fleet.xlsx")
    assert "unpacks to more than 100 times its size" in form_error(response)
    assert ImportJob.objects.count() == 0


def test_a_full_workbook_is_within_the_archive_limits():
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(HEADER)
    for i in range(imports.MAX_ROWS):
        sheet.append([f"truck_{i:05d}", f"Haul truck {i}", 2, "front", 1920, 1080, "yes", 0])
    out = io.BytesIO()
    book.save(out)
    imports.xlsx_archive_check(out.getvalue())  # no error


def test_xml_entities_in_a_workbook_are_refused(owner, capture):
    def entities(xml: bytes) -> bytes:
        doctype = b'<!DOCTYPE w [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
        return doctype + xml.replace(b"<t>dev_ok</t>", b"<t>&b;</t>", 1)

    assert openpyxl.xml.DEFUSEDXML  # openpyxl parses with defusedxml (requirements.txt)
    content = rewritten(xlsx_file([row()]), SHEET, entities)
    response = upload(owner, capture, content, name="fleet.xlsx")
    assert "not a valid XLSX workbook" in form_error(response)
    assert ImportJob.objects.count() == 0


# --- 3. the sheet's <dimension> and blank lines ------------------------------------------------


def dimension(ref: str):
    def change(xml: bytes) -> bytes:
        return re.sub(rb'<dimension ref="[^"]*"', f'<dimension ref="{ref}"'.encode(), xml)

    return change


def test_a_stale_dimension_drops_no_row(owner, capture):
    rows = [row(serial="dev_a"), row(serial="dev_b"), row(serial="dev_c")]
    content = rewritten(xlsx_file(rows), SHEET, dimension("A1:H2"))
    upload(owner, capture, content, name="fleet.xlsx")
    job = latest_job()
    assert job.status == S.READY, job.errors
    assert (job.rows_total, job.devices_count) == (3, 3)


def test_an_inflated_dimension_reads_only_the_headers_columns(owner, capture):
    content = rewritten(
        xlsx_file([row(serial="dev_a"), row(serial="dev_b")]), SHEET, dimension("A1:XFD1048576")
    )
    rows = imports.file_rows(content, ImportJob.Format.XLSX)
    read = list(itertools.islice(rows, 10))
    rows.close()
    assert [len(cells) for cells in read] == [8, 8, 8]
    upload(owner, capture, content, name="fleet.xlsx")
    job = latest_job()
    assert job.status == S.READY, job.errors
    assert job.rows_total == 2


def test_blank_lines_count_toward_the_lines_limit_in_xlsx(owner, capture):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    sheet.append(row(serial="dev_a"))
    # The sheet skips from row 3 to row 60,000 in a few bytes: 59,997 blank lines.
    for column, value in enumerate(row(serial="dev_late"), start=1):
        sheet.cell(row=60_000, column=column, value=value)
    out = io.BytesIO()
    book.save(out)
    upload(owner, capture, out.getvalue(), name="fleet.xlsx")
    job = latest_job()
    assert job.status == S.INVALID
    assert "more than 50,000 lines, blank ones included" in job.errors[0]["message"]


def test_blank_lines_count_toward_the_lines_limit_in_csv(owner, capture):
    content = csv_file([row(serial="dev_a")]) + b",,,,,,,\r\n" * 60_000 + b"dev_late,,,,,,,\r\n"
    upload(owner, capture, content)
    job = latest_job()
    assert job.status == S.INVALID
    assert "more than 50,000 lines, blank ones included" in job.errors[0]["message"]


# --- 4. headers ---------------------------------------------------------------------------------


def test_a_header_wider_than_100_cells_is_refused(owner, capture):
    header = [*HEADER, *(f"note_{i}" for i in range(92)), "serial"]
    response = upload(owner, capture, csv_file([row()], header=header))
    assert "The first row has 101 cells" in form_error(response)
    assert ImportJob.objects.count() == 0


def test_a_header_of_thousands_of_one_column_is_refused_at_once(owner, capture):
    response = upload(owner, capture, csv_file([], header=["serial"] * 5000))
    assert "The first row has 5,000 cells" in form_error(response)


def test_unknown_columns_are_listed_up_to_ten(owner, capture):
    header = [*HEADER, *(f"note_{i}" for i in range(15))]
    response = upload(owner, capture, csv_file([row()], header=header))
    error = form_error(response)
    shown = ", ".join(f"note_{i}" for i in range(10))
    assert f"Unknown columns: {shown} and 5 more." in error
    assert "note_10" not in error


def test_empty_header_cells_after_the_last_column_are_no_width(owner, capture):
    """A spreadsheet's formatted but empty columns, as Excel writes them to CSV."""
    header = HEADER + [""] * 5000
    upload(owner, capture, csv_file([row() + [""] * 5000, row(camera_name="b")], header=header))
    job = latest_job()
    assert job.status == S.READY, job.errors
    assert (job.devices_count, job.cameras_count) == (1, 2)


# --- 6. serials as XLSX numbers -----------------------------------------------------------------


def test_a_serial_stored_as_a_number_is_refused_with_its_line(owner, capture):
    rows = [
        ["012345", None, None, None, None, None, None, None],  # text: kept as typed
        [12345, None, None, None, None, None, None, None],
        [123456789012345678.0, None, None, None, None, None, None, None],
    ]
    upload(owner, capture, xlsx_file(rows), name="fleet.xlsx")
    job = latest_job()
    assert job.status == S.INVALID
    assert [(e["line"], e["column"]) for e in job.errors] == [(3, "serial"), (4, "serial")]
    assert "format the serial column as text" in job.errors[0]["message"]
    assert job.devices_count == 1
