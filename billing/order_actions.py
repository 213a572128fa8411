"""Order pages beyond buying: cancelling a pending order (owners and admins, confirmed
first), and renewing everything that expires in the next 30 days in one step.

"Renew everything" places renewal orders grouped by expiry date, because R4 refuses a
renewal paid after any of its licenses expired: each order's payment deadline is its
licenses' expiry, and one late group cannot spoil the others. A group over
MAX_RENEWAL_LICENSES is split. Licenses already in a renewal order pending payment are left
out, so the page never proposes to renew a license twice.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from billing import services
from billing.forms import idempotency_field, years_field
from billing.models import IdempotencyKey, Order, OrderLicense
from billing.pricing import order_total, unit_price_for
from console.errors import ServiceError
from console.models import Tenant
from console.pages import can_change, change_required, form_errors_from, form_key, member_required
from console.timeutils import business_date
from licensing.models import License

RENEW_WINDOW = dt.timedelta(days=30)


# --- cancelling -----------------------------------------------------------------------------


@member_required
@change_required
@require_http_methods(["GET", "HEAD", "POST"])
def order_cancel(request, order_id: int):
    order = get_object_or_404(Order, pk=order_id, tenant=request.tenant)
    back = reverse("order-detail", args=[order.pk])
    if order.status != Order.Status.PENDING_PAYMENT:
        messages.error(request, _("Only an order pending payment can be cancelled."))
        return redirect(back)
    if request.method == "POST":
        try:
            services.order_cancel(
                order=order, reason=_("Cancelled by the customer."), actor=request.user
            )
        except ServiceError as exc:
            messages.error(request, str(exc.detail))
        else:
            messages.success(request, _("Order #%(id)s is cancelled.") % {"id": order.pk})
        return redirect(back)
    if not can_change(request):
        return redirect(back)
    return render(
        request,
        "console/confirm.html",
        {
            "title": _("Cancel an order"),
            "question": _("Cancel order #%(id)s (%(total)s %(currency)s)?")
            % {"id": order.pk, "total": order.total, "currency": order.currency},
            "detail": _("Do not transfer money for a cancelled order."),
            "action": reverse("order-cancel", args=[order.pk]),
            "confirm_label": _("Cancel the order"),
            "cancel_url": back,
        },
    )


# --- renewing everything that expires soon ----------------------------------------------------


@dataclass
class PlannedOrder:
    expiry_date: dt.date
    deadline: dt.datetime
    license_ids: list[int]
    total: Decimal

    @property
    def count(self) -> int:
        return len(self.license_ids)


def renewal_plan(tenant: Tenant, *, years: int, at: dt.datetime) -> list[PlannedOrder]:
    """The renewal orders that renew every valid license of the tenant expiring within
    RENEW_WINDOW and not already in a renewal pending payment: one per expiry date (R4's
    deadline), split at MAX_RENEWAL_LICENSES. One query."""
    pending = OrderLicense.objects.filter(
        order__tenant=tenant,
        order__kind=Order.Kind.RENEWAL,
        order__status=Order.Status.PENDING_PAYMENT,
    ).values("license_id")
    rows = (
        License.objects.filter(tenant=tenant, expires_at__lte=at + RENEW_WINDOW)
        .valid_at(at)
        .exclude(pk__in=pending)
        .order_by("expires_at", "id")
        .values_list("id", "expires_at")
    )
    unit_price = unit_price_for(tenant)
    groups: dict[dt.date, tuple[dt.datetime, list[int]]] = {}
    for license_id, expires_at in rows:
        day = business_date(expires_at)
        deadline, ids = groups.setdefault(day, (expires_at, []))
        ids.append(license_id)
    plan = []
    limit = services.MAX_RENEWAL_LICENSES
    for day, (deadline, ids) in groups.items():
        for start in range(0, len(ids), limit):
            chunk = ids[start : start + limit]
            total = order_total(unit_price=unit_price, quantity=len(chunk), years=years)
            plan.append(PlannedOrder(day, deadline, chunk, total))
    return plan


class RenewExpiringForm(forms.Form):
    years = years_field()
    idempotency_key = idempotency_field()


def _placed_with(tenant: Tenant, key: str) -> list[int]:
    """Orders a earlier submit of this very form placed (each order's key is key:n)."""
    return list(
        IdempotencyKey.objects.filter(tenant=tenant, key__startswith=key + ":")
        .order_by("key")
        .values_list("order_id", flat=True)
    )


@member_required
@change_required
@require_http_methods(["GET", "HEAD", "POST"])
def renew_expiring(request):
    tenant = request.tenant
    now = timezone.now()
    if request.method == "POST":
        form = RenewExpiringForm(request.POST)
    else:
        form = RenewExpiringForm(
            request.GET or None, initial={"years": 1, "idempotency_key": form_key()}
        )
        if form.is_bound:
            # A GET with ?years= previews that many years; the key stays new.
            form.data = form.data.copy()
            form.data["idempotency_key"] = form_key()
    years = form.cleaned_data["years"] if form.is_bound and form.is_valid() else 1
    if request.method == "POST" and form.is_valid():
        key = form.cleaned_data["idempotency_key"]
        placed = _placed_with(tenant, key)
        if placed:
            # A double submit (or a reload that re-posts): the first one's orders stand.
            messages.info(request, _("These renewal orders are already placed."))
            return redirect("orders")
        plan = renewal_plan(tenant, years=years, at=now)
        if not plan:
            form.add_error(None, _("No license expires in the next 30 days: nothing to renew."))
        else:
            orders = _place(request, form, plan, key=key, years=years)
            if orders is not None:
                messages.success(
                    request,
                    ngettext(
                        "%(n)d renewal order is placed; pay it before its deadline.",
                        "%(n)d renewal orders are placed; pay each before its deadline.",
                        len(orders),
                    )
                    % {"n": len(orders)},
                )
                if len(orders) == 1:
                    return redirect("order-detail", order_id=orders[0].pk)
                return redirect("orders")
    plan = renewal_plan(tenant, years=years, at=now)
    context = {
        "form": form,
        "plan": plan,
        "years": years,
        "license_total": sum(p.count for p in plan),
        "grand_total": sum((p.total for p in plan), Decimal("0.00")),
        "can_change": can_change(request),
        "max_per_order": services.MAX_RENEWAL_LICENSES,
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "billing/renew_expiring.html", context, status=status)


def _place(request, form, plan: list[PlannedOrder], *, key: str, years: int):
    """Every planned order, or none: one transaction, each order under its own derived
    Idempotency-Key (key:0, key:1, …), so two submits of one form racing each other make
    the orders once."""
    tenant = request.tenant
    orders = []
    try:
        with transaction.atomic():
            for n, planned in enumerate(plan):
                ids = planned.license_ids

                def create(ids=ids):
                    return services.order_create(
                        tenant=tenant,
                        kind=Order.Kind.RENEWAL,
                        years=years,
                        license_ids=ids,
                        actor=request.user,
                    )

                order, _created = services.order_create_idempotent(
                    tenant=tenant,
                    idempotency_key=f"{key}:{n}",
                    body={"kind": Order.Kind.RENEWAL, "licenses": ids, "years": years},
                    create=create,
                    actor=request.user,
                )
                orders.append(order)
    except ServiceError as exc:
        form_errors_from(form, exc)
        return None
    return orders
