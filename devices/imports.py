"""Bulk import of devices and cameras from a CSV or XLSX file: the file's format, its dry run
(an ImportJob checked by the worker, with progress) and the all-or-nothing write.

The rules a row must keep are the models' own: each row builds the FieldDevice and Camera it
would create and runs the same `full_clean` as devices.services (serial format, R1's sides
and pixel cap in Camera.clean, priority and stream bounds), and a device takes at most
MAX_CAMERAS_PER_DEVICE cameras (console.limits). What is the import's own: the columns, the
spellings of yes and no, a file's limits, and errors reported as the spreadsheet shows them
(line, header = line 1; column; message).

Jobs are safe to run again and twice at once: each step claims the job by its status
(compare-and-set), and the write checks the status again under the job's row lock in the
transaction that creates the devices.
"""

import csv
import datetime as dt
import io
import logging
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

import openpyxl
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator
from django.db import IntegrityError, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from console.celery import enqueue
from console.errors import InvalidInput, ServiceError
from console.models import Tenant, User
from console.services import Actor, audit_record, tenant_lock, tenant_require_active
from devices.models import MAX_CAMERAS_PER_DEVICE, Camera, FieldDevice, ImportJob

logger = logging.getLogger(__name__)

CHECK_TASK = "devices.tasks.import_job_check"
WRITE_TASK = "devices.tasks.import_job_write"

# One row per camera; a device's columns repeat on each of its camera rows, and a row whose
# camera columns are all empty is a device without cameras.
DEVICE_COLUMNS = ("serial", "name", "max_concurrent_streams")
CAMERA_COLUMNS = ("camera_name", "width", "height", "enabled", "priority")
COLUMNS = DEVICE_COLUMNS + CAMERA_COLUMNS
# The Chinese template's headers. Either set is accepted, in any order, whatever the
# console's language, so a file made in one language imports in the other.
CHINESE_HEADERS = {
    "serial": "序列号",
    "name": "设备名称",
    "max_concurrent_streams": "最大并发流数",
    "camera_name": "摄像头名称",
    "width": "宽度",
    "height": "高度",
    "enabled": "启用",
    "priority": "优先级",
}
YES = frozenset({"true", "yes", "y", "1", "是"})
NO = frozenset({"false", "no", "n", "0", "否"})

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 20_000
# Lines read, blank ones included: a sheet can say it has a million blank rows, or skip to
# row 1,048,576, in a few bytes.
MAX_LINES = 50_000
# A header wider than this is no template of ours; only the header's columns of a row are
# read.
MAX_COLUMNS = 100
# The unknown headers an error names.
UNKNOWN_SHOWN = 10
# An XLSX workbook is a zip archive, read by openpyxl in memory (sharedStrings.xml whole):
# what it unpacks to is capped before any of it is read, as a 1 MB archive can unpack to
# gigabytes. A workbook of MAX_ROWS rows unpacks to about 10 MB, each part to 10 to 25
# times its packed size.
MAX_XLSX_UNPACKED_BYTES = 50 * 1024 * 1024
MAX_XLSX_RATIO = 100
RATIO_CHECKED_FROM = 1024 * 1024
# What a job keeps for its page; the totals count everything.
MAX_ERRORS_KEPT = 500
PREVIEW_ROWS = 20
# rows_checked is written every BATCH rows, each in its own short UPDATE.
BATCH = 500
# A checked file waits this long for its import; then it is uploaded again.
KEEP_FOR = dt.timedelta(days=1)

# The model field each column fills, for the model's own messages.
_DEVICE_FIELD = {column: column for column in DEVICE_COLUMNS}
_CAMERA_FIELD = {
    "camera_name": "name",
    "width": "width",
    "height": "height",
    "enabled": "enabled",
    "priority": "priority",
}
_WHOLE = re.compile(r"[+-]?\d{1,9}")


class ImportFileError(Exception):
    """The file as a whole cannot be read (format, encoding, header, size)."""


class CellError(Exception):
    """One cell's value cannot be read as its column's type."""


def _lines_error() -> ImportFileError:
    return ImportFileError(
        _(
            "The file has more than %(max)s lines, blank ones included: delete the empty rows "
            "below the data, or split the file."
        )
        % {"max": f"{MAX_LINES:,}"}
    )


