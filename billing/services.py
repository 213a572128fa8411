"""Writes owned by billing: orders, idempotency, payment confirmation, refunds (R2, R4, R10).

Billing sits on top of licensing: a payment issues or renews licenses through
licensing.services, a refund takes them back through it. Every money or license change locks
the order row first (then the licenses, inside licensing), always in that order, so two staff
members, a command and a customer's request can never interleave on one order.
"""

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import (
    MAX_YEARS,
    IdempotencyKey,
    Order,
    OrderLicense,
    Payment,
    RefundRequest,
)
from billing.pricing import MAX_AMOUNT, order_total, unit_price_for
from console.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceError
from console.models import Tenant, User
from console.services import Actor, audit_record
from licensing import services as licensing
from licensing.models import License

# A new-licenses order issues at most this many licenses (a large offline grant included);
# a renewal names at most MAX_RENEWAL_LICENSES licenses.
MAX_QUANTITY = 100_000
MAX_RENEWAL_LICENSES = 10_000
MAX_REFERENCE_LENGTH = 100
MAX_IDEMPOTENCY_KEY_LENGTH = 255
# CONTRACT.md: keys are kept at least 24 hours; the purge keeps them a week.
IDEMPOTENCY_KEY_RETENTION = dt.timedelta(days=7)
OFFLINE_GRANT_REFERENCE = "offline-grant"


# --- helpers -------------------------------------------------------------------------------


def actor_label(actor: Actor) -> str:
    if actor is None:
        return "system"
    if isinstance(actor, str):
        return actor[:100]
    if not getattr(actor, "is_authenticated", False):
        return "anonymous"
    return str(actor)[:100]


def _actor_user(actor: Actor) -> User | None:
    return actor if isinstance(actor, User) else None


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_years(years: Any) -> None:
    if not _whole(years) or not 1 <= years <= MAX_YEARS:
        raise InvalidInput(
            _("Years must be a whole number from 1 to %(max)d.") % {"max": MAX_YEARS},
            errors={"years": [_("Enter a whole number from 1 to %(max)d.") % {"max": MAX_YEARS}]},
        )


def _check_quantity(quantity: Any) -> None:
    if not _whole(quantity) or not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidInput(
            _("Quantity must be a whole number from 1 to %(max)d.") % {"max": MAX_QUANTITY},
            errors={
                "quantity": [_("Enter a whole number from 1 to %(max)d.") % {"max": MAX_QUANTITY}]
            },
        )


def _require_active(tenant: Tenant) -> None:
    # R9: only an active tenant can buy.
    if tenant.status != Tenant.Status.ACTIVE:
        raise Forbidden(_("This tenant is suspended."), code="TENANT_SUSPENDED")


def _lock_order(order: Order | int, tenant: Tenant | None = None) -> Order:
    order_id = order.pk if isinstance(order, Order) else order
    qs = Order.objects.select_for_update().filter(pk=order_id)
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    locked = qs.first()
    if locked is None:
        raise NotFound(_("Order #%(id)s does not exist.") % {"id": order_id}, code="NOT_FOUND")
    # The lock is on the order row only; the tenant is read after it (a fresh value).
    locked.tenant = Tenant.objects.get(pk=locked.tenant_id)
    return locked


# --- orders --------------------------------------------------------------------------------


