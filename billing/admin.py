"""Staff's billing admin: orders, payment confirmation, payments, refunds, tenant totals.

Nothing here changes money or licenses by itself: every button calls billing.services, the
same code the commands run, so the admin, `confirmpayment` and `grantlicenses` agree.
"""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from billing import selectors, services
from billing.models import Order, OrderLicense, Payment, RefundRequest, TenantTotals
from billing.staff_services import order_cancel_by_staff
from console.admin_filters import ReadOnlyAdminMixin
from console.admin_paging import IndexedSearchMixin, LargeTablePaginator, money
from console.admin_reasons import StaffReasonForm, is_submitted, reason_page
from console.errors import ServiceError

LICENSE_IDS_SHOWN = 50
# Orders and refunds change only through the buttons below (services), never by form edits.
READ_ONLY_FORM = {
    "show_save": False,
    "show_save_and_continue": False,
    "show_save_and_add_another": False,
    "show_delete": False,
}


class ReferenceForm(forms.Form):
    reference = forms.CharField(
        label=gettext_lazy("Bank reference"),
        max_length=services.MAX_REFERENCE_LENGTH,
        help_text=gettext_lazy("The transfer's reference as the bank statement shows it."),
    )


class DecisionForm(forms.Form):
    note = forms.CharField(
        label=gettext_lazy("Note"),
        max_length=500,
        required=False,
        help_text=gettext_lazy("Optional; recorded with the decision."),
    )


class PaymentInline(ReadOnlyAdminMixin, admin.StackedInline):
    model = Payment
    extra = 0
    can_delete = False
    fields = ["reference", "amount", "currency", "confirmed_by", "confirmed_at"]
    readonly_fields = fields


class RefundRequestInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = RefundRequest
    extra = 0
    can_delete = False
    fields = ["status", "reason", "amount", "requested_by", "requested_at", "decided_by"]
    readonly_fields = fields
    show_change_link = True