# --- reading a file ------------------------------------------------------------------------


def file_format_of(name: str, content: bytes) -> str:
    if not content:
        raise ImportFileError(_("The file is empty."))
    lower = name.lower()
    # An XLSX workbook is a zip archive, whatever its name says.
    if content.startswith(b"PK\x03\x04"):
        return ImportJob.Format.XLSX
    if lower.endswith((".xlsx", ".xlsm")):
        raise ImportFileError(_("The file is not a valid XLSX workbook."))
    if (
        lower.endswith(".xls")
        or content.startswith(b"\xd0\xcf\x11\xe0")
        or b"\x00" in content[:4096]
    ):
        raise ImportFileError(
            _("Upload a CSV or XLSX file. An older Excel .xls file: save it as .xlsx first.")
        )
    return ImportJob.Format.CSV


def _csv_rows(content: bytes):
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            _("The file is not UTF-8 text: save it as “CSV UTF-8” or as XLSX, and upload it again.")
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 0
    try:
        for line, row in enumerate(reader, start=1):  # noqa: B007 - read after the loop
            yield row
    except csv.Error as exc:
        raise ImportFileError(
            _("The CSV file cannot be read after line %(line)d.") % {"line": line}
        ) from exc


def xlsx_archive_check(content: bytes) -> None:
    """Refuse a workbook that unpacks to too much, before openpyxl reads any of it. The sizes
    are the archive's own word, which zipfile holds each part to when it unpacks it (a part
    longer than it says fails its CRC check)."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ImportFileError(_("The file is not a valid XLSX workbook.")) from exc
    if sum(part.file_size for part in parts) > MAX_XLSX_UNPACKED_BYTES:
        raise ImportFileError(
            _(
                "The workbook unpacks to more than %(size)d MB: keep only the sheet of devices "
                "in it, or save it as CSV."
            )
            % {"size": MAX_XLSX_UNPACKED_BYTES >> 20}
        )
    for part in parts:
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > RATIO_CHECKED_FROM and ratio > MAX_XLSX_RATIO:
            raise ImportFileError(
                _(
                    "A part of the workbook unpacks to more than %(ratio)d times its size, "
                    "which a spreadsheet of devices never does: save it as CSV, or as a new "
                    "XLSX workbook."
                )
                % {"ratio": MAX_XLSX_RATIO}
            )


def _trimmed(row) -> list:
    """The row without its empty cells at the end (a spreadsheet's formatted, empty tail)."""
    cells = list(row)
    while cells and (cells[-1] is None or _cell_text(cells[-1]) == ""):
        cells.pop()
    return cells


def _xlsx_rows(content: bytes):
    xlsx_archive_check(content)
    try:
        book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:
        # A damaged or foreign archive fails in many ways (zip, XML, missing parts), each
        # with its own exception: all mean the same to the user.
        raise ImportFileError(_("The file is not a valid XLSX workbook.")) from exc
    try:
        if not book.worksheets:
            return
        sheet = book.worksheets[0]
        # Read-only mode trusts the sheet's <dimension>, which other programs write stale
        # (rows past it are dropped) or as the whole grid (every row padded to 16,384
        # cells): read the rows the sheet has, and of each only the header's columns.
        sheet.reset_dimensions()
        first = sheet.iter_rows(max_row=1, values_only=True)
        header = _trimmed(next(first, ()))
        first.close()
        yield header
        if not header or len(header) > MAX_COLUMNS:
            return  # header_columns refuses it
        for row in sheet.iter_rows(min_row=2, max_col=len(header), values_only=True):
            yield list(row)
    except ImportFileError:
        raise
    except Exception as exc:
        raise ImportFileError(_("The file is not a valid XLSX workbook.")) from exc
    finally:
        book.close()


def file_rows(content: bytes, file_format: str):
    """Every row of the file's first sheet, the header first, as lists of cells."""
    if file_format == ImportJob.Format.XLSX:
        return _xlsx_rows(content)
    return _csv_rows(content)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value).strip()


_KNOWN_LABELS = {name: name for name in COLUMNS} | {
    zh: name for name, zh in CHINESE_HEADERS.items()
}


