import datetime as dt

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.limits import MAX_CAMERAS_PER_DEVICE, MAX_PIXELS, MAX_SIDE
from console.models import Tenant

# A camera's priority (R6: higher is kept first when service is degraded).
PRIORITY_MIN = -1000
PRIORITY_MAX = 1000

SERIAL_PATTERN = r"^[a-z0-9_]{1,18}$"
# The same rule anchored with \A…\Z: in Python (and SQLite's REGEXP, which is Python's re)
# "$" also matches before a trailing newline, so "truck01\n" would pass SERIAL_PATTERN.
# PostgreSQL's regular expressions understand \A and \Z too.
SERIAL_REGEX = r"\A[a-z0-9_]{1,18}\Z"

serial_validator = RegexValidator(
    SERIAL_REGEX,
    _("Use 1–18 characters: lowercase letters, digits and underscores."),
    code="invalid_serial",
)


class FieldDevice(models.Model):
    """The gateway on a machine (e.g. a vehicle's domain controller) that pushes video."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="devices", verbose_name=_("tenant")
    )
    serial = models.CharField(_("serial"), max_length=18, validators=[serial_validator])
    name = models.CharField(_("name"), max_length=200, blank=True)
    max_concurrent_streams = models.PositiveSmallIntegerField(
        _("max concurrent streams"),
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_CAMERAS_PER_DEVICE)],
        help_text=_("Leave empty when every enabled camera may stream at once."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("field device")
        verbose_name_plural = _("field devices")
        ordering = ["serial"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "serial"], name="device_unique_serial"),
            models.CheckConstraint(
                condition=Q(max_concurrent_streams__isnull=True)
                | Q(max_concurrent_streams__gte=1, max_concurrent_streams__lte=8),
                name="device_max_streams_1_8",
            ),
            models.CheckConstraint(
                condition=Q(serial__regex=SERIAL_REGEX), name="device_serial_format"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.serial


class Camera(models.Model):
    device = models.ForeignKey(
        FieldDevice,
        on_delete=models.CASCADE,
        related_name="cameras",
        verbose_name=_("field device"),
    )
    # 1..8: with the unique (device, slot) constraint the database itself caps a device at
    # eight cameras, whatever races the application has.
    slot = models.PositiveSmallIntegerField(_("slot"), editable=False)
    name = models.CharField(_("name"), max_length=100, blank=True)
    width = models.PositiveIntegerField(
        _("width"), validators=[MinValueValidator(1), MaxValueValidator(MAX_SIDE)]
    )
    height = models.PositiveIntegerField(
        _("height"), validators=[MinValueValidator(1), MaxValueValidator(MAX_SIDE)]
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    priority = models.IntegerField(
        _("priority"),
        default=0,
        validators=[MinValueValidator(PRIORITY_MIN), MaxValueValidator(PRIORITY_MAX)],
        help_text=_("Higher is kept first when service is degraded."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("camera")
        verbose_name_plural = _("cameras")
        ordering = ["device_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["device", "slot"], name="camera_unique_slot"),
            models.CheckConstraint(condition=Q(slot__gte=1, slot__lte=8), name="camera_slot_1_8"),
            models.CheckConstraint(
                condition=Q(width__gte=1, width__lte=MAX_SIDE, height__gte=1, height__lte=MAX_SIDE),
                name="camera_sides_1_7680",
            ),
            models.CheckConstraint(
                condition=LessThanOrEqual(F("width") * F("height"), MAX_PIXELS),
                name="camera_pixels_max_8k",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.width}×{self.height}"

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def clean(self):
        super().clean()
        # clean() runs even when clean_fields() rejected a side, which then is still the
        # raw input (a string, None): compare only two integers.
        if (
            isinstance(self.width, int)
            and isinstance(self.height, int)
            and self.width * self.height > MAX_PIXELS
        ):
            from django.core.exceptions import ValidationError

            raise ValidationError(
                {"width": _("A camera pushes at most 7680 × 4320 pixels in all.")}
            )


class RemoteCockpit(models.Model):
    """A remote driving station that watches and drives field devices."""

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="cockpits", verbose_name=_("tenant")
    )
    name = models.CharField(_("name"), max_length=200)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("remote cockpit")
        verbose_name_plural = _("remote cockpits")
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class ControlSessionQuerySet(models.QuerySet):
    def live(self, at: dt.datetime):
        """R8: sessions whose lease still holds at `at`. A lease past its end no longer
        controls the device, even before the clean-up job ends it."""
        return self.filter(ended_at__isnull=True, lease_expires_at__gt=at)

    def lapsed(self, at: dt.datetime):
        """Open sessions whose lease has run out by `at`: the clean-up ends them."""
        return self.filter(ended_at__isnull=True, lease_expires_at__lte=at)


class ControlSession(models.Model):
    """R8: a cockpit's lease on driving one device, kept alive by heartbeats."""

    class EndReason(models.TextChoices):
        RELEASED = "released", _("Released")
        LAPSED = "lapsed", _("Lease lapsed")
        TAKEN_OVER = "taken_over", _("Taken over")
        NO_VALID_LICENSE = "no_valid_license", _("No valid license")
        DEVICE_DELETED = "device_deleted", _("Device deleted")

    device = models.ForeignKey(
        FieldDevice,
        on_delete=models.CASCADE,
        related_name="control_sessions",
        verbose_name=_("field device"),
    )
    cockpit = models.ForeignKey(
        RemoteCockpit,
        on_delete=models.CASCADE,
        related_name="control_sessions",
        verbose_name=_("remote cockpit"),
    )
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    lease_expires_at = models.DateTimeField(_("lease expires"))
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    end_reason = models.CharField(
        _("end reason"), max_length=20, choices=EndReason.choices, blank=True
    )

    # The cockpit's credential for this session (CONTRACT: X-Control-Token): its SHA-256
    # digest only; the token itself is shown once, in the answer that starts the session.
    token_digest = models.CharField(max_length=64, blank=True, editable=False)

    objects = ControlSessionQuerySet.as_manager()

    class Meta:
        verbose_name = _("control session")
        verbose_name_plural = _("control sessions")
        ordering = ["-started_at", "-id"]
        constraints = [
            # R8: the database itself allows one open session per device, whatever the
            # application does. A lapsed lease is still "open" here until it is ended.
            models.UniqueConstraint(
                fields=["device"],
                condition=Q(ended_at__isnull=True),
                name="control_one_open_session_per_device",
            ),
            models.CheckConstraint(
                condition=Q(lease_expires_at__gt=F("started_at")),
                name="control_lease_after_start",
            ),
        ]
        indexes = [
            # The per-minute clean-up of lapsed leases scans open sessions only.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(ended_at__isnull=True),
                name="control_open_lease_idx",
            ),
            # The admin's changelist, newest first (-started_at, -id).
            models.Index(fields=["started_at", "id"], name="control_started_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.cockpit} → {self.device}"

    def is_live(self, at) -> bool:
        """ControlSessionQuerySet.live for one session."""
        return self.ended_at is None and self.lease_expires_at > at


class ImportJob(models.Model):
    """One uploaded file of devices and cameras (devices.imports): its dry run, then its
    import. The file itself is kept in the database, so the web process that took the upload
    and the worker that reads it need not share a disk; it is dropped once the job ends."""

    class Status(models.TextChoices):
        VALIDATING = "validating", _("Checking")
        INVALID = "invalid", _("Has errors")
        READY = "ready", _("Ready to import")
        IMPORTING = "importing", _("Importing")
        DONE = "done", _("Imported")
        FAILED = "failed", _("Failed")

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="import_jobs", verbose_name=_("tenant")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    file_name = models.CharField(_("file name"), max_length=255)
    file_format = models.CharField(_("format"), max_length=4, choices=Format.choices)
    content = models.BinaryField(_("file"), editable=False, default=b"")
    # The uploader's language: the worker writes the row errors in it.
    language = models.CharField(_("language"), max_length=10, default="zh-hans", editable=False)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.VALIDATING
    )
    rows_total = models.PositiveIntegerField(_("rows"), default=0)
    rows_checked = models.PositiveIntegerField(_("rows checked"), default=0)
    devices_count = models.PositiveIntegerField(_("devices"), default=0)
    cameras_count = models.PositiveIntegerField(_("cameras"), default=0)
    error_count = models.PositiveIntegerField(_("errors"), default=0)
    # The first errors ({"line", "column", "message"}) and rows, for the page; capped.
    errors = models.JSONField(_("first errors"), default=list, blank=True)
    preview = models.JSONField(_("first rows"), default=list, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # Moved on by every step and progress report: a running job whose last update is older
    # than a task may live was lost with its worker (devices.imports.import_jobs_sweep).
    updated_at = models.DateTimeField(_("last update"), default=timezone.now)
    checked_at = models.DateTimeField(_("checked"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        verbose_name = _("device import")
        verbose_name_plural = _("device imports")
        ordering = ["-created_at", "-id"]
        indexes = [
            # The import page lists the tenant's latest jobs.
            models.Index(fields=["tenant", "created_at"], name="import_tenant_created_idx"),
            # The sweep (import_jobs_sweep): running jobs by their last update, and the files
            # still kept by their age. Both partial, so they hold only the few such jobs.
            models.Index(
                fields=["updated_at"],
                name="import_running_updated_idx",
                condition=Q(status__in=["validating", "importing"]),
            ),
            models.Index(
                fields=["created_at"],
                name="import_content_created_idx",
                condition=~Q(content=b""),
            ),
        ]

    def __str__(self) -> str:
        return self.file_name

    @property
    def running(self) -> bool:
        return self.status in (self.Status.VALIDATING, self.Status.IMPORTING)

    @property
    def percent(self) -> int:
        if not self.rows_total:
            return 0
        return min(100, self.rows_checked * 100 // self.rows_total)