@admin.register(Order)
class OrderAdmin(IndexedSearchMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "transfer_reference",
        "tenant",
        "kind",
        "channel",
        "quantity",
        "years",
        "unit_price",
        "total",
        "currency",
        "status",
        "created_at",
        "paid_at",
        "payment_reference",
    ]
    # A tenant's orders: search its name or slug, or its "orders" link in tenant totals
    # (?tenant__id__exact=); a filter of every tenant would scan the orders for their keys.
    list_filter = ["status", "kind", "channel"]
    paginator = LargeTablePaginator
    show_full_result_count = False
    search_fields = [
        "=id",
        "=transfer_reference",
        "tenant__name",
        "tenant__slug",
        "payment__reference",
    ]
    list_select_related = ["tenant", "payment"]
    date_hierarchy = "created_at"
    actions = ["confirm_payment", "cancel_orders"]
    inlines = [PaymentInline, RefundRequestInline]
    fields = [
        "tenant",
        "kind",
        "channel",
        "status",
        "quantity",
        "years",
        "unit_price",
        "total",
        "currency",
        "license_list",
        "created_by",
        "created_at",
        "paid_at",
        "cancelled_at",
        "cancel_reason",
        "refunded_at",
        "refundable_now",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        # Orders come from customers (API) or `grantlicenses`, priced by the service.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_confirm_payment_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("billing.confirm_payment")

    def has_cancel_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("billing.cancel_order")

    @admin.display(description=gettext_lazy("payment reference"), ordering="payment__reference")
    def payment_reference(self, order):
        payment = getattr(order, "payment", None)
        return payment.reference if payment else "—"

    @admin.display(description=gettext_lazy("licenses"))
    def license_list(self, order):
        # A grant can hold 100,000 licenses: show the first ones and the count, not an inline.
        ids = list(
            OrderLicense.objects.filter(order=order)
            .order_by("license_id")
            .values_list("license_id", flat=True)[:LICENSE_IDS_SHOWN]
        )
        if not ids:
            return "—"
        shown = ", ".join(f"L-{i}" for i in ids)
        more = order.quantity - len(ids)
        if more > 0:
            return _("%(ids)s … and %(more)d more") % {"ids": shown, "more": more}
        return shown

    @admin.display(description=gettext_lazy("refundable now"))
    def refundable_now(self, order):
        if order.status != Order.Status.PAID:
            return "—"
        ok, why = services.order_refundable(order=order)
        return _("Yes") if ok else why

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<int:object_id>/confirm-payment/",
                self.admin_site.admin_view(self.confirm_payment_view),
                name="{}_{}_confirm_payment".format(*info),
            ),
            path(
                "<int:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="{}_{}_cancel".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**READ_ONLY_FORM, **(extra_context or {})}
        order = Order.objects.filter(pk=object_id).first()
        if order is not None and order.status == Order.Status.PENDING_PAYMENT:
            if self.has_confirm_payment_permission(request):
                extra_context["confirm_payment_url"] = reverse(
                    "admin:billing_order_confirm_payment", args=[order.pk]
                )
            if self.has_cancel_permission(request):
                extra_context["cancel_url"] = reverse("admin:billing_order_cancel", args=[order.pk])
        return super().change_view(request, object_id, form_url, extra_context)

    change_form_template = "billing/admin/order_change_form.html"

    def _confirm(self, request, order, reference: str) -> bool:
        try:
            result = services.order_confirm_payment(
                order=order.pk, reference=reference, actor=request.user
            )
        except ServiceError as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return False
        self.message_user(
            request,
            _("Order #%(id)s paid (reference %(ref)s): %(n)d licenses %(what)s.")
            % {
                "id": order.pk,
                "ref": result.payment.reference,
                "n": len(result.license_ids),
                "what": _("issued") if order.kind == Order.Kind.NEW else _("renewed"),
            },
            messages.SUCCESS,
        )
        return True

    def _reference_page(self, request, orders, form, *, action: bool):
        context = {
            **self.admin_site.each_context(request),
            "title": _("Confirm payment"),
            "opts": self.opts,
            "orders": orders,
            "form": form,
            "is_action": action,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "billing/admin/confirm_payment.html", context)

    @admin.action(description=gettext_lazy("Confirm payment…"), permissions=["confirm_payment"])
    def confirm_payment(self, request, queryset):
        """Asks for the bank reference on an intermediate page, then confirms each order."""
        orders = list(queryset.select_related("tenant").order_by("id"))
        if "apply" in request.POST:
            form = ReferenceForm(request.POST)
            if form.is_valid():
                for order in orders:
                    self._confirm(request, order, form.cleaned_data["reference"])
                return None
        else:
            form = ReferenceForm()
        return self._reference_page(request, orders, form, action=True)

    def confirm_payment_view(self, request, object_id: int):
        if not self.has_confirm_payment_permission(request):
            raise PermissionDenied
        order = get_object_or_404(Order.objects.select_related("tenant"), pk=object_id)
        change_url = reverse("admin:billing_order_change", args=[order.pk])
        if request.method == "POST":
            form = ReferenceForm(request.POST)
            if form.is_valid():
                self._confirm(request, order, form.cleaned_data["reference"])
                return HttpResponseRedirect(change_url)
        else:
            form = ReferenceForm()
        return self._reference_page(request, [order], form, action=False)

    # --- cancelling, with a reason the customer reads (R13) --------------------------------

    def _cancel_form(self, request) -> StaffReasonForm:
        return StaffReasonForm(
            request.POST if is_submitted(request) else None,
            reason_required=False,
            help_text=_(
                "Optional. Sent to the tenant's owners and admins and kept in the audit trail."
            ),
        )

    def _cancel(self, request, order: Order, reason: str) -> bool:
        try:
            order_cancel_by_staff(order=order.pk, actor=request.user, reason=reason)
        except ServiceError as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return False
        self.message_user(
            request, _("Order #%(id)s cancelled.") % {"id": order.pk}, messages.SUCCESS
        )
        return True

    def _cancel_page(self, request, orders, form, *, action: str | None):
        return reason_page(
            self,
            request,
            objects=orders,
            form=form,
            title=_("Cancel orders"),
            intro=_(
                "Only an order pending payment can be cancelled. The tenant's owners and "
                "admins are told by email, with the reason if given."
            ),
            submit_label=_("Cancel the orders"),
            action=action,
            cancel_url=reverse("admin:billing_order_changelist"),
        )

    @admin.action(
        description=gettext_lazy("Cancel orders pending payment…"), permissions=["cancel"]
    )
    def cancel_orders(self, request, queryset):
        form = self._cancel_form(request)
        orders = list(queryset.select_related("tenant").order_by("id"))
        if form.is_bound and form.is_valid():
            for order in orders:
                self._cancel(request, order, form.cleaned_data["reason"])
            return None
        return self._cancel_page(request, orders, form, action="cancel_orders")

    def cancel_view(self, request, object_id: int):
        """The change page's button: the reason page for one order."""
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        order = get_object_or_404(Order.objects.select_related("tenant"), pk=object_id)
        form = self._cancel_form(request)
        if form.is_bound and form.is_valid():
            self._cancel(request, order, form.cleaned_data["reason"])
            return HttpResponseRedirect(reverse("admin:billing_order_change", args=[order.pk]))
        return self._cancel_page(request, [order], form, action=None)


@admin.register(Payment)
class PaymentAdmin(IndexedSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: a payment exists only through a confirmation."""

    list_display = ["id", "order", "tenant", "reference", "amount", "currency", "confirmed_by"]
    list_display += ["confirmed_at"]
    list_filter = ["order__kind"]
    search_fields = ["reference", "=order__id", "order__tenant__name", "order__tenant__slug"]
    list_select_related = ["order__tenant"]
    date_hierarchy = "confirmed_at"
    paginator = LargeTablePaginator
    show_full_result_count = False

    @admin.display(description=gettext_lazy("tenant"), ordering="order__tenant__name")
    def tenant(self, payment):
        return payment.order.tenant


@admin.register(RefundRequest)
class RefundRequestAdmin(IndexedSearchMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "order",
        "tenant",
        "kind",
        "status",
        "amount",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
    ]
    list_filter = ["status", "order__kind"]
    search_fields = ["=id", "=order__id", "order__tenant__name", "order__tenant__slug"]
    list_select_related = ["order__tenant"]
    paginator = LargeTablePaginator
    show_full_result_count = False
    actions = ["approve_refunds", "reject_refunds"]
    fields = [
        "order",
        "tenant",
        "kind",
        "status",
        "amount",
        "reason",
        "requested_by",
        "requested_at",
        "refundable_now",
        "order_licenses",
        "decided_by",
        "decided_at",
        "decision_note",
    ]
    readonly_fields = fields
    change_form_template = "billing/admin/refundrequest_change_form.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_decide_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("billing.decide_refund")

    @admin.display(description=gettext_lazy("tenant"), ordering="order__tenant__name")
    def tenant(self, refund):
        return refund.order.tenant

    @admin.display(description=gettext_lazy("kind"), ordering="order__kind")
    def kind(self, refund):
        return refund.order.get_kind_display()

    @admin.display(description=gettext_lazy("refundable now"))
    def refundable_now(self, refund):
        if refund.status != RefundRequest.Status.REQUESTED:
            return "—"
        ok, why = services.order_refundable(order=refund.order)
        return _("Yes") if ok else why

    @admin.display(description=gettext_lazy("licenses"))
    def order_licenses(self, refund):
        links = (
            OrderLicense.objects.filter(order=refund.order)
            .select_related("license")
            .order_by("license_id")[:LICENSE_IDS_SHOWN]
        )
        rows = [
            (
                f"L-{link.license_id}",
                link.license.get_status_display(),
                link.license.first_served_at or "—",
                link.previous_expires_at or "—",
                link.new_expires_at or "—",
            )
            for link in links
        ]
        if not rows:
            return "—"
        header = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            _("license"),
            _("status"),
            _("first served"),
            _("expiry before renewal"),
            _("expiry after renewal"),
        )
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
        )
        return format_html("<table>{}{}</table>", header, body)

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/approve/",
                view(self.decide_view),
                {"approve": True},
                name="{}_{}_approve".format(*info),
            ),
            path(
                "<int:object_id>/reject/",
                view(self.decide_view),
                {"approve": False},
                name="{}_{}_reject".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {**READ_ONLY_FORM, **(extra_context or {})}
        refund = RefundRequest.objects.filter(pk=object_id).first()
        if (
            refund is not None
            and refund.status == RefundRequest.Status.REQUESTED
            and self.has_decide_permission(request)
        ):
            extra_context["approve_url"] = reverse(
                "admin:billing_refundrequest_approve", args=[refund.pk]
            )
            extra_context["reject_url"] = reverse(
                "admin:billing_refundrequest_reject", args=[refund.pk]
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def _decide(self, request, refund: RefundRequest, *, approve: bool, note: str = "") -> bool:
        service = services.refund_approve if approve else services.refund_reject
        try:
            service(refund_request=refund.pk, actor=request.user, note=note)
        except ServiceError as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return False
        if approve:
            text = _("Refund R-%(id)s approved: order #%(order)s refunded (%(amount)s).")
        else:
            text = _("Refund R-%(id)s rejected.")
        self.message_user(
            request,
            text % {"id": refund.pk, "order": refund.order_id, "amount": refund.amount},
            messages.SUCCESS,
        )
        return True

    def decide_view(self, request, object_id: int, approve: bool):
        """GET: a confirmation page with an optional note; POST: approve or reject."""
        if not self.has_decide_permission(request):
            raise PermissionDenied
        refund = get_object_or_404(
            RefundRequest.objects.select_related("order__tenant"), pk=object_id
        )
        change_url = reverse("admin:billing_refundrequest_change", args=[refund.pk])
        data = request.POST if request.method == "POST" else None
        form = DecisionForm(data) if approve else self._reject_form(data)
        if form.is_bound and form.is_valid():
            note = form.cleaned_data["note" if approve else "reason"]
            self._decide(request, refund, approve=approve, note=note)
            return HttpResponseRedirect(change_url)
        refundable, refusal = services.order_refundable(order=refund.order)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Approve refund") if approve else _("Reject refund"),
            "opts": self.opts,
            "refund": refund,
            "form": form,
            "approve": approve,
            "refundable": refundable,
            "refusal": refusal,
        }
        return TemplateResponse(request, "billing/admin/refund_decide.html", context)

    def _reject_form(self, data) -> StaffReasonForm:
        return StaffReasonForm(
            data,
            reason_required=True,
            help_text=_("Required. Sent to the customer and kept in the audit trail."),
        )

    @admin.action(description=gettext_lazy("Approve selected refunds"), permissions=["decide"])
    def approve_refunds(self, request, queryset):
        for refund in queryset.order_by("id"):
            self._decide(request, refund, approve=True)

    @admin.action(description=gettext_lazy("Reject selected refunds…"), permissions=["decide"])
    def reject_refunds(self, request, queryset):
        """Asks for the reason (required: the customer reads it) on an intermediate page."""
        form = self._reject_form(request.POST if is_submitted(request) else None)
        refunds = list(queryset.select_related("order__tenant").order_by("id"))
        if form.is_bound and form.is_valid():
            for refund in refunds:
                self._decide(request, refund, approve=False, note=form.cleaned_data["reason"])
            return None
        return reason_page(
            self,
            request,
            objects=refunds,
            form=form,
            title=_("Reject refund requests"),
            intro=_("The customers receive the reason by email."),
            submit_label=_("Reject refund"),
            action="reject_refunds",
            cancel_url=reverse("admin:billing_refundrequest_changelist"),
        )


@admin.register(TenantTotals)
class TenantTotalsAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Totals per tenant: paid, refunded and pending order totals (CNY)."""

    list_display = [
        "name",
        "slug",
        "status",
        "contract_unit_price",
        "paid_orders",
        "paid_total",
        "refunded_total",
        "pending_total",
        "orders_link",
    ]
    list_filter = ["status"]
    search_fields = ["name", "slug"]
    ordering = ["name"]
    # Each count groups every order by tenant: count once, not twice.
    paginator = LargeTablePaginator
    show_full_result_count = False

    def get_queryset(self, request):
        return selectors.tenants_with_totals(super().get_queryset(request))

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        # A grand total line under the table: the sum of what the filtered rows show.
        if hasattr(response, "context_data") and "cl" in response.context_data:
            qs = response.context_data["cl"].queryset
            response.context_data["grand_total"] = selectors.totals_sum(qs)
        return response

    change_list_template = "billing/admin/tenanttotals_change_list.html"

    @admin.display(description=gettext_lazy("paid orders"), ordering="paid_orders")
    def paid_orders(self, tenant):
        return tenant.paid_orders

    @admin.display(description=gettext_lazy("paid total"), ordering="paid_total")
    def paid_total(self, tenant):
        return money(tenant.paid_total)

    @admin.display(description=gettext_lazy("refunded total"), ordering="refunded_total")
    def refunded_total(self, tenant):
        return money(tenant.refunded_total)

    @admin.display(description=gettext_lazy("pending total"), ordering="pending_total")
    def pending_total(self, tenant):
        return money(tenant.pending_total)

    @admin.display(description=gettext_lazy("orders"))
    def orders_link(self, tenant):
        url = reverse("admin:billing_order_changelist") + f"?tenant__id__exact={tenant.pk}"
        return format_html('<a href="{}">{}</a>', url, _("orders"))