def _renewal_licenses(tenant: Tenant, license_ids: Sequence[int], at: dt.datetime) -> list[int]:
    if not isinstance(license_ids, list | tuple) or not license_ids:
        raise InvalidInput(
            _("Name at least one license to renew."),
            errors={"licenses": [_("Name at least one license.")]},
        )
    if not all(_whole(i) and i > 0 for i in license_ids):
        raise InvalidInput(
            _("License ids are positive whole numbers."),
            errors={"licenses": [_("License ids are positive whole numbers.")]},
        )
    if len(set(license_ids)) != len(license_ids):
        raise InvalidInput(
            _("Name each license once."), errors={"licenses": [_("Name each license once.")]}
        )
    if len(license_ids) > MAX_RENEWAL_LICENSES:
        raise InvalidInput(
            _("One renewal order renews at most %(max)d licenses.") % {"max": MAX_RENEWAL_LICENSES},
            errors={"licenses": [_("At most %(max)d licenses.") % {"max": MAX_RENEWAL_LICENSES}]},
        )
    found = {
        lic.pk: lic
        for lic in License.objects.filter(tenant=tenant, pk__in=license_ids).only(
            "id", "status", "starts_at", "expires_at"
        )
    }
    unknown = [i for i in license_ids if i not in found]
    if unknown:
        # Another tenant's license is "unknown" too: it must not be told apart from a missing one.
        raise InvalidInput(
            _("Unknown licenses: %(ids)s.") % {"ids": ", ".join(str(i) for i in unknown)},
            errors={"licenses": [_("No such license in this tenant: %(ids)s.") % {"ids": unknown}]},
        )
    refunded = [i for i in license_ids if found[i].status == License.Status.REFUNDED]
    if refunded:
        raise Conflict(
            _("Licenses %(ids)s were refunded and cannot be renewed.")
            % {"ids": ", ".join(f"L-{i}" for i in refunded)},
            code="LICENSE_REFUNDED",
            extra={"licenses": refunded},
        )
    lapsed = [i for i in license_ids if not found[i].is_valid_at(at)]
    if lapsed:
        # R4: renewal only while valid; an expired license is replaced by buying a new one.
        raise Conflict(
            _("Licenses %(ids)s have expired and cannot be renewed; buy new licenses instead.")
            % {"ids": ", ".join(f"L-{i}" for i in lapsed)},
            code="LICENSE_EXPIRED",
            extra={"licenses": lapsed},
        )
    return list(license_ids)


@transaction.atomic
def order_create(
    *,
    tenant: Tenant,
    kind: str,
    years: int,
    quantity: int | None = None,
    license_ids: Sequence[int] | None = None,
    channel: str = Order.Channel.ONLINE,
    actor: Actor = None,
    at: dt.datetime | None = None,
) -> Order:
    """An order pending payment, priced at the tenant's contract price now (R2).

    new: `quantity` licenses for `years`. renewal: the named licenses, each for `years`
    (quantity = their number); they must be this tenant's and still valid (R4)."""
    at = at or timezone.now()
    _require_active(tenant)
    _check_years(years)
    renew_ids: list[int] = []
    if kind == Order.Kind.NEW:
        if license_ids:
            raise InvalidInput(
                _("A new-licenses order names no licenses; use a renewal to extend some."),
                errors={"licenses": [_("Only for renewals.")]},
            )
        _check_quantity(quantity)
    elif kind == Order.Kind.RENEWAL:
        renew_ids = _renewal_licenses(tenant, license_ids or [], at)
        if quantity is not None and quantity != len(renew_ids):
            raise InvalidInput(
                _("A renewal's quantity is the number of licenses it names."),
                errors={"quantity": [_("Must equal the number of licenses.")]},
            )
        quantity = len(renew_ids)
    else:
        raise InvalidInput(
            _("Kind must be “new” or “renewal”."),
            errors={"kind": [_("Choose “new” or “renewal”.")]},
        )
    if channel not in Order.Channel.values:
        raise InvalidInput(_("Unknown channel."), errors={"channel": [_("Unknown channel.")]})
    assert quantity is not None
    unit_price = unit_price_for(tenant)
    total = order_total(unit_price=unit_price, quantity=quantity, years=years)
    if total > MAX_AMOUNT:
        raise InvalidInput(
            _("This order's total is too large for one order; split it."),
            errors={"quantity": [_("The total must not exceed %(max)s.") % {"max": MAX_AMOUNT}]},
        )
    order = Order.objects.create(
        tenant=tenant,
        kind=kind,
        channel=channel,
        quantity=quantity,
        years=years,
        unit_price=unit_price,
        total=total,
        currency=settings.CURRENCY,
        created_by=actor_label(actor),
        created_at=at,
    )
    if renew_ids:
        OrderLicense.objects.bulk_create(
            [OrderLicense(order=order, license_id=i) for i in renew_ids], batch_size=2000
        )
    audit_record(
        tenant=tenant,
        action="order.created",
        target=order,
        actor=actor,
        data={
            "kind": kind,
            "channel": channel,
            "quantity": quantity,
            "years": years,
            "unit_price": str(unit_price),
            "total": str(order.total),
            **({"licenses": renew_ids} if renew_ids else {}),
        },
    )
    return order


