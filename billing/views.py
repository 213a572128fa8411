"""Billing pages: the printable receipt of a paid order, and the customer's order pages —
the order list and detail (bank transfer instructions, refund request), buying licenses
with the quote calculator, and the renewal of licenses selected on the license list."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from billing import selectors, services
from billing.forms import (
    QUOTE_ROWS,
    OrderFilterForm,
    OrderNewForm,
    QuoteForm,
    RefundRequestForm,
    RenewForm,
)
from billing.models import Order, RefundRequest
from billing.pricing import unit_price_for
from billing.services.notifications import order_payment_deadline, payee, seller
from console.errors import ServiceError
from console.pages import can_change, change_required, form_errors_from, form_key, member_required
from devices.models import Camera, FieldDevice
from licensing.views import license_list_page


@require_safe
@login_required
def order_receipt(request, order_id: int):
    """A paid order's receipt, for members of its tenant; anyone else gets a 404."""
    order = selectors.order_for_receipt(request.user, order_id)
    if order is None:
        raise Http404
    lines = selectors.receipt_lines(order)
    return render(
        request,
        "billing/receipt.html",
        {
            "order": order,
            "payment": getattr(order, "payment", None),
            "lines": lines,
            "payee": payee(),
            "seller": seller(),
        },
    )


# --- the customer's order pages -------------------------------------------------------------
#
# Orders are created through billing.services.order_create_idempotent with a key generated
# for each rendered form (console.pages.form_key), so a double submit finds the first order.
# Only owners and admins of an active tenant buy, renew or ask for refunds (R9); everyone
# else sees these pages read-only, and their POSTs are a 403.

ORDERS_PER_PAGE = 50
LICENSE_IDS_SHOWN = 50


def _order_or_404(request, order_id: int) -> Order:
    # Tenant-scoped: another tenant's order is a 404 like a missing one.
    order = selectors.order_get(request.tenant, order_id)
    if order is None:
        raise Http404
    return order


def _create_order(request, form, *, body: dict, **order_kwargs) -> Order | None:
    """The order the form asks for, created once per form key; None with the refusal on
    the form."""
    tenant = request.tenant
    try:
        order, _created = services.order_create_idempotent(
            tenant=tenant,
            idempotency_key=form.cleaned_data["idempotency_key"],
            body=body,
            create=lambda: services.order_create(tenant=tenant, actor=request.user, **order_kwargs),
            actor=request.user,
        )
    except ServiceError as exc:
        if exc.code == "IDEMPOTENCY_KEY_REUSED":
            # The same rendered form came back with other values (the back button): the
            # page is rendered anew, with a new key, for the user to check and resubmit.
            form.add_error(
                None,
                _(
                    "This form was already used to place order #%(id)s. Check your choice "
                    "and submit again."
                )
                % {"id": exc.extra.get("order")},
            )
        else:
            form_errors_from(form, exc)
        return None
    return order


@require_safe
@member_required
def order_list(request):
    filters = OrderFilterForm(request.GET or None)
    data = filters.cleaned_data if filters.is_bound and filters.is_valid() else {}
    orders = selectors.order_search(
        request.tenant,
        q=data.get("q") or "",
        status=data.get("status") or "",
        kind=data.get("kind") or "",
        sort=data.get("sort") or "-created",
    )
    page = Paginator(orders, ORDERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/order_list.html",
        {
            "page": page,
            "filters": filters,
            "filtered": any(data.get(k) for k in ("q", "status", "kind")),
            "can_change": can_change(request),
        },
    )


def _order_page(request, order: Order, *, refund_form: RefundRequestForm | None = None):
    refundable, refusal = False, ""
    if order.status == Order.Status.PAID:
        refundable, refusal = services.order_refundable(order=order)
    refund_requests = list(order.refund_requests.all())
    open_request = any(r.status == RefundRequest.Status.REQUESTED for r in refund_requests)
    may_request = refundable and not open_request and can_change(request)
    if refund_form is None and may_request:
        refund_form = RefundRequestForm()
    license_ids = [link.license_id for link in order.order_licenses.all()]
    pending = order.status == Order.Status.PENDING_PAYMENT
    context = {
        "order": order,
        "payee": payee() if pending else None,
        "deadline": order_payment_deadline(order) if pending else None,
        "payment": getattr(order, "payment", None),
        "license_ids": license_ids[:LICENSE_IDS_SHOWN],
        "more_licenses": max(0, len(license_ids) - LICENSE_IDS_SHOWN),
        "refund_requests": refund_requests,
        "refundable": refundable,
        "refusal": refusal,
        "open_request": open_request,
        "refund_form": refund_form if (may_request or refund_form is not None) else None,
        "can_change": can_change(request),
    }
    return render(request, "billing/order_detail.html", context)


@require_safe
@member_required
def order_detail(request, order_id: int):
    order = selectors.order_get(request.tenant, order_id)
    if order is None:
        # A link from an email names an order of one tenant; a member of several may be
        # working in another. Switch to the order's tenant when the user belongs to it
        # (the choice console.views.current_membership reads), else it is a 404.
        tenant_id = selectors.order_tenant_of_member(request.user, order_id)
        if tenant_id is None or tenant_id == request.tenant.pk:
            raise Http404
        request.session["tenant_id"] = tenant_id
        return redirect("order-detail", order_id=order_id)
    return _order_page(request, order)


@require_POST
@member_required
@change_required
def order_refund(request, order_id: int):
    """R10: ask for an order's money back; refused at once when R10 already forbids it."""
    order = _order_or_404(request, order_id)
    form = RefundRequestForm(request.POST)
    if form.is_valid():
        try:
            services.order_refund_request(
                tenant=request.tenant,
                order=order.pk,
                reason=form.cleaned_data["reason"],
                actor=request.user,
            )
        except ServiceError as exc:
            messages.error(request, str(exc.detail))
        else:
            messages.success(
                request,
                _("Your refund request for order #%(id)s is sent; our staff will decide on it.")
                % {"id": order.pk},
            )
        return redirect("order-detail", order_id=order.pk)
    return _order_page(request, order, refund_form=form)


def _quote_form(request) -> tuple[QuoteForm, FieldDevice | None]:
    """The calculator's input: the query string, or a device's enabled cameras when one is
    picked to prefill it (R1 uses the enabled cameras and the device's k)."""
    tenant = request.tenant
    device_id = request.GET.get("device", "")
    if device_id:
        if not device_id.isdigit():
            raise Http404
        device = get_object_or_404(
            FieldDevice.objects.prefetch_related(
                Prefetch("cameras", queryset=Camera.objects.filter(enabled=True).order_by("id"))
            ),
            pk=int(device_id),
            tenant=tenant,
        )
        data = {"years": request.GET.get("years") or "1"}
        if device.max_concurrent_streams:
            data["max_concurrent_streams"] = str(device.max_concurrent_streams)
        for i, camera in enumerate(device.cameras.all()[:QUOTE_ROWS], start=1):
            data[f"w{i}"], data[f"h{i}"] = str(camera.width), str(camera.height)
        return QuoteForm(data), device
    keys = {"years", "max_concurrent_streams"} | {
        f"{side}{i}" for side in "wh" for i in range(1, QUOTE_ROWS + 1)
    }
    if keys & set(request.GET):
        return QuoteForm(request.GET), None
    return QuoteForm(), None


@require_http_methods(["GET", "HEAD", "POST"])
@member_required
@change_required
def order_new(request):
    """Buy licenses: a quote calculator (R1 breakdown and R2 price), then an order for a
    quantity and years (prefilled from the quote) pending payment by bank transfer."""
    tenant = request.tenant
    quote_form, device = _quote_form(request)
    quote = None
    if quote_form.is_bound and quote_form.is_valid():
        quote = selectors.quote_compute(
            tenant,
            cameras=quote_form.cameras,
            max_concurrent_streams=quote_form.cleaned_data["max_concurrent_streams"],
            years=quote_form.cleaned_data["years"],
        )
    order_form = None
    if can_change(request):
        if request.method == "POST":
            order_form = OrderNewForm(request.POST)
            if order_form.is_valid():
                quantity = order_form.cleaned_data["quantity"]
                years = order_form.cleaned_data["years"]
                order = _create_order(
                    request,
                    order_form,
                    body={"kind": Order.Kind.NEW, "quantity": quantity, "years": years},
                    kind=Order.Kind.NEW,
                    quantity=quantity,
                    years=years,
                )
                if order is not None:
                    messages.success(
                        request,
                        _("Order #%(id)s is placed. Pay it by bank transfer as shown below.")
                        % {"id": order.pk},
                    )
                    return redirect("order-detail", order_id=order.pk)
        else:
            order_form = OrderNewForm(
                initial={
                    "quantity": quote.licenses if quote else 1,
                    "years": quote.years if quote else 1,
                }
            )
    context = {
        "quote_form": quote_form,
        "quote": quote,
        "device": device,
        "devices": FieldDevice.objects.filter(tenant=tenant).order_by("serial"),
        "order_form": order_form,
        "order_key": form_key(),
        "unit_price": unit_price_for(tenant),
        "currency": settings.CURRENCY,
        "can_change": can_change(request),
    }
    return render(request, "billing/order_new.html", context)


@require_POST
@member_required
@change_required
def order_renew(request):
    """R4: the licenses selected on the license list, renewed by N years — a renewal order
    pending payment. Bad input renders the license list again with the errors."""
    form = RenewForm(request.POST, tenant=request.tenant)
    if form.is_valid():
        ids = sorted(lic.pk for lic in form.cleaned_data["licenses"])
        years = form.cleaned_data["years"]
        order = _create_order(
            request,
            form,
            body={"kind": Order.Kind.RENEWAL, "licenses": ids, "years": years},
            kind=Order.Kind.RENEWAL,
            license_ids=ids,
            years=years,
        )
        if order is not None:
            messages.success(
                request,
                _(
                    "Renewal order #%(id)s is placed. The licenses are extended once it is "
                    "paid, provided they are still valid then."
                )
                % {"id": order.pk},
            )
            return redirect("order-detail", order_id=order.pk)
    return license_list_page(request, renew_form=form)