def _shown_label(label: str) -> str:
    # A NUL cannot go into a message stored in PostgreSQL, nor mean anything on a page.
    return label.replace("\x00", "\ufffd")[:100]


def header_columns(header: list) -> list[tuple[str, str] | None]:
    """The header row → (column, label as the file writes it) per cell position; None for an
    empty header cell. Raises ImportFileError when the header is too wide, or a column is
    missing, unknown or twice."""
    labels = [_cell_text(cell) for cell in _trimmed(header)]
    if len(labels) > MAX_COLUMNS:
        raise ImportFileError(
            _(
                "The first row has %(n)s cells: it names the columns, at most %(max)d of them. "
                "Delete the cells to the right of the last column."
            )
            % {"n": f"{len(labels):,}", "max": MAX_COLUMNS}
        )
    if len(labels) == 1 and ";" in labels[0]:
        raise ImportFileError(_("Separate the columns with commas, not semicolons."))
    columns: list[tuple[str, str] | None] = []
    unknown, twice = [], []
    seen: set[str] = set()
    for label in labels:
        name = _KNOWN_LABELS.get(label.lower()) if label else None
        if label and name is None:
            unknown.append(_shown_label(label))
        if name is not None:
            if name in seen:
                twice.append(label)
            seen.add(name)
        columns.append((name, label) if name else None)
    missing = [name for name in COLUMNS if name not in seen]
    problems = []
    if missing:
        problems.append(_("Missing columns: %(columns)s.") % {"columns": ", ".join(missing)})
    if unknown:
        shown = ", ".join(unknown[:UNKNOWN_SHOWN])
        more = len(unknown) - UNKNOWN_SHOWN
        if more > 0:
            template = ngettext("%(columns)s and %(n)d more", "%(columns)s and %(n)d more", more)
            shown = template % {"columns": shown, "n": more}
        problems.append(_("Unknown columns: %(columns)s.") % {"columns": shown})
    if twice:
        problems.append(_("Columns named twice: %(columns)s.") % {"columns": ", ".join(twice)})
    if problems:
        problems.append(
            _("The first row names the columns: %(columns)s.") % {"columns": ", ".join(COLUMNS)}
        )
        raise ImportFileError(" ".join(problems))
    return columns


def data_rows(content: bytes, file_format: str) -> tuple[dict[str, str], list]:
    """(label per column, [(line, {column: cell})]) for the file's non-empty rows, with line
    numbers as a spreadsheet shows them (the header is line 1). Raises ImportFileError."""
    rows = file_rows(content, file_format)
    header = next(rows, None)
    if header is None:
        raise ImportFileError(_("The file is empty."))
    columns = header_columns(header)
    # Where each known column is, found once: a row is read at those positions only.
    positions = [(i, c[0]) for i, c in enumerate(columns) if c]
    width = len(columns)
    found = []
    for line, row in enumerate(rows, start=2):
        if line > MAX_LINES:
            raise _lines_error()
        cells = row[:width]
        if all(cell is None or _cell_text(cell) == "" for cell in cells):
            continue  # blank rows (a spreadsheet's formatted tail) are no rows
        if len(found) == MAX_ROWS:
            raise ImportFileError(
                _("The file has more than %(max)s rows: split it into files of at most %(max)s.")
                % {"max": f"{MAX_ROWS:,}"}
            )
        values = {name: cells[i] for i, name in positions if i < len(cells)}
        found.append((line, values))
    if not found:
        raise ImportFileError(_("The file has no rows below its header."))
    return {c[0]: c[1] for c in columns if c}, found


# --- checking rows -------------------------------------------------------------------------


