"""Refunds (R10): a customer asks, staff approve or reject in the admin.

During the beta an order is refundable only while it has not provided service: a
new-licenses order while none of its licenses has served, a renewal before its renewed
period begins. Each decision is one transaction that locks the order, then the request,
then (inside licensing) the licenses, and checks R10 again under those locks.
"""

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import Order, OrderLicense, RefundRequest
from billing.services.common import actor_label, actor_user, lock_order
from billing.services.notifications import refund_decided_notify, refund_request_notify_staff
from console.errors import Conflict, InvalidInput, NotFound
from console.models import Tenant
from console.services import Actor, audit_record
from console.webhooks import webhook_event_record
from licensing import services as licensing
from licensing.models import License


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
    order = lock_order(order, tenant=tenant)
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
    # R13: Billing hears of it, stored with the request (sent only if it commits).
    refund_request_notify_staff(request)
    return request


def _lock_request(refund_request: RefundRequest | int) -> tuple[RefundRequest, Order]:
    request_id = refund_request.pk if isinstance(refund_request, RefundRequest) else refund_request
    order_id = RefundRequest.objects.filter(pk=request_id).values_list("order_id", flat=True)
    if not order_id:
        raise NotFound(_("Refund request %(id)s does not exist.") % {"id": request_id})
    order = lock_order(order_id[0])
    request = RefundRequest.objects.select_for_update().get(pk=request_id)
    if request.status != RefundRequest.Status.REQUESTED:
        raise Conflict(
            _("Refund request R-%(id)s was already %(status)s.")
            % {"id": request.pk, "status": request.get_status_display()},
            code="REFUND_ALREADY_DECIDED",
        )
    return request, order


def _record_decision(
    request: RefundRequest, status: str, *, actor: Actor, note: str, at: dt.datetime
) -> None:
    request.status = status
    request.decided_by_user = actor_user(actor)
    request.decided_by = actor_label(actor)
    request.decided_at = at
    request.decision_note = (note or "")[:500]
    request.save(
        update_fields=["status", "decided_by_user", "decided_by", "decided_at", "decision_note"]
    )


@transaction.atomic
def refund_approve(
    *,
    refund_request: RefundRequest | int,
    actor: Actor = None,
    note: str = "",
    at: dt.datetime | None = None,
) -> RefundRequest:
    """Staff approve a refund: R10 is checked again under the locks, then the order is
    refunded — its new licenses refunded and unbound, or its renewal's extension taken
    back. A refusal leaves the request open for staff to reject.

    One transaction from the first lock to the last write: the locks (order, request,
    licenses) are held until the decision commits, and a refusal found half-way (a renewal
    whose extension cannot be taken back) rolls everything back."""
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
    refund_decided_notify(request, order)
    webhook_event_record(
        tenant=tenant,
        type="order.refunded",
        data={
            "order": order.pk,
            "kind": order.kind,
            "amount": str(request.amount),
            "refunded_at": at,
            "licenses": license_ids,
        },
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
        data={"order": order.pk, "reason": request.decision_note},
    )
    # R13: the customer hears of the decision with staff's reason, once it commits.
    refund_decided_notify(request, order)
    return request
