import datetime as dt

from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.models import Tenant
from devices.models import FieldDevice
from licensing import rules


class LicenseQuerySet(models.QuerySet):
    def valid_at(self, at: dt.datetime):
        """R5/R6 (rules.valid_q): paid, started, unexpired and unrefunded at `at`, computed
        from expires_at on every read — never from the stored status a nightly job sets."""
        return self.filter(rules.valid_q(at))

    def with_status_at(self, status: str, at: dt.datetime):
        """The API's ?status= filter, with the same read-time meaning as License.status_at."""
        return self.filter(rules.status_q(status, at))


class License(models.Model):
    """One per-device video-stream license: one license-year per paid year (R2, R3).

    `status` is stored for the nightly job's record (R5) and refunds; whether a license is
    valid is always computed from `expires_at` at read time (see `status_at`).
    """

    class Status(models.TextChoices):
        ACTIVE = rules.ACTIVE, _("Active")
        EXPIRED = rules.EXPIRED, _("Expired")
        REFUNDED = rules.REFUNDED, _("Refunded")

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="licenses", verbose_name=_("tenant")
    )
    # PROTECT: a device is deleted only through the service that unbinds (and audits) its
    # licenses first, in the same transaction (R7).
    device = models.ForeignKey(
        FieldDevice,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="licenses",
        verbose_name=_("field device"),
    )
    starts_at = models.DateTimeField(_("starts"))
    expires_at = models.DateTimeField(_("expires"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE
    )
    first_served_at = models.DateTimeField(_("first served"), null=True, blank=True)
    refunded_at = models.DateTimeField(_("refunded"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    objects = LicenseQuerySet.as_manager()

    class Meta:
        verbose_name = _("license")
        verbose_name_plural = _("licenses")
        ordering = ["expires_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=F("starts_at")), name="license_expires_after_start"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "expired", "refunded"]),
                name="license_status_valid",
            ),
            # Refunded licenses never count again and are never bound (R10).
            models.CheckConstraint(
                condition=~Q(status="refunded") | Q(device__isnull=True),
                name="license_refunded_unbound",
            ),
        ]
        indexes = [
            # Entitlement and the device pages: a device's licenses by expiry.
            models.Index(fields=["device", "expires_at"], name="license_device_exp_idx"),
            # Binding by count and the tenant's license list: the tenant's by expiry.
            models.Index(fields=["tenant", "expires_at"], name="license_tenant_exp_idx"),
            # The nightly expiry job: stored-active licenses past their expires_at only.
            models.Index(
                fields=["expires_at"],
                condition=Q(status="active"),
                name="license_active_exp_idx",
            ),
            # The admin's changelist in the model's order (expires_at, id), and its expiry
            # filter: the first page of 1,000,000 licenses without sorting them all.
            models.Index(fields=["expires_at", "id"], name="license_exp_id_idx"),
        ]

    def __str__(self) -> str:
        return f"L-{self.pk}"

    def status_at(self, at: dt.datetime) -> str:
        return rules.status_at(status=self.status, expires_at=self.expires_at, at=at)

    @property
    def current_status(self) -> str:
        return self.status_at(timezone.now())

    def is_valid_at(self, at: dt.datetime) -> bool:
        return rules.is_valid(
            status=self.status, starts_at=self.starts_at, expires_at=self.expires_at, at=at
        )

    @property
    def last_service_date(self) -> dt.date:
        return rules.last_service_date(self.expires_at)


class SentReminder(models.Model):
    """R11: the one renewal email of a tenant for a milestone and an expiry date.

    The unique constraint is the exactly-once guarantee: whichever job or run inserts the
    row first owns the email; every other run (re-runs, two overlapping runs, the expiry
    job handing over its expiry-date notice) finds the row and sends nothing. A sender
    claims the row with a lease (compare-and-set on `lease_until`), so two workers never
    send the same email at once; `sent_at` is written only after the mail server accepted
    it, so a failed or interrupted send stays pending and is sent again.
    """

    class Milestone(models.IntegerChoices):
        DAYS_30 = 30, _("30 days before the expiry date")
        DAYS_7 = 7, _("7 days before the expiry date")
        DAYS_1 = 1, _("1 day before the expiry date (last day of service)")
        EXPIRY_DATE = 0, _("On the expiry date")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        # Nothing to say when its turn came: every license renewed or refunded, a later
        # milestone already due, or no owner or admin to write to.
        SKIPPED = "skipped", _("Skipped")

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="sent_reminders", verbose_name=_("tenant")
    )
    milestone = models.PositiveSmallIntegerField(_("milestone"), choices=Milestone.choices)
    expiry_date = models.DateField(_("expiry date"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    # The run that inserted the row: lets a run tell its own claims from another's after a
    # bulk insert that ignored conflicts (read back with the expiry dates, which are indexed).
    claim_token = models.CharField(max_length=32, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    queued_at = models.DateTimeField(_("queued"), null=True, blank=True)
    lease_until = models.DateTimeField(_("sender lease until"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    recipients = models.JSONField(_("recipients"), default=list, blank=True)
    license_count = models.PositiveIntegerField(_("licenses"), default=0)
    note = models.CharField(_("note"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("sent reminder")
        verbose_name_plural = _("sent reminders")
        ordering = ["-expiry_date", "tenant_id", "-milestone"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "milestone", "expiry_date"],
                name="sentreminder_unique_tenant_milestone_date",
            ),
            models.CheckConstraint(
                condition=Q(milestone__in=[30, 7, 1, 0]), name="sentreminder_milestone_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "sent", "skipped"]),
                name="sentreminder_status_valid",
            ),
        ]
        indexes = [
            # The reminder job reads the records of the expiry dates in its window.
            models.Index(fields=["expiry_date"], name="sentreminder_date_idx"),
            # Re-queueing sends that never finished (worker died): pending rows only.
            models.Index(
                fields=["queued_at"],
                condition=Q(status="pending"),
                name="sentreminder_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.expiry_date} −{self.milestone}d"


class SigningKey(models.Model):
    """R14: an Ed25519 key that signs entitlement tokens. Keys live in the database so that
    every web process signs with the same one; the private half is encrypted at rest with a
    key derived from SECRET_KEY (licensing.tokens). `generation` orders the keys and makes
    creating the first one (on first use) and a rotation race-free: two processes that try
    the same generation meet the unique constraint, and one of them reads the other's key."""

    generation = models.PositiveIntegerField(_("generation"), unique=True)
    kid = models.CharField(_("key id"), max_length=32, unique=True)
    public_key = models.CharField(_("public key (base64url)"), max_length=64)
    private_key_encrypted = models.TextField(editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # Published at once; signs only from this instant (after the JWKS's cache lifetime, so
    # gateways holding a cached JWKS know the key before they meet a token it signed).
    signs_from = models.DateTimeField(_("signs from"))
    # Unpublished (a compromised key): its tokens no longer verify anywhere that refetches.
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)

    class Meta:
        verbose_name = _("entitlement signing key")
        verbose_name_plural = _("entitlement signing keys")
        ordering = ["-generation"]

    def __str__(self) -> str:
        return self.kid


class EntitlementTokenRecord(models.Model):
    """R14: the last entitlement token issued for a device (the device page shows it)."""

    device = models.OneToOneField(
        FieldDevice, on_delete=models.CASCADE, related_name="entitlement_token"
    )
    jti = models.CharField(_("token id"), max_length=32)
    kid = models.CharField(_("key id"), max_length=32)
    code = models.CharField(_("decision"), max_length=20)
    issued_at = models.DateTimeField(_("issued"))
    expires_at = models.DateTimeField(_("expires"))

    class Meta:
        verbose_name = _("entitlement token")
        verbose_name_plural = _("entitlement tokens")

    def __str__(self) -> str:
        return self.jti
