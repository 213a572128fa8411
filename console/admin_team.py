"""Staff see each tenant's team invitations and its extra notification recipients: read-only
(owners manage both on the console's pages, through console.team and console.notify_settings;
a change made here would skip their rules and their audit trail).

Who may look: `Reviewers` (they look after tenants: who was asked to join, who hears of what)
see both; `Billing` sees the recipients (who receives order and payment emails). Both tables
grow with the tenants, so they count and search as every changelist does (admin_paging)."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from console.admin_filters import ReadOnlyAdminMixin
from console.admin_paging import IndexedSearchMixin, LargeTablePaginator
from console.models import Invitation, NotificationRecipient


@admin.register(Invitation)
class InvitationAdmin(IndexedSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "email",
        "tenant",
        "role",
        "status",
        "invited_by",
        "created_at",
        "sent_at",
        "accepted_at",
    )
    list_filter = ("status", "role", "created_at")
    list_select_related = ("tenant", "invited_by")
    # The address as typed (any part of it); tenants on their own table first.
    search_fields = ("email", "tenant__name", "tenant__slug")
    search_help_text = _("Part of the invited address, or a tenant's name or slug.")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    paginator = LargeTablePaginator
    show_full_result_count = False
    # Not the nonce: with the signing key it makes the invitation's link.
    fields = (
        "tenant",
        "email",
        "role",
        "status",
        "invited_by",
        "created_at",
        "sent_at",
        "accepted_at",
        "accepted_by",
    )
    readonly_fields = fields


@admin.register(NotificationRecipient)
class NotificationRecipientAdmin(IndexedSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("email", "tenant", "kind", "language", "created_at")
    list_filter = ("kind", "language")
    list_select_related = ("tenant",)
    search_fields = ("email", "tenant__name", "tenant__slug")
    search_help_text = _("Part of the address, or a tenant's name or slug.")
    paginator = LargeTablePaginator
    show_full_result_count = False
    fields = ("tenant", "kind", "email", "language", "created_at")
    readonly_fields = fields