def _whole(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise CellError(_("Enter a whole number."))
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = _cell_text(value)
    if _WHOLE.fullmatch(text):
        return int(text)
    raise CellError(_("Enter a whole number."))


def _flag(value: Any) -> bool | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        return value
    text = _cell_text(value).lower()
    if text in YES:
        return True
    if text in NO:
        return False
    raise CellError(_("Enter yes or no (also true/false, 1/0 or 是/否)."))


@dataclass
class PlannedDevice:
    serial: str
    name: str
    max_concurrent_streams: int | None
    line: int
    cameras: list[dict] = field(default_factory=list)
    # A row without camera columns: the device's only row.
    bare: bool = False


class RowCheck:
    """The rows of one file, checked one at a time, then against the tenant's devices."""

    def __init__(self, tenant: Tenant, labels: dict[str, str]):
        self.tenant = tenant
        self.labels = labels
        self.devices: dict[str, PlannedDevice] = {}
        self.errors: list[dict] = []
        self.error_count = 0
        self.rows = 0
        self.preview: list[dict] = []
        self.unchecked: list[str] = []

    @property
    def cameras(self) -> int:
        return sum(len(device.cameras) for device in self.devices.values())

    def error(self, line: int | None, column: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(
                {"line": line, "column": self.labels.get(column, column), "message": str(message)}
            )

    def _cells(self, line: int, values: dict, kinds: dict) -> dict:
        read = {}
        for column, kind in kinds.items():
            try:
                read[column] = kind(values.get(column))
            except CellError as exc:
                self.error(line, column, str(exc))
        return read

    def _model_errors(self, line: int, exc: ValidationError, columns: dict[str, str]) -> None:
        by_field = {model_field: column for column, model_field in columns.items()}
        for model_field, messages in exc.message_dict.items():
            for message in messages:
                self.error(line, by_field.get(model_field, ""), message)

    def row(self, line: int, values: dict) -> None:
        self.rows += 1
        before = self.error_count
        # A NUL is refused as a form field refuses it: PostgreSQL stores none in text or
        # jsonb, and no spreadsheet means one.
        refused = False
        for column, value in values.items():
            if isinstance(value, str):
                try:
                    ProhibitNullCharactersValidator()(value)
                except ValidationError as exc:
                    self.error(line, column, exc.messages[0])
                    refused = True
        if refused:
            return
        serial_cell = values.get("serial")
        if isinstance(serial_cell, int | float) and not isinstance(serial_cell, bool):
            # An XLSX number cell: the leading zeros are gone, and a float keeps 15 digits
            # (18 are allowed), so the serial read back may not be the one typed.
            self.error(
                line,
                "serial",
                _(
                    "The serial is a number in the file, which loses leading zeros and digits: "
                    "format the serial column as text and type the serials again."
                ),
            )
            return
        serial = _cell_text(serial_cell)
        device_cells = self._cells(
            line, values, {"name": _cell_text, "max_concurrent_streams": _whole}
        )
        has_camera = any(_cell_text(values.get(column)) for column in CAMERA_COLUMNS)
        camera = None
        if has_camera:
            cells = self._cells(
                line,
                values,
                {
                    "camera_name": _cell_text,
                    "width": _whole,
                    "height": _whole,
                    "enabled": _flag,
                    "priority": _whole,
                },
            )
            for side in ("width", "height"):
                if side in cells and cells[side] is None:
                    self.error(line, side, _("This field is required."))
            camera = {
                "name": cells.get("camera_name", ""),
                "width": cells.get("width"),
                "height": cells.get("height"),
                "enabled": True if cells.get("enabled") is None else cells["enabled"],
                "priority": cells.get("priority") or 0,
            }
            unread = [f for c, f in _CAMERA_FIELD.items() if c not in cells or cells[c] is None]
            try:
                Camera(**camera).full_clean(
                    exclude=["device", "slot", *unread],
                    validate_unique=False,
                    validate_constraints=False,
                )
            except ValidationError as exc:
                self._model_errors(line, exc, _CAMERA_FIELD)
        if not serial:
            self.error(line, "serial", _("This field is required."))
            return
        device = self.devices.get(serial)
        if device is None:
            self._first_row(line, serial, device_cells)
        else:
            self._same_device(line, device, device_cells)
        device = self.devices.get(serial)
        if device is None:
            return  # the serial itself is wrong: its error is on this row
        if camera is None:
            if device.line != line:
                self.error(
                    line,
                    "camera_name",
                    _(
                        "Device %(serial)s is already on line %(line)d: a device without "
                        "cameras has one row, a device with cameras one row per camera."
                    )
                    % {"serial": serial, "line": device.line},
                )
            else:
                device.bare = True
        elif device.bare:
            self.error(
                line,
                "camera_name",
                _(
                    "Line %(line)d lists device %(serial)s without cameras: leave that row out "
                    "or fill in its camera columns."
                )
                % {"serial": serial, "line": device.line},
            )
        elif len(device.cameras) >= MAX_CAMERAS_PER_DEVICE:
            self.error(
                line,
                "serial",
                _(
                    "Device %(serial)s has more than %(max)d cameras: a device holds at "
                    "most %(max)d."
                )
                % {"serial": serial, "max": MAX_CAMERAS_PER_DEVICE},
            )
        else:
            device.cameras.append(camera)
        if len(self.preview) < PREVIEW_ROWS and self.error_count == before:
            self.preview.append(
                {
                    "line": line,
                    "serial": serial,
                    "name": device.name,
                    "max_concurrent_streams": device.max_concurrent_streams,
                    "camera": camera,
                }
            )

    def _first_row(self, line: int, serial: str, cells: dict) -> None:
        device = FieldDevice(
            serial=serial,
            name=cells.get("name", ""),
            max_concurrent_streams=cells.get("max_concurrent_streams"),
        )
        unread = [] if "max_concurrent_streams" in cells else ["max_concurrent_streams"]
        try:
            device.full_clean(
                exclude=["tenant", *unread], validate_unique=False, validate_constraints=False
            )
        except ValidationError as exc:
            self._model_errors(line, exc, _DEVICE_FIELD)
            if "serial" in exc.message_dict:
                return
        self.devices[serial] = PlannedDevice(
            serial=serial,
            name=device.name,
            max_concurrent_streams=device.max_concurrent_streams,
            line=line,
        )
        self.unchecked.append(serial)

    def _same_device(self, line: int, device: PlannedDevice, cells: dict) -> None:
        for column in ("name", "max_concurrent_streams"):
            if column in cells and cells[column] != getattr(device, column):
                self.error(
                    line,
                    column,
                    _(
                        "Differs from line %(line)d, the first row of device %(serial)s: every "
                        "row of a device repeats the same device columns."
                    )
                    % {"line": device.line, "serial": device.serial},
                )

    def check_taken(self) -> None:
        """The serials seen since the last call that the tenant already has."""
        serials, self.unchecked = self.unchecked, []
        for start in range(0, len(serials), BATCH):
            chunk = serials[start : start + BATCH]
            taken = FieldDevice.objects.filter(tenant=self.tenant, serial__in=chunk)
            for serial in sorted(taken.values_list("serial", flat=True)):
                self.error(
                    self.devices[serial].line,
                    "serial",
                    _("A device with this serial already exists."),
                )

    def recheck_taken(self) -> None:
        self.unchecked = list(self.devices)
        self.check_taken()

    def sorted_errors(self) -> list[dict]:
        return sorted(self.errors, key=lambda e: e["line"] or 0)


def check_rows(*, tenant: Tenant, labels: dict[str, str], rows: list, progress=None) -> RowCheck:
    """Check every row, BATCH at a time: each batch's new serials against the tenant's
    devices, then `progress(rows_checked)`."""
    check = RowCheck(tenant, labels)
    for start in range(0, len(rows), BATCH):
        for line, values in rows[start : start + BATCH]:
            check.row(line, values)
        check.check_taken()
        if progress is not None:
            progress(min(start + BATCH, len(rows)))
    return check


# --- jobs ----------------------------------------------------------------------------------


def _queue(task_name: str, job_id: int, *args) -> None:
    """Queued once the job's row is committed. With the broker down the job cannot go on:
    it says so (its page asks for the file again) rather than wait for ever."""
    try:
        enqueue(task_name, job_id, *args)
    except Exception:
        logger.warning("import job %s: queue unavailable", job_id, exc_info=True)
        ImportJob.objects.filter(
            pk=job_id, status__in=[ImportJob.Status.VALIDATING, ImportJob.Status.IMPORTING]
        ).update(
            status=ImportJob.Status.FAILED,
            content=b"",
            error_count=1,
            errors=[file_error(_("The job could not be started: upload the file again."))],
            finished_at=timezone.now(),
            updated_at=timezone.now(),
        )


def import_job_create(
    *, tenant: Tenant, file_name: str, content: bytes, language: str, actor: Actor = None
) -> ImportJob:
    """Take an uploaded file: refuse it at once when it cannot be read (size, format,
    encoding, header), else store it as a job whose rows the worker checks."""
    tenant_require_active(tenant)
    if len(content) > MAX_FILE_BYTES:
        message = _("The file is larger than %(size)d MB.") % {"size": MAX_FILE_BYTES >> 20}
        raise InvalidInput(message, errors={"file": [message]})
    try:
        file_format = file_format_of(file_name, content)
        rows = file_rows(content, file_format)
        header = next(rows, None)
        if header is None:
            raise ImportFileError(_("The file is empty."))
        header_columns(header)
        rows.close()
    except ImportFileError as exc:
        raise InvalidInput(str(exc), errors={"file": [str(exc)]}) from exc
    now = timezone.now()
    with transaction.atomic():
        # Files kept longer than KEEP_FOR are dropped by the sweep (import_jobs_sweep).
        job = ImportJob.objects.create(
            tenant=tenant,
            created_by=actor if isinstance(actor, User) else None,
            file_name=file_name.replace("\x00", "")[-255:] or "upload",
            file_format=file_format,
            content=content,
            language=language,
            created_at=now,
            updated_at=now,
        )
        transaction.on_commit(lambda: _queue(CHECK_TASK, job.pk))
    return job


def _finish(job_id: int, status_from: str, check: RowCheck | None, **values) -> int:
    """The job's last word on a step, if it still is in `status_from`; the file is dropped
    unless the job waits for its import."""
    if check is not None:
        values.update(
            rows_checked=check.rows,
            devices_count=len(check.devices),
            cameras_count=check.cameras,
            error_count=check.error_count,
            errors=check.sorted_errors(),
        )
    if values.get("status") != ImportJob.Status.READY:
        values["content"] = b""
    values["updated_at"] = timezone.now()
    return ImportJob.objects.filter(pk=job_id, status=status_from).update(**values)


def file_error(message: str) -> dict:
    """An error of the whole file, listed like a row's."""
    return {"line": None, "column": "", "message": str(message)}


def _file_error(job_id: int, status_from: str, message: str) -> None:
    checking = status_from == ImportJob.Status.VALIDATING
    _finish(
        job_id,
        status_from,
        None,
        status=ImportJob.Status.INVALID if checking else ImportJob.Status.FAILED,
        error_count=1,
        errors=[file_error(message)],
        finished_at=timezone.now(),
    )


def _progress(job_id: int, status: str):
    def record(rows_checked: int) -> None:
        # Its own short statement, outside any transaction: the job's page sees it at once.
        ImportJob.objects.filter(pk=job_id, status=status).update(
            rows_checked=rows_checked, updated_at=timezone.now()
        )

    return record


def _job_in(job_id: int, status: str) -> ImportJob | None:
    """The job, if it is still in `status` (a task run again after its step finds none)."""
    job = ImportJob.objects.select_related("tenant").filter(pk=job_id).first()
    return job if job is not None and job.status == status else None


def _check_file(job: ImportJob, status: str) -> RowCheck | None:
    """Every row of the job's file checked, with progress; None when the file cannot be
    read (the job then ends with that error)."""
    read = _read(job, status)
    if read is None:
        return None
    labels, rows = read
    return check_rows(
        tenant=job.tenant, labels=labels, rows=rows, progress=_progress(job.pk, status)
    )


def _read(job: ImportJob, status: str) -> tuple[dict, list] | None:
    try:
        labels, rows = data_rows(bytes(job.content), job.file_format)
    except ImportFileError as exc:
        _file_error(job.pk, status, str(exc))
        return None
    ImportJob.objects.filter(pk=job.pk, status=status).update(
        rows_total=len(rows), rows_checked=0, updated_at=timezone.now()
    )
    return labels, rows


def import_job_check(*, job_id: int) -> str | None:
    """The dry run: read and check every row (progress every BATCH rows); the job ends
    READY with what it would create, or INVALID with its errors. Returns the status."""
    status = ImportJob.Status.VALIDATING
    job = _job_in(job_id, status)
    if job is None:
        return None
    with translation.override(job.language):
        try:
            check = _check_file(job, status)
            if check is None:
                return ImportJob.Status.INVALID
            final = ImportJob.Status.INVALID if check.error_count else ImportJob.Status.READY
            _finish(
                job.pk,
                status,
                check,
                status=final,
                preview=check.preview,
                checked_at=timezone.now(),
                finished_at=timezone.now() if final == ImportJob.Status.INVALID else None,
            )
        except Exception:
            _file_error(job.pk, status, _("The check failed unexpectedly: upload the file again."))
            raise
    return final


def import_job_start(*, tenant: Tenant, job: ImportJob, actor: Actor = None) -> ImportJob:
    """The user's "Import": a READY job moves to IMPORTING once and the worker writes it. A
    second click (the job already importing or imported) changes nothing and is no error."""
    tenant_require_active(tenant)
    if job.status == ImportJob.Status.READY and job.created_at < timezone.now() - KEEP_FOR:
        raise InvalidInput(_("This check is more than a day old: upload the file again."))
    actor_id = actor.pk if isinstance(actor, User) else None
    with transaction.atomic():
        moved = (
            ImportJob.objects.filter(pk=job.pk, tenant=tenant, status=ImportJob.Status.READY)
            .exclude(content=b"")
            .update(status=ImportJob.Status.IMPORTING, rows_checked=0, updated_at=timezone.now())
        )
        if moved:
            transaction.on_commit(lambda: _queue(WRITE_TASK, job.pk, actor_id))
    job.refresh_from_db()
    if not moved and job.status not in (ImportJob.Status.IMPORTING, ImportJob.Status.DONE):
        raise InvalidInput(_("This file cannot be imported now: it is not ready."))
    return job


def _lost_after() -> dt.timedelta:
    # A task ends within its hard time limit, and reports progress well within it; one whose
    # worker died is handed out again after the broker's visibility timeout and reports at
    # once. A running job silent for longer than both, and a minute, has no task left.
    return dt.timedelta(
        seconds=settings.CELERY_TASK_TIME_LIMIT + settings.BROKER_VISIBILITY_TIMEOUT + 60
    )


def import_jobs_sweep(*, now: dt.datetime | None = None) -> tuple[int, int]:
    """The periodic clean-up (beat, every 5 minutes), every tenant's: running jobs whose task
    was lost (hard time limit, out of memory, a lost message) end FAILED with their file
    dropped, and the files of jobs older than KEEP_FOR are dropped. Returns (failed,
    dropped). Set-based, compare-and-set updates: safe to run again and twice at once, and
    a write in flight holds its job's row lock, so its result wins."""
    now = now or timezone.now()
    Status = ImportJob.Status
    lost = ImportJob.objects.filter(
        status__in=[Status.VALIDATING, Status.IMPORTING], updated_at__lt=now - _lost_after()
    )
    failed = 0
    for status, language in lost.values_list("status", "language").distinct().order_by():
        with translation.override(language):
            if status == Status.VALIDATING:
                message = _("The check stopped before it finished: upload the file again.")
            else:
                message = _(
                    "The import stopped before it finished; nothing was written. Upload the "
                    "file again."
                )
            failed += lost.filter(status=status, language=language).update(
                status=Status.FAILED,
                content=b"",
                error_count=1,
                errors=[file_error(message)],
                finished_at=now,
                updated_at=now,
            )
    if failed:
        logger.warning("import jobs: %d lost with their worker, failed", failed)
    # A file waits KEEP_FOR for its import, then it is uploaded again (import_job_start says
    # so); a job importing it still reads it, and fails above if it was lost.
    dropped = (
        ImportJob.objects.filter(created_at__lt=now - KEEP_FOR)
        .exclude(content=b"")
        .exclude(status=Status.IMPORTING)
        .update(content=b"", updated_at=now)
    )
    return failed, dropped


def import_job_write(*, job_id: int, actor_id: int | None = None) -> str | None:
    """The import: read and check the file again (serials may have been taken since the dry
    run), then create every device and camera in one transaction, or nothing."""
    status = ImportJob.Status.IMPORTING
    job = _job_in(job_id, status)
    if job is None:
        return None
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    with translation.override(job.language):
        try:
            # The rows' own rules, with progress, outside the transaction; the serials again
            # inside it, under the tenant's lock.
            check = _check_file(job, status)
            if check is None:
                return ImportJob.Status.FAILED
            return _write(job, check, actor)
        except Exception:
            _file_error(job.pk, status, _("The import failed unexpectedly; nothing was written."))
            raise


@transaction.atomic
def _write(job: ImportJob, check: RowCheck, actor: Actor) -> str | None:
    status = ImportJob.Status.IMPORTING
    # The tenant's row lock first, as every multi-row writer of a tenant takes it: imports
    # of one tenant queue up (console.services.tenant_lock).
    tenant = tenant_lock(job.tenant_id)
    locked = ImportJob.objects.select_for_update().filter(pk=job.pk, status=status).first()
    if locked is None:
        return None  # another run of this task got here first
    try:
        tenant_require_active(tenant)
    except ServiceError as exc:
        check.error(None, "", str(exc.detail))
    if not check.error_count:
        check.recheck_taken()
    if check.error_count:
        _finish(
            job.pk,
            status,
            check,
            status=ImportJob.Status.INVALID,
            finished_at=timezone.now(),
        )
        return ImportJob.Status.INVALID
    planned = list(check.devices.values())
    now = timezone.now()
    try:
        with transaction.atomic():
            # bulk_create returns the new ids on PostgreSQL and SQLite alike.
            devices = FieldDevice.objects.bulk_create(
                [
                    FieldDevice(
                        tenant=tenant,
                        serial=p.serial,
                        name=p.name,
                        max_concurrent_streams=p.max_concurrent_streams,
                        created_at=now,
                    )
                    for p in planned
                ],
                batch_size=1000,
            )
    except IntegrityError:
        # A device registered on its own page meanwhile (that path takes no tenant lock):
        # the unique serial decides, and this import writes nothing.
        check.error(
            None,
            "",
            _(
                "A device with one of these serials was registered while the file was "
                "imported. Nothing was imported: upload the file again to check it."
            ),
        )
        _finish(job.pk, status, check, status=ImportJob.Status.INVALID, finished_at=now)
        return ImportJob.Status.INVALID
    Camera.objects.bulk_create(
        [
            Camera(device=device, slot=slot, created_at=now, **camera)
            for device, p in zip(devices, planned, strict=True)
            for slot, camera in enumerate(p.cameras, start=1)
        ],
        batch_size=1000,
    )
    # New devices hold no license, so their cameras move no device's service level: no
    # device.service_changed webhook (R15), as creating one device on its page sends none.
    # One audit event for the import, with its counts, not one per row.
    audit_record(
        tenant=tenant,
        action="devices.imported",
        target=job,
        actor=actor,
        data={
            "file": job.file_name,
            "devices": len(devices),
            "cameras": check.cameras,
        },
    )
    _finish(job.pk, status, check, status=ImportJob.Status.DONE, finished_at=now)
    return ImportJob.Status.DONE


# --- the template --------------------------------------------------------------------------


def template_rows(language: str) -> tuple[list[str], list[list]]:
    """The template's header and example rows: a device with two cameras, one without."""
    if language.startswith("zh"):
        header = [CHINESE_HEADERS[c] for c in COLUMNS]
        rows = [
            ["truck_01", "1号矿卡", 2, "前视", 1920, 1080, "是", 10],
            ["truck_01", "1号矿卡", 2, "后视", 1280, 720, "是", 0],
            ["crane_07", "7号岸桥", "", "", "", "", "", ""],
        ]
    else:
        header = list(COLUMNS)
        rows = [
            ["truck_01", "Haul truck 1", 2, "front", 1920, 1080, "yes", 10],
            ["truck_01", "Haul truck 1", 2, "rear", 1280, 720, "yes", 0],
            ["crane_07", "Quay crane 7", "", "", "", "", "", ""],
        ]
    return header, rows


def import_template(*, file_format: str, language: str) -> bytes:
    header, rows = template_rows(language)
    if file_format == ImportJob.Format.XLSX:
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet()
        sheet.append(header)
        for row in rows:
            sheet.append([None if cell == "" else cell for cell in row])
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    # With a byte order mark, Excel opens the UTF-8 file (Chinese included) correctly.
    return text.getvalue().encode("utf-8-sig")
