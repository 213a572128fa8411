"""Staff see webhook deliveries (R15): each delivery's status, its last answer and the
history of its latest attempts. Read-only: deliveries change only through console.webhooks
(the workers, and the customer's retry on the console's webhook page). No group holds the
view permission: superusers, or staff an operator gives it, when a customer asks why
their receiver got nothing."""

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from console.admin_filters import ReadOnlyAdminMixin
from console.admin_paging import IndexedSearchMixin, LargeTablePaginator
from console.models import WebhookDelivery


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(IndexedSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "event_type",
        "tenant",
        "endpoint_url",
        "status",
        "attempts",
        "last_attempt_at",
        "response_status",
        "created_at",
    )
    list_filter = ("status",)
    list_select_related = ("event", "endpoint__tenant")
    # Endpoints (few) first, then their deliveries; the delivery's own id as a number.
    search_fields = ("=id", "endpoint__url", "endpoint__tenant__name", "endpoint__tenant__slug")
    search_help_text = _("A delivery's number, part of an endpoint's URL, or a tenant's name.")
    ordering = ("-created_at", "-id")
    paginator = LargeTablePaginator
    show_full_result_count = False
    fields = (
        "event",
        "endpoint",
        "status",
        "attempts",
        "next_attempt_at",
        "last_attempt_at",
        "response_status",
        "duration_ms",
        "last_error",
        "response_body",
        "attempt_history_table",
        "created_at",
        "delivered_at",
    )
    readonly_fields = fields

    @admin.display(description=_("type"), ordering="event__type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.display(description=_("tenant"))
    def tenant(self, obj: WebhookDelivery) -> str:
        return str(obj.endpoint.tenant)

    @admin.display(description=_("endpoint"))
    def endpoint_url(self, obj: WebhookDelivery) -> str:
        return obj.endpoint.url

    @admin.display(description=_("attempt history"))
    def attempt_history_table(self, obj: WebhookDelivery) -> str:
        rows = obj.attempt_history
        if not rows:
            return "—"
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                "<li>{} · {} · {} ms{}</li>",
                (
                    (
                        row["at"].isoformat() if row["at"] else "?",
                        f"HTTP {row['status']}" if row.get("status") else _("no answer"),
                        row.get("duration_ms", ""),
                        f" · {row['error']}" if row.get("error") else "",
                    )
                    for row in rows
                ),
            ),
        )
