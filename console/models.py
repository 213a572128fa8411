import datetime as dt
import hashlib
import secrets
import uuid
from decimal import Decimal
from email.utils import make_msgid
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.limits import MAX_CAMERAS_PER_DEVICE


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra["is_staff"] = True
        extra["is_superuser"] = True
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. The email address is the login (lower-cased, unique)."""

    email = models.EmailField(_("email address"), unique=True)
    full_name = models.CharField(_("full name"), max_length=150, blank=True)
    # R13: the language of this person's emails. Blank means "not chosen": each email then
    # takes the language of the tenant it is about (console.emails.recipients_for_users).
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=settings.LANGUAGES,
        blank=True,
        default="",
        help_text=_("For emails. Empty: the language of the tenant each email is about."),
    )
    is_staff = models.BooleanField(_("staff status"), default=False)
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.email

    def clean(self):
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).lower()

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name or self.email


slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    _("Use 1–50 lowercase letters, digits and hyphens, not starting or ending with a hyphen."),
)


def list_price() -> Decimal:
    """R2: LICENSE_LIST_PRICE, read when a tenant is created. Its contract price keeps the
    value of that moment: changing the setting later reprices no existing tenant."""
    return settings.LICENSE_LIST_PRICE


class Tenant(models.Model):
    """A customer organisation. Every customer-owned row carries its key (shared schema)."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        SUSPENDED = "suspended", _("Suspended")

    class Language(models.TextChoices):
        ZH_HANS = "zh-hans", _("Simplified Chinese")
        EN = "en", _("English")

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=50, unique=True, validators=[slug_validator])
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE
    )
    language = models.CharField(
        _("email language"), max_length=10, choices=Language.choices, default=Language.ZH_HANS
    )
    # R2: the price per license-year, fixed when the tenant is created: the one its beta
    # confirmation negotiated, else the list price of that moment.
    contract_unit_price = models.DecimalField(
        _("contract unit price (CNY per license-year)"),
        max_digits=12,
        decimal_places=2,
        default=list_price,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(contract_unit_price__gt=0), name="tenant_contract_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["active", "suspended"]), name="tenant_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        ADMIN = "admin", _("Admin")
        VIEWER = "viewer", _("Viewer")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
    )
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("tenant")
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"


API_KEY_PREFIX = "fc_"


def api_key_digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """A tenant's API key. Only its SHA-256 digest is stored; the full key is shown once.

    The key is 256 bits of randomness, so a fast hash is enough: a slow password hasher on
    the gateway hot path would buy nothing against brute force and cost every call.
    """

    class Role(models.TextChoices):
        ADMIN = "admin", _("Admin")
        OPERATOR = "operator", _("Operator (gateways and cockpits)")
        VIEWER = "viewer", _("Viewer")

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="api_keys", verbose_name=_("tenant")
    )
    name = models.CharField(_("name"), max_length=100)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    prefix = models.CharField(_("prefix"), max_length=16, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(role__in=["admin", "operator", "viewer"]), name="apikey_role_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def generate() -> tuple[str, str, str]:
        """A new raw key with its visible prefix and digest."""
        raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
        return raw, raw[:10], api_key_digest(raw)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditEvent(models.Model):
    """Append-only trail of state changes. `tenant` is empty for events before a tenant
    exists (a beta application) and for staff-wide events."""

    # No single-column index: audit_tenant_time_idx (tenant, -created_at) serves every
    # tenant look-up, and each extra index is paid on the bulk inserts of the nightly jobs.
    tenant = models.ForeignKey(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
        db_index=False,
        verbose_name=_("tenant"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="audit_events",
        verbose_name=_("user"),
    )
    # Who acted when it was not a logged-in user: "api-key:fc_abc1234", "system", "command".
    actor_label = models.CharField(_("actor"), max_length=100, blank=True)
    action = models.CharField(_("action"), max_length=64)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("time"), default=timezone.now)

    class Meta:
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        ordering = ["-created_at", "-id"]
        indexes = [
            # The admin's per-tenant trail and the "history of this object" look-ups.
            models.Index(fields=["tenant", "-created_at"], name="audit_tenant_time_idx"),
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
            # The admin's trail, newest first, and its date hierarchy.
            models.Index(fields=["created_at", "id"], name="audit_time_idx"),
            # The admin's search: prefix matches (LIKE 'x%') on the trail's own columns.
            models.Index(
                fields=["action"], opclasses=["varchar_pattern_ops"], name="audit_action_idx"
            ),
            models.Index(
                fields=["actor_label"],
                opclasses=["varchar_pattern_ops"],
                name="audit_actor_label_idx",
            ),
            models.Index(fields=["target_id"], name="audit_target_id_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise ValueError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit events are append-only.")


# --- Beta applications (R9) ---------------------------------------------------------------

# R1: a field device carries at most 8 camera streams (console.limits).
BETA_MAX_CAMERAS_PER_DEVICE = MAX_CAMERAS_PER_DEVICE
BETA_MAX_EXPECTED_DEVICES = 100_000


class BetaApplication(models.Model):
    """A prospective customer's request to join the closed beta (R9).

    The state only moves through console.beta_services, which locks the row and checks the
    transition; confirming creates the tenant with the applicant as its owner.
    """

    class State(models.TextChoices):
        SUBMITTED = "submitted", _("Submitted")
        IN_REVIEW = "in_review", _("In review")
        APPROVED = "approved", _("Approved")
        CONFIRMED = "confirmed", _("Confirmed")
        REJECTED = "rejected", _("Rejected")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    class Industry(models.TextChoices):
        AUTONOMOUS_DRIVING = "autonomous_driving", _("Autonomous driving")
        MINING = "mining", _("Mining")
        PORTS = "ports", _("Ports")
        ENERGY = "energy", _("Energy and power")
        MANUFACTURING = "manufacturing", _("Manufacturing")
        OTHER = "other", _("Other")

    class Resolution(models.TextChoices):
        HD_720 = "720p", _("720p (1280 × 720)")
        HD_1080 = "1080p", _("1080p (1920 × 1080)")
        QHD_1440 = "1440p", _("1440p (2560 × 1440)")
        UHD_4K = "4k", _("4K (3840 × 2160)")
        OTHER = "other", _("Other / mixed")

    # An applicant has at most one of these at a time (the partial unique constraint below);
    # after a rejection or a withdrawal they may apply again.
    OPEN_STATES = (State.SUBMITTED, State.IN_REVIEW, State.APPROVED, State.CONFIRMED)
    # Before confirmation the applicant may still withdraw (R9).
    WITHDRAWABLE_STATES = (State.SUBMITTED, State.IN_REVIEW, State.APPROVED)

    applicant = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="beta_applications",
        verbose_name=_("applicant"),
    )
    company_name = models.CharField(_("company name"), max_length=200)
    contact_name = models.CharField(_("contact name"), max_length=150)
    phone = models.CharField(
        _("phone"),
        max_length=32,
        validators=[
            RegexValidator(
                r"^\+?[0-9][0-9 ()-]{4,30}$",
                _("Enter a phone number: digits, spaces, brackets and hyphens, optionally +."),
            )
        ],
    )
    email = models.EmailField(_("contact email"))
    industry = models.CharField(_("industry"), max_length=32, choices=Industry.choices)
    scenario = models.TextField(
        _("scenario"),
        max_length=4000,
        help_text=_("What will be operated remotely, where, and how."),
    )
    expected_devices = models.PositiveIntegerField(
        _("expected field devices"),
        validators=[MinValueValidator(1), MaxValueValidator(BETA_MAX_EXPECTED_DEVICES)],
    )
    cameras_per_device = models.PositiveSmallIntegerField(
        _("expected cameras per device"),
        validators=[MinValueValidator(1), MaxValueValidator(BETA_MAX_CAMERAS_PER_DEVICE)],
    )
    resolution = models.CharField(
        _("typical resolution"), max_length=16, choices=Resolution.choices
    )
    language = models.CharField(
        _("preferred language"),
        max_length=10,
        choices=Tenant.Language.choices,
        default=Tenant.Language.ZH_HANS,
        help_text=_("For emails and for the tenant created on confirmation."),
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.SUBMITTED
    )
    reviewer_notes = models.TextField(
        _("reviewer notes"),
        blank=True,
        help_text=_("Internal: never shown to the applicant."),
    )
    tenant = models.OneToOneField(
        Tenant,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="beta_application",
        verbose_name=_("tenant"),
    )
    created_at = models.DateTimeField(_("submitted"), default=timezone.now)
    state_changed_at = models.DateTimeField(_("state changed"), default=timezone.now)

    class Meta:
        verbose_name = _("beta application")
        verbose_name_plural = _("beta applications")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("review_betaapplication", _("Can review, approve, reject and confirm applications"))
        ]
        indexes = [
            # The reviewers' changelist: newest first, filtered by state.
            models.Index(fields=["state", "-created_at"], name="betaapp_state_time_idx"),
        ]
        constraints = [
            # One open application per applicant; the apply page and a double submit both
            # meet this, whichever commits second gets the IntegrityError.
            models.UniqueConstraint(
                fields=["applicant"],
                condition=Q(state__in=["submitted", "in_review", "approved", "confirmed"]),
                name="betaapp_one_open_per_applicant",
            ),
            models.CheckConstraint(
                condition=Q(
                    state__in=[
                        "submitted",
                        "in_review",
                        "approved",
                        "confirmed",
                        "rejected",
                        "withdrawn",
                    ]
                ),
                name="betaapp_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(expected_devices__gte=1, expected_devices__lte=100_000),
                name="betaapp_expected_devices_range",
            ),
            models.CheckConstraint(
                condition=Q(cameras_per_device__gte=1, cameras_per_device__lte=8),
                name="betaapp_cameras_per_device_1_8",
            ),
            # R9: confirming is what creates the tenant, and only confirming.
            models.CheckConstraint(
                condition=Q(state="confirmed", tenant__isnull=False)
                | (~Q(state="confirmed") & Q(tenant__isnull=True)),
                name="betaapp_tenant_iff_confirmed",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.company_name}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @property
    def can_withdraw(self) -> bool:
        return self.state in self.WITHDRAWABLE_STATES


# --- Transactional email outbox (R13) --------------------------------------------------------


def outbound_message_id() -> str:
    """A new Message-ID on the console's own domain (SITE_URL's host), set when the email is
    stored: every retry and every resend after a crash carries the same one."""
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return make_msgid(domain=host)


class OutboundEmail(models.Model):
    """One rendered email to one recipient, stored in the transaction of the change it tells
    of and delivered by the worker, the periodic sweep or `sendpendingemails`
    (console.outbox).

    A sender claims a row with a compare-and-set on `lease_until` and `claim_token` (as
    healthchecks' sendalerts), so the sweep, a worker and the command never send one row at
    the same time. Delivery is at least once: a process that dies after the mail server
    accepted the email but before the row says so sends it again after the lease, with the
    same `message_id`, so mail clients that thread by it show one email.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    to = models.EmailField(_("recipient"), max_length=254)
    language = models.CharField(_("language"), max_length=10, blank=True)
    # Which notice this is (the template prefix, e.g. "emails/beta_status"), for staff.
    template = models.CharField(_("template"), max_length=100, blank=True)
    subject = models.CharField(_("subject"), max_length=998)
    body_text = models.TextField(_("text body"))
    body_html = models.TextField(_("HTML body"), blank=True)
    from_email = models.CharField(_("from"), max_length=254)
    reply_to = models.JSONField(_("reply to"), default=list, blank=True)
    message_id = models.CharField(
        _("Message-ID"),
        max_length=255,
        unique=True,
        editable=False,
        default=outbound_message_id,
    )
    # The same notice to the same recipient is stored once: a caller that may repeat itself
    # (a re-run, a double click that got through) names the notice here.
    dedup_key = models.CharField(_("de-duplication key"), max_length=200, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    lease_until = models.DateTimeField(_("sender lease until"), null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    last_error = models.CharField(_("last error"), max_length=1000, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)

    class Meta:
        verbose_name = _("outbound email")
        verbose_name_plural = _("outbound emails")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                Lower("to"),
                "dedup_key",
                condition=~Q(dedup_key=""),
                name="outbound_email_unique_recipient_dedup",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "sent", "failed"]),
                name="outbound_email_status_valid",
            ),
        ]
        indexes = [
            # The sender's claim (console.outbox): pending rows whose attempt is due, oldest
            # first. Partial: sent and failed rows, nearly all of the table, are not in it.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="outbound_email_due_idx",
            ),
            # The staff admin's list, newest first, and its status filter.
            models.Index(fields=["status", "-created_at"], name="outbound_email_status_idx"),
            # The admin's search by recipient (an exact, case-insensitive address).
            models.Index(Lower("to"), name="outbound_email_to_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.to}: {self.subject}"


# --- Team invitations and notification recipients (console.team, console.notify_settings) ----


class Invitation(models.Model):
    """An owner's invitation of an email address to join the tenant with a role.

    The emailed link is a signed, timestamped token (console.team) naming this row and its
    `nonce`; the row's status makes the link single-use, and resending draws a new nonce so
    only the latest link works."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACCEPTED = "accepted", _("Accepted")
        REVOKED = "revoked", _("Revoked")

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="invitations", verbose_name=_("tenant")
    )
    email = models.EmailField(_("email address"))
    role = models.CharField(_("role"), max_length=16, choices=Membership.Role.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    nonce = models.CharField(max_length=32, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("invited by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    sent_at = models.DateTimeField(_("sent"), default=timezone.now)
    accepted_at = models.DateTimeField(_("accepted"), null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("accepted by"),
    )

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at", "-id"]
        constraints = [
            # One open invitation per address and tenant: a second invite of the same
            # address is a resend, and two owners inviting at once make one row.
            models.UniqueConstraint(
                "tenant",
                Lower("email"),
                condition=Q(status="pending"),
                name="invitation_one_pending_per_email",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "accepted", "revoked"]),
                name="invitation_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(role__in=["owner", "admin", "viewer"]), name="invitation_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.tenant} ({self.role})"


class NotificationRecipient(models.Model):
    """An extra address that hears of one kind of notice, besides the tenant's owners and
    admins (e.g. a finance contact for orders and payments)."""

    class Kind(models.TextChoices):
        REMINDERS = "reminders", _("Renewal reminders")
        BILLING = "billing", _("Orders and payments")

    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        related_name="notification_recipients",
        verbose_name=_("tenant"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    email = models.EmailField(_("email address"))
    language = models.CharField(
        _("language"),
        max_length=10,
        choices=Tenant.Language.choices,
        default=Tenant.Language.ZH_HANS,
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("notification recipient")
        verbose_name_plural = _("notification recipients")
        ordering = ["kind", "email", "id"]
        constraints = [
            models.UniqueConstraint(
                "tenant", "kind", Lower("email"), name="notification_recipient_unique"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["reminders", "billing"]),
                name="notification_recipient_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.kind})"


# --- Webhooks (R15) ----------------------------------------------------------------------------


class WebhookEndpoint(models.Model):
    """A tenant's receiver of webhook events (R15, console.webhooks).

    The signing secret must be readable to sign each delivery (a digest would not do), so it
    is stored encrypted with a key derived from SECRET_KEY (console.webhooks, as
    licensing.tokens does for its signing keys). After a rotation the previous secret keeps
    signing too until `previous_secret_until` (24 h), so receivers can switch without loss.
    """

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="webhook_endpoints", verbose_name=_("tenant")
    )
    url = models.CharField(_("URL"), max_length=2000)
    # Event types this endpoint receives, or ["*"] for all of them.
    events = models.JSONField(_("events"), default=list)
    enabled = models.BooleanField(_("enabled"), default=True)
    secret_encrypted = models.TextField(editable=False)
    previous_secret_encrypted = models.TextField(editable=False, blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # R15: the first failed delivery since the last success; 72 h later the endpoint is
    # disabled and the tenant's owners are told.
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)
    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True)
    disabled_at = models.DateTimeField(_("disabled"), null=True, blank=True)
    disabled_reason = models.CharField(_("disabled because"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ["created_at", "id"]
        indexes = [
            # webhook_event_record's look-up of a tenant's enabled endpoints, on every change
            # that may emit an event.
            models.Index(
                fields=["tenant"], condition=Q(enabled=True), name="webhook_endpoint_enabled_idx"
            ),
            # The sweep's "failing for 72 hours" check.
            models.Index(
                fields=["failing_since"],
                condition=Q(enabled=True, failing_since__isnull=False),
                name="webhook_endpoint_failing_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.url


class WebhookEvent(models.Model):
    """One event of a tenant, stored in the transaction of the change that caused it. Its id
    is the `webhook-id` of every delivery and retry (`msg_<hex>`), for de-duplication."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="webhook_events", verbose_name=_("tenant")
    )
    type = models.CharField(_("type"), max_length=64)
    data = models.JSONField(_("data"), default=dict, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        indexes = [models.Index(fields=["tenant", "-created_at"], name="webhook_event_tenant_idx")]

    def __str__(self) -> str:
        return f"{self.msg_id} {self.type}"

    @property
    def msg_id(self) -> str:
        return f"msg_{self.id.hex}"


class WebhookDelivery(models.Model):
    """One event to one endpoint, its last attempt, and a short history of its latest
    attempts (`attempt_log`, at most ATTEMPT_LOG_LENGTH, oldest first).

    Workers claim a delivery as the email outbox does (console.outbox): one conditional
    UPDATE sets a lease and a claim token, so two workers never send one delivery at once;
    a worker that dies mid-send leaves it to be sent again after the lease (at least once,
    with the same `webhook-id`)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("endpoint"),
    )
    event = models.ForeignKey(
        WebhookEvent, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("event")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    # The last attempt: when, its answer (status, first 1 kB of the body), how long, why not.
    last_attempt_at = models.DateTimeField(_("last attempt"), null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_body = models.TextField(_("response body (first 1 kB)"), blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=1000, blank=True)
    # The latest attempts, oldest first, each {"at": ISO time, "status": HTTP status or
    # null, "error": text, "duration_ms": n}; written with the attempt's outcome.
    attempt_log = models.JSONField(
        _("attempt history"), default=list, blank=True, encoder=DjangoJSONEncoder
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    ATTEMPT_LOG_LENGTH = 10

    class Meta:
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_unique"),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "succeeded", "failed"]),
                name="webhook_delivery_status_valid",
            ),
        ]
        indexes = [
            # The workers' claim and the sweep: pending deliveries whose attempt is due.
            # Partial: delivered and failed rows, nearly all of the table, are not in it.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status="pending"),
                name="webhook_delivery_due_idx",
            ),
            # An endpoint's deliveries, newest first (API and console page).
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_list_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.endpoint_id} ({self.status})"

    @property
    def attempt_history(self) -> list[dict]:
        """`attempt_log`, newest first, with each time as a datetime (for the pages)."""
        rows = []
        for entry in reversed(self.attempt_log or []):
            try:
                at = dt.datetime.fromisoformat(entry.get("at") or "")
            except (TypeError, ValueError):
                at = None
            rows.append({**entry, "at": at})
        return rows