def body_hash(body: Any) -> str:
    """The canonical form of a JSON body: same data, same hash, whatever the key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _replay(tenant: Tenant, key: str, digest: str) -> Order | None:
    row = IdempotencyKey.objects.select_related("order").filter(tenant=tenant, key=key).first()
    if row is None:
        return None
    if row.body_hash != digest:
        raise Conflict(
            _("This Idempotency-Key was already used with another request body."),
            code="IDEMPOTENCY_KEY_REUSED",
            extra={"order": row.order_id},
        )
    return row.order


def order_create_idempotent(
    *,
    tenant: Tenant,
    idempotency_key: str | None,
    body: Any,
    create: Any,
    actor: Actor = None,
) -> tuple[Order, bool]:
    """Create the order `create()` makes, once per (tenant, key): the same key with the same
    body returns the first order (created=False); with another body it is refused.

    Two requests racing with one key both try to insert the key row; the unique constraint
    lets one win, the loser's savepoint (its order included) rolls back, and it returns the
    winner's order. Nothing is stored for a request that fails, so a corrected retry with
    the same key goes through."""
    key = (idempotency_key or "").strip()
    if not key:
        raise InvalidInput(
            _("The Idempotency-Key header is required."), code="IDEMPOTENCY_KEY_REQUIRED"
        )
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            _("The Idempotency-Key header is at most %(max)d characters.")
            % {"max": MAX_IDEMPOTENCY_KEY_LENGTH},
            code="IDEMPOTENCY_KEY_INVALID",
        )
    digest = body_hash(body)
    existing = _replay(tenant, key, digest)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            order = create()
            IdempotencyKey.objects.create(
                tenant=tenant, key=key, body_hash=digest, order=order, created_at=timezone.now()
            )
    except IntegrityError:
        existing = _replay(tenant, key, digest)
        if existing is None:
            raise
        return existing, False
    return order, True


def idempotency_keys_purge(
    *, older_than: dt.timedelta = IDEMPOTENCY_KEY_RETENTION, now: dt.datetime | None = None
) -> int:
    """Delete keys older than `older_than` (never less than the 24 hours CONTRACT.md keeps)."""
    older_than = max(older_than, dt.timedelta(hours=24))
    cutoff = (now or timezone.now()) - older_than
    deleted, _detail = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted


@transaction.atomic
def order_cancel(*, order: Order | int, reason: str = "", actor: Actor = None) -> Order:
    """Cancel an order still pending payment (a paid one is refunded instead)."""
    order = _lock_order(order)
    if order.status != Order.Status.PENDING_PAYMENT:
        raise Conflict(
            _("Order #%(id)s is %(status)s; only an order pending payment can be cancelled.")
            % {"id": order.pk, "status": order.get_status_display()},
            code="ORDER_NOT_PENDING",
        )
    _cancel(order, reason=reason or _("Cancelled by staff."), actor=actor, at=timezone.now())
    return order


def _cancel(order: Order, *, reason: str, actor: Actor, at: dt.datetime) -> None:
    order.status = Order.Status.CANCELLED
    order.cancelled_at = at
    order.cancel_reason = reason[:500]
    order.save(update_fields=["status", "cancelled_at", "cancel_reason"])
    audit_record(
        tenant=order.tenant,
        action="order.cancelled",
        target=order,
        actor=actor,
        data={"reason": order.cancel_reason},
    )


# --- payment confirmation (R3, R4) -----------------------------------------------------------


def _link_licenses(order_id: int, license_ids: list[int]) -> None:
    """Record which licenses an order issued. A grant may issue 100,000: bulk_create would
    build as many model objects (seconds of Python), so this is one set-based statement on
    PostgreSQL and a C-level executemany elsewhere."""
    table = connection.ops.quote_name(OrderLicense._meta.db_table)
    order_col = connection.ops.quote_name(OrderLicense._meta.get_field("order").column)
    license_col = connection.ops.quote_name(OrderLicense._meta.get_field("license").column)
    # Identifiers come from the model's metadata, values are bound parameters.
    columns = f"{table} ({order_col}, {license_col})"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {columns} SELECT %s, unnest(%s::bigint[])",
                [order_id, license_ids],
            )
        else:
            cursor.executemany(
                f"INSERT INTO {columns} VALUES (%s, %s)",  # noqa: S608
                [(order_id, i) for i in license_ids],
            )


@dataclass
class Confirmation:
    order: Order
    payment: Payment
    license_ids: list[int] = field(default_factory=list)


def _check_reference(reference: Any) -> str:
    reference = (reference or "").strip() if isinstance(reference, str | None) else ""
    if not reference:
        raise InvalidInput(
            _("Enter the payment's bank reference."),
            errors={"reference": [_("This field is required.")]},
        )
    if len(reference) > MAX_REFERENCE_LENGTH:
        raise InvalidInput(
            _("The reference is at most %(max)d characters.") % {"max": MAX_REFERENCE_LENGTH},
            errors={
                "reference": [_("At most %(max)d characters.") % {"max": MAX_REFERENCE_LENGTH}]
            },
        )
    return reference


def order_confirm_payment(
    *,
    order: Order | int,
    reference: str,
    actor: Actor = None,
    at: dt.datetime | None = None,
) -> Confirmation:
    """Staff confirm an order's bank transfer: in one transaction, lock the order, record
    the Payment and issue its licenses (new: valid from this instant, R3) or extend them
    (renewal: from their current last service date, R4).

    The order lock makes a second confirmation — later or at the same moment — wait and
    then find the order paid (ORDER_ALREADY_PAID): nothing is issued twice. A renewal paid
    after any of its licenses expired is refused and the order cancelled (R4); that
    cancellation is committed before the refusal is raised."""
    reference = _check_reference(reference)
    error: ServiceError | None = None
    with transaction.atomic():
        order = _lock_order(order)
        if order.status == Order.Status.PAID:
            payment = Payment.objects.filter(order=order).first()
            raise Conflict(
                _("Order #%(id)s is already paid (reference %(ref)s); nothing was changed.")
                % {"id": order.pk, "ref": payment.reference if payment else "?"},
                code="ORDER_ALREADY_PAID",
            )
        if order.status != Order.Status.PENDING_PAYMENT:
            raise Conflict(
                _("Order #%(id)s is %(status)s, not pending payment; nothing was changed.")
                % {"id": order.pk, "status": order.get_status_display()},
                code="ORDER_NOT_PENDING",
            )
        # The payment instant is taken under the lock: it is when the order became paid.
        paid_at = at or timezone.now()
        audit_data = {"order": order.pk}
        license_ids: list[int] = []
        if order.kind == Order.Kind.NEW:
            issued = licensing.licenses_issue(
                tenant=order.tenant,
                quantity=order.quantity,
                years=order.years,
                paid_at=paid_at,
                actor=actor,
                audit_data=audit_data,
            )
            license_ids = [lic.pk for lic in issued]
            _link_licenses(order.pk, license_ids)
        else:
            links = list(OrderLicense.objects.filter(order=order).order_by("license_id"))
            try:
                with transaction.atomic():
                    extensions = licensing.licenses_renew(
                        tenant=order.tenant,
                        license_ids=[link.license_id for link in links],
                        years=order.years,
                        at=paid_at,
                        actor=actor,
                    )
            except Conflict as exc:
                # R4: a renewal paid too late is cancelled; the customer buys new licenses.
                reason = _(
                    "Renewal refused: %(detail)s The order has been cancelled; "
                    "return the payment or let the customer buy new licenses."
                ) % {"detail": exc.detail}
                _cancel(order, reason=reason, actor=actor, at=paid_at)
                error = Conflict(reason, code="LICENSE_EXPIRED", extra=exc.extra)
            else:
                # Record each license's expiry before and after, so a refund can take exactly
                # this extension back (R10). One UPDATE per distinct pair of expiries.
                pairs: dict[tuple[dt.datetime, dt.datetime], list[int]] = {}
                for ext in extensions:
                    key = (ext.previous_expires_at, ext.new_expires_at)
                    pairs.setdefault(key, []).append(ext.license_id)
                for (previous, new), ids in pairs.items():
                    OrderLicense.objects.filter(order=order, license_id__in=ids).update(
                        previous_expires_at=previous, new_expires_at=new
                    )
                license_ids = [link.license_id for link in links]
        if error is None:
            payment = Payment.objects.create(
                order=order,
                reference=reference,
                amount=order.total,
                currency=order.currency,
                confirmed_by_user=_actor_user(actor),
                confirmed_by=actor_label(actor),
                confirmed_at=paid_at,
            )
            order.status = Order.Status.PAID
            order.paid_at = paid_at
            order.save(update_fields=["status", "paid_at"])
            audit_record(
                tenant=order.tenant,
                action="order.paid",
                target=order,
                actor=actor,
                data={
                    "reference": reference,
                    "amount": str(order.total),
                    "kind": order.kind,
                    "licenses": len(license_ids),
                },
            )
    if error is not None:
        raise error
    return Confirmation(order=order, payment=payment, license_ids=license_ids)


@transaction.atomic
def order_grant_offline(
    *,
    tenant: Tenant,
    quantity: int,
    years: int = 1,
    reference: str = OFFLINE_GRANT_REFERENCE,
    actor: Actor = None,
) -> Confirmation:
    """`grantlicenses`: a deal settled outside the console is recorded as a real order
    (channel "offline", at the tenant's contract price) and paid through the same
    confirmation as a bank transfer, so its licenses follow R3 and show in the totals."""
    order = order_create(
        tenant=tenant,
        kind=Order.Kind.NEW,
        quantity=quantity,
        years=years,
        channel=Order.Channel.OFFLINE,
        actor=actor,
    )
    return order_confirm_payment(order=order, reference=reference, actor=actor)


# --- refunds (R10) -------------------------------------------------------------------------


def _refund_refusal(order: Order, at: dt.datetime) -> str | None:
    """Why this paid order may not be refunded at `at` (R10), or None. Read it under the
    order's lock, and for a new-licenses order under its licenses' locks too: a stream
    granted a moment earlier marks them served."""
    if order.status != Order.Status.PAID:
        return _("Order #%(id)s is %(status)s; only a paid order can be refunded.") % {
            "id": order.pk,
            "status": order.get_status_display(),
        }
    if order.kind == Order.Kind.NEW:
        served = list(
            License.objects.filter(order_links__order=order, first_served_at__isnull=False)
            .order_by("id")
            .values_list("id", flat=True)[:10]
        )
        if served:
            return _(
                "Order #%(id)s has provided service (licenses %(ids)s have served), so it "
                "cannot be refunded during the beta."
            ) % {"id": order.pk, "ids": ", ".join(f"L-{i}" for i in served)}
        renewals = list(
            Order.objects.filter(
                kind=Order.Kind.RENEWAL,
                status=Order.Status.PAID,
                order_licenses__license__order_links__order=order,
            )
            .distinct()
            .order_by("id")
            .values_list("id", flat=True)
        )
        if renewals:
            return _(
                "Licenses of order #%(id)s were renewed by orders %(orders)s; refund those first."
            ) % {"id": order.pk, "orders": ", ".join(f"#{i}" for i in renewals)}
        return None
    begins = (
        OrderLicense.objects.filter(order=order)
        .order_by("previous_expires_at")
        .values_list("previous_expires_at", flat=True)
        .first()
    )
    if begins is not None and at >= begins:
        return _(
            "Renewal order #%(id)s cannot be refunded: its renewed period began on %(date)s."
        ) % {"id": order.pk, "date": timezone.localtime(begins).strftime("%Y-%m-%d %H:%M %Z")}
    return None


def order_refundable(*, order: Order, at: dt.datetime | None = None) -> tuple[bool, str]:
    """Whether the order may be refunded now, and why not (for pages and the admin)."""
    refusal = _refund_refusal(order, at or timezone.now())
    return refusal is None, refusal or ""


@transaction.atomic
def order_refund_request(
    *,
    tenant: Tenant,
    order: Order | int,
    reason: str = "",
    actor: Actor = None,
    at: dt.datetime | None = None,
) -> RefundRequest:
    """The customer asks for an order's money back; staff decide in the admin (R10).

    Refused at once when R10 already forbids it, so the customer gets a clear answer
    without waiting for staff."""
    at = at or timezone.now()
    order = _lock_order(order, tenant=tenant)
    reason = (reason or "").strip()
    if len(reason) > 2000:
        raise InvalidInput(
            _("The reason is at most 2000 characters."),
            errors={"reason": [_("At most 2000 characters.")]},
        )
    refusal = _refund_refusal(order, at)
    if refusal:
        raise Conflict(refusal, code="REFUND_NOT_ALLOWED")
    if RefundRequest.objects.filter(order=order, status=RefundRequest.Status.REQUESTED).exists():
        raise Conflict(
            _("A refund of order #%(id)s was already requested and awaits a decision.")
            % {"id": order.pk},
            code="REFUND_ALREADY_REQUESTED",
        )
    request = RefundRequest.objects.create(
        order=order,
        reason=reason,
        amount=order.total,
        requested_by=actor_label(actor),
        requested_at=at,
    )
    audit_record(
        tenant=tenant,
        action="refund.requested",
        target=request,
        actor=actor,
        data={"order": order.pk, "amount": str(order.total), "reason": reason},
    )
    return request


def _lock_request(refund_request: RefundRequest | int) -> tuple[RefundRequest, Order]:
    request_id = refund_request.pk if isinstance(refund_request, RefundRequest) else refund_request
    order_id = RefundRequest.objects.filter(pk=request_id).values_list("order_id", flat=True)
    if not order_id:
        raise NotFound(_("Refund request %(id)s does not exist.") % {"id": request_id})
    order = _lock_order(order_id[0])
    request = RefundRequest.objects.select_for_update().get(pk=request_id)
    if request.status != RefundRequest.Status.REQUESTED:
        raise Conflict(
            _("Refund request R-%(id)s was already %(status)s.")
            % {"id": request.pk, "status": request.get_status_display()},
            code="REFUND_ALREADY_DECIDED",
        )
    return request, order


@transaction.atomic
def _record_decision(
    request: RefundRequest, status: str, *, actor: Actor, note: str, at: dt.datetime
) -> None:
    request.status = status
    request.decided_by_user = _actor_user(actor)
    request.decided_by = actor_label(actor)
    request.decided_at = at
    request.decision_note = (note or "")[:500]
    request.save(
        update_fields=["status", "decided_by_user", "decided_by", "decided_at", "decision_note"]
    )


def refund_approve(
    *,
    refund_request: RefundRequest | int,
    actor: Actor = None,
    note: str = "",
    at: dt.datetime | None = None,
) -> RefundRequest:
    """Staff approve a refund: R10 is checked again under the locks, then the order is
    refunded — its new licenses refunded and unbound, or its renewal's extension taken
    back. A refusal leaves the request open for staff to reject."""
    at = at or timezone.now()
    request, order = _lock_request(refund_request)
    tenant = order.tenant
    links = list(OrderLicense.objects.filter(order=order).order_by("license_id"))
    license_ids = [link.license_id for link in links]
    audit_data = {"order": order.pk, "refund_request": request.pk}
    if order.kind == Order.Kind.NEW:
        # Lock the licenses before reading first_served_at: an entitlement grant marking them
        # served either committed before (and is seen) or waits and then finds them refunded.
        list(
            License.objects.select_for_update(of=("self",))
            .filter(order_links__order=order)
            .order_by("id")
            .values_list("id", flat=True)
        )
    refusal = _refund_refusal(order, at)
    if refusal:
        raise Conflict(refusal, code="REFUND_NOT_ALLOWED")
    if order.kind == Order.Kind.NEW:
        licensing.licenses_refund(
            tenant=tenant, license_ids=license_ids, at=at, actor=actor, audit_data=audit_data
        )
    else:
        try:
            with transaction.atomic():
                licensing.licenses_revert_renewal(
                    tenant=tenant,
                    extensions=[
                        licensing.Extension(
                            link.license_id, link.previous_expires_at, link.new_expires_at
                        )
                        for link in links
                    ],
                    actor=actor,
                    audit_data=audit_data,
                )
        except Conflict as exc:
            raise Conflict(
                _("Renewal order #%(id)s cannot be refunded: %(detail)s")
                % {"id": order.pk, "detail": exc.detail},
                code="REFUND_NOT_ALLOWED",
                extra=exc.extra,
            ) from exc
    order.status = Order.Status.REFUNDED
    order.refunded_at = at
    order.save(update_fields=["status", "refunded_at"])
    _record_decision(request, RefundRequest.Status.APPROVED, actor=actor, note=note, at=at)
    audit_record(
        tenant=tenant,
        action="order.refunded",
        target=order,
        actor=actor,
        data={"refund_request": request.pk, "amount": str(request.amount), "kind": order.kind},
    )
    return request


@transaction.atomic
def refund_reject(
    *,
    refund_request: RefundRequest | int,
    actor: Actor = None,
    note: str = "",
    at: dt.datetime | None = None,
) -> RefundRequest:
    at = at or timezone.now()
    request, order = _lock_request(refund_request)
    _record_decision(request, RefundRequest.Status.REJECTED, actor=actor, note=note, at=at)
    audit_record(
        tenant=order.tenant,
        action="refund.rejected",
        target=request,
        actor=actor,
        data={"order": order.pk, "note": request.decision_note},
    )
    return request
