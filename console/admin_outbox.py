"""Staff see the email outbox (R13): what is pending, sent, or failed with its error, and
may retry now. Read-only otherwise: emails change only through console.outbox."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from console.admin_filters import ReadOnlyAdminMixin
from console.models import OutboundEmail
from console.outbox import outbound_emails_retry_now


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "to",
        "subject",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "next_attempt_at",
        "sent_at",
    )
    list_filter = ("status", "language")
    # An exact address (case-insensitive): outbound_email_to_idx serves it on a big table.
    search_fields = ("=to",)
    search_help_text = _("An exact recipient address.")
    ordering = ("-created_at", "-id")
    # The table grows by every email ever sent: no full count for the paginator's total.
    show_full_result_count = False
    list_per_page = 50
    actions = ("retry_now",)
    fields = (
        "to",
        "language",
        "template",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "lease_until",
        "last_error",
        "created_at",
        "sent_at",
        "message_id",
        "from_email",
        "reply_to",
        "dedup_key",
        "body_text",
        "body_html",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        # The list shows no body: do not read the (large) bodies of fifty emails for it.
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("_changelist"):
            queryset = queryset.defer("body_text", "body_html")
        return queryset

    def has_change_permission(self, request, obj=None):
        # The changelist's action needs a "change"-level right; the form stays read-only
        # (readonly_fields), so viewing an email is all staff can do besides retrying.
        return request.user.has_perm("console.change_outboundemail")

    @admin.action(description=_("Retry now"), permissions=["change"])
    def retry_now(self, request, queryset: QuerySet[OutboundEmail]):
        count = outbound_emails_retry_now(emails=queryset)
        self.message_user(
            request,
            ngettext(
                "%(count)d email will be sent at the next delivery.",
                "%(count)d emails will be sent at the next delivery.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )
