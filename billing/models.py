"""Billing: orders, payments, refund requests and idempotency keys (R2, R4, R10).

Money is `Decimal` with two places everywhere (R2): DecimalField(max_digits=14,
decimal_places=2) in the database, Decimal in services, strings with two decimals in the API.
"""

import re
import secrets
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from console.models import Tenant
from licensing.models import License
from licensing.rules import MAX_YEARS

MONEY_DIGITS = 14
MONEY_PLACES = 2
CENTS = Decimal("0.01")


# The transfer reference a customer types into the bank form. Every tenant pays into the one
# PAYEE_ACCOUNT, so staff match a transfer to its order by this text alone: it is unique
# across tenants (a database constraint), random (one order's reference tells nothing of
# another's, unlike the order number), and short. Crockford's base32 alphabet leaves out
# I, L, O and U, which are misread for 1, 0 and V or typed wrongly from a phone.
TRANSFER_REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TRANSFER_REFERENCE_PREFIX = "FC"
TRANSFER_REFERENCE_CHARS = 10  # 50 random bits: a collision is rare, and retried (orders)
TRANSFER_REFERENCE_GROUP = 5
TRANSFER_REFERENCE_RE = re.compile(
    rf"^{TRANSFER_REFERENCE_PREFIX}(-[{TRANSFER_REFERENCE_ALPHABET}]{{{TRANSFER_REFERENCE_GROUP}}})"
    rf"{{{TRANSFER_REFERENCE_CHARS // TRANSFER_REFERENCE_GROUP}}}$"
)


def transfer_reference_new() -> str:
    """A fresh random reference such as "FC-7K3QM-9MZD2" (grouped for reading aloud)."""
    chars = "".join(
        secrets.choice(TRANSFER_REFERENCE_ALPHABET) for _ in range(TRANSFER_REFERENCE_CHARS)
    )
    groups = [
        chars[i : i + TRANSFER_REFERENCE_GROUP]
        for i in range(0, TRANSFER_REFERENCE_CHARS, TRANSFER_REFERENCE_GROUP)
    ]
    return "-".join([TRANSFER_REFERENCE_PREFIX, *groups])


def money_field(verbose_name, **kwargs) -> models.DecimalField:
    return models.DecimalField(
        verbose_name, max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kwargs
    )


class Order(models.Model):
    """What a customer buys: new licenses (quantity × years) or a renewal of named licenses.

    `unit_price` is a snapshot of the tenant's contract price when the order was placed, so
    a later price change never alters what an open order costs.
    """

    class Kind(models.TextChoices):
        NEW = "new", _("New licenses")
        RENEWAL = "renewal", _("Renewal")

    class Status(models.TextChoices):
        PENDING_PAYMENT = "pending_payment", _("Pending payment")
        PAID = "paid", _("Paid")
        CANCELLED = "cancelled", _("Cancelled")
        REFUNDED = "refunded", _("Refunded")

    class Channel(models.TextChoices):
        # An order placed by the customer (API or console) and paid by bank transfer.
        ONLINE = "online", _("Online")
        # An order staff record for a deal settled outside the console (`grantlicenses`).
        OFFLINE = "offline", _("Offline")

    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="orders", verbose_name=_("tenant")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, default=Channel.ONLINE
    )
    quantity = models.PositiveIntegerField(_("quantity"))
    years = models.PositiveSmallIntegerField(_("years"))
    unit_price = money_field(_("unit price"))
    total = money_field(_("total"))
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PENDING_PAYMENT
    )
    # Who placed it: "api-key:fc_…", a user's email, "command:grantlicenses".
    created_by = models.CharField(_("created by"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    # What the customer quotes on the bank transfer (not the bank's own payment reference,
    # which staff record on the Payment). order_create retries the rare collision.
    transfer_reference = models.CharField(
        _("transfer reference"), max_length=20, default=transfer_reference_new, editable=False
    )
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    cancel_reason = models.CharField(_("cancel reason"), max_length=500, blank=True)
    refunded_at = models.DateTimeField(_("refunded"), null=True, blank=True)
    licenses = models.ManyToManyField(
        License, through="OrderLicense", related_name="orders", blank=True
    )

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["new", "renewal"]), name="order_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=["online", "offline"]), name="order_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending_payment", "paid", "cancelled", "refunded"]),
                name="order_status_valid",
            ),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(years__gte=1, years__lte=MAX_YEARS), name="order_years_1_10"
            ),
            models.CheckConstraint(condition=Q(unit_price__gt=0), name="order_unit_price_positive"),
            models.CheckConstraint(condition=Q(total__gt=0), name="order_total_positive"),
            # A paid (or later refunded) order always knows when it was paid.
            models.CheckConstraint(
                condition=~Q(status__in=["paid", "refunded"]) | Q(paid_at__isnull=False),
                name="order_paid_has_paid_at",
            ),
            # Every tenant pays into one account: a reference names one order, whoever's.
            models.UniqueConstraint(
                fields=["transfer_reference"], name="order_transfer_reference_unique"
            ),
        ]
        indexes = [
            # The tenant's order list, newest first (API and console).
            models.Index(fields=["tenant", "-created_at"], name="order_tenant_created_idx"),
            # The staff changelist filtered by status.
            models.Index(fields=["status", "-created_at"], name="order_status_created_idx"),
            # Staff's admin search by transfer reference, case-insensitive (`=` search_fields
            # is iexact, UPPER(column) = UPPER(term)); exact look-ups use the unique index.
            models.Index(Upper("transfer_reference"), name="order_transfer_ref_upper_idx"),
            # The admin's changelist, newest first (-created_at, -id), and its date hierarchy.
            models.Index(fields=["created_at", "id"], name="order_created_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk}"

    @property
    def is_paid(self) -> bool:
        return self.status == self.Status.PAID


class OrderLicense(models.Model):
    """The licenses an order is about: those it issued (new) or those it renews (renewal).

    For a renewal the expiry before and after the payment is recorded, so refunding it can
    take exactly that extension back (R10) and notice when a later renewal moved it again.
    """

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="order_licenses")
    license = models.ForeignKey(License, on_delete=models.PROTECT, related_name="order_links")
    previous_expires_at = models.DateTimeField(_("expiry before renewal"), null=True, blank=True)
    new_expires_at = models.DateTimeField(_("expiry after renewal"), null=True, blank=True)

    class Meta:
        verbose_name = _("order license")
        verbose_name_plural = _("order licenses")
        ordering = ["order_id", "license_id"]
        constraints = [
            models.UniqueConstraint(fields=["order", "license"], name="orderlicense_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.order} → L-{self.license_id}"


class Payment(models.Model):
    """A bank transfer staff confirmed. One per order, enforced by the database."""

    order = models.OneToOneField(
        Order, on_delete=models.PROTECT, related_name="payment", verbose_name=_("order")
    )
    reference = models.CharField(_("reference"), max_length=100)
    amount = money_field(_("amount"))
    currency = models.CharField(_("currency"), max_length=3, default="CNY")
    confirmed_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("confirmed by (user)"),
    )
    confirmed_by = models.CharField(_("confirmed by"), max_length=100)
    confirmed_at = models.DateTimeField(_("confirmed"))

    class Meta:
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ["-confirmed_at", "-id"]
        indexes = [
            # The admin's changelist, newest first, and its date hierarchy.
            models.Index(fields=["confirmed_at", "id"], name="payment_confirmed_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(condition=~Q(reference=""), name="payment_reference_set"),
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.order})"


class RefundRequest(models.Model):
    """A customer's request for an order's money back; staff approve or reject it (R10)."""

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, related_name="refund_requests", verbose_name=_("order")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED
    )
    reason = models.TextField(_("reason"), max_length=2000, blank=True)
    amount = money_field(_("amount"))
    requested_by = models.CharField(_("requested by"), max_length=100, blank=True)
    requested_at = models.DateTimeField(_("requested"), default=timezone.now)
    decided_by_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("decided by (user)"),
    )
    decided_by = models.CharField(_("decided by"), max_length=100, blank=True)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decision_note = models.CharField(_("decision note"), max_length=500, blank=True)

    class Meta:
        verbose_name = _("refund request")
        verbose_name_plural = _("refund requests")
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["requested", "approved", "rejected"]),
                name="refund_status_valid",
            ),
            # One open request per order: a second click waits for the staff decision.
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(status="requested"),
                name="refund_one_open_per_order",
            ),
            # An order's money goes back at most once.
            models.UniqueConstraint(
                fields=["order"],
                condition=Q(status="approved"),
                name="refund_one_approved_per_order",
            ),
            models.CheckConstraint(
                condition=Q(status="requested") | Q(decided_at__isnull=False),
                name="refund_decided_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"R-{self.pk} ({self.order})"


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key for POST /api/v1/orders/, scoped to its tenant.

    The unique (tenant, key) constraint is what makes two concurrent requests with one key
    create one order; `body_hash` tells a retry (same body) from a reuse (another body).
    Kept at least 24 hours (CONTRACT.md); `idempotency_keys_purge` removes old ones.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(_("key"), max_length=255)
    body_hash = models.CharField(_("body hash"), max_length=64)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("idempotency key")
        verbose_name_plural = _("idempotency keys")
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_unique_key"),
        ]
        indexes = [
            # The purge deletes by age.
            models.Index(fields=["created_at"], name="idempotency_created_idx"),
        ]

    def __str__(self) -> str:
        return self.key


class TenantTotals(Tenant):
    """Staff's "totals per tenant" changelist (a proxy: no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = _("tenant totals")
        verbose_name_plural = _("tenant totals")
