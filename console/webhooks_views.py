"""The console's Webhooks page (R15), for owners and admins: endpoints (add, edit, enable
or disable, rotate the secret, ping, delete) and each endpoint's deliveries (retry).

Server-rendered, no script: every action is a small POST form. The rules are
console.webhooks'; a refusal is shown on the form."""

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.text import format_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from console import webhooks
from console.errors import ServiceError
from console.models import WebhookDelivery, WebhookEndpoint
from console.views import MANAGER_ROLES, form_errors_from, member_required

EVENT_CHOICES = [
    (webhooks.ALL_EVENTS, gettext_lazy("All events")),
    # Lazy: each page shows the labels in its own language, not the one at import.
    *((name, format_lazy("{} — {}", name, label)) for name, label in webhooks.EVENT_TYPES.items()),
]


class EndpointForm(forms.Form):
    url = forms.CharField(
        label=gettext_lazy("URL"),
        max_length=webhooks.MAX_URL_LENGTH,
        help_text=gettext_lazy("An https:// address of your receiver."),
    )
    events = forms.MultipleChoiceField(
        label=gettext_lazy("Events"),
        choices=EVENT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
    )

    def clean_events(self):
        events = self.cleaned_data["events"]
        return [webhooks.ALL_EVENTS] if webhooks.ALL_EVENTS in events else events


def _managers_only(request):
    if request.membership.role not in MANAGER_ROLES:
        return HttpResponseForbidden(_("Only owners and admins can manage webhooks."))
    return None


def _show_secret(request, endpoint: WebhookEndpoint, secret: str):
    # The full secret is shown in this response only (never stored in clear, so a redirect
    # could not show it again).
    response = render(
        request,
        "console/webhook_secret.html",
        {"endpoint": endpoint, "secret": secret},
    )
    response["Cache-Control"] = "no-store"
    return response


@member_required
@require_http_methods(["GET", "HEAD", "POST"])
def webhooks_page(request):
    if (refused := _managers_only(request)) is not None:
        return refused
    form = EndpointForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            endpoint, secret = webhooks.webhook_endpoint_create(
                tenant=request.tenant, actor=request.user, **form.cleaned_data
            )
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            return _show_secret(request, endpoint, secret)
    endpoints = list(webhooks.webhook_endpoints(request.tenant))
    for endpoint in endpoints:
        endpoint.secret_masked = webhooks.secret_masked(endpoint)
    context = {
        "endpoints": endpoints,
        "form": form,
        "limit": webhooks.MAX_ENDPOINTS_PER_TENANT,
    }
    return render(request, "console/webhooks.html", context)


@member_required
@require_http_methods(["GET", "HEAD", "POST"])
def webhook_detail(request, pk: int):
    if (refused := _managers_only(request)) is not None:
        return refused
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk, tenant=request.tenant)
    form = EndpointForm(
        request.POST or None, initial={"url": endpoint.url, "events": endpoint.events}
    )
    if request.method == "POST" and form.is_valid():
        try:
            webhooks.webhook_endpoint_update(
                tenant=request.tenant, endpoint=endpoint, actor=request.user, **form.cleaned_data
            )
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, _("The endpoint is saved."))
            return redirect("webhook-detail", pk=endpoint.pk)
    page = Paginator(webhooks.webhook_deliveries(request.tenant, endpoint), 50).get_page(
        request.GET.get("page")
    )
    endpoint.secret_masked = webhooks.secret_masked(endpoint)
    context = {"endpoint": endpoint, "form": form, "page": page}
    return render(request, "console/webhook_detail.html", context)


@member_required
@require_POST
def webhook_action(request, pk: int, action: str):
    if (refused := _managers_only(request)) is not None:
        return refused
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk, tenant=request.tenant)
    tenant, actor = request.tenant, request.user
    if action == "rotate":
        endpoint, secret = webhooks.webhook_endpoint_rotate_secret(
            tenant=tenant, endpoint=endpoint, actor=actor
        )
        return _show_secret(request, endpoint, secret)
    if action == "ping":
        webhooks.webhook_endpoint_ping(tenant=tenant, endpoint=endpoint, actor=actor)
        messages.success(request, _("A ping event is on its way."))
    elif action in ("enable", "disable"):
        webhooks.webhook_endpoint_update(
            tenant=tenant, endpoint=endpoint, actor=actor, enabled=action == "enable"
        )
        messages.success(request, _("The endpoint is saved."))
    elif action == "delete":
        webhooks.webhook_endpoint_delete(tenant=tenant, endpoint=endpoint, actor=actor)
        messages.success(request, _("The endpoint is deleted."))
        return redirect("webhooks")
    else:
        return HttpResponseForbidden(_("Unknown action."))
    return redirect("webhook-detail", pk=endpoint.pk)


@member_required
@require_POST
def webhook_delivery_retry(request, pk: int, delivery_id: int):
    if (refused := _managers_only(request)) is not None:
        return refused
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk, tenant=request.tenant)
    delivery = get_object_or_404(WebhookDelivery, pk=delivery_id, endpoint=endpoint)
    webhooks.webhook_delivery_retry(tenant=request.tenant, delivery=delivery, actor=request.user)
    messages.success(request, _("The delivery will be attempted again now."))
    return redirect("webhook-detail", pk=endpoint.pk)
