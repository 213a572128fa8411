"""Staff admin for console models: users, tenants, memberships, API keys, the audit trail.

State changes that the product audits go through console.services (suspend/activate, API
keys); the audit trail itself is read-only here.
"""

import importlib
import importlib.util

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from console.admin_filters import NullFilter, ReadOnlyAdminMixin
from console.admin_paging import IndexedSearchMixin, LargeTablePaginator
from console.admin_reasons import StaffReasonForm, is_submitted, reason_page
from console.errors import ServiceError
from console.models import ApiKey, AuditEvent, Membership, Tenant, User
from console.services import api_key_create, api_key_revoke, audit_record
from console.staff_services import tenant_reactivate, tenant_suspend


class UserCreationForm(AdminUserCreationForm):
    """The admin's add form for an email login: no username."""

    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self):
        email = User.objects.normalize_email(self.cleaned_data.get("email", "")).lower()
        # The column is unique as typed; the login is case-insensitive, so check that too.
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(_("A user with this email address already exists."))
        return email


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self):
        email = User.objects.normalize_email(self.cleaned_data.get("email", "")).lower()
        if User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError(_("A user with this email address already exists."))
        return email


def _audit_memberships(request, formset) -> None:
    """Save a memberships inline and audit each change: who may act for a tenant is part
    of its trail, whichever admin page changed it."""
    instances = formset.save(commit=False)
    for membership in formset.deleted_objects:
        audit_record(
            tenant=membership.tenant,
            action="membership.deleted",
            target=membership,
            actor=request.user,
            data={"user": membership.user.email, "role": membership.role},
        )
        membership.delete()
    for membership in instances:
        created = membership.pk is None
        membership.save()
        audit_record(
            tenant=membership.tenant,
            action="membership.created" if created else "membership.updated",
            target=membership,
            actor=request.user,
            data={"user": membership.user.email, "role": membership.role},
        )
    formset.save_m2m()


class UserMembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "user"
    extra = 0
    autocomplete_fields = ("tenant",)
    fields = ("tenant", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreationForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        (_("Personal info"), {"fields": ("full_name", "language")}),
        (
            _("Permissions"),
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    list_display = ("email", "full_name", "language", "is_staff", "is_active", "date_joined")
    # No tenant filter: it would list every tenant; a tenant's page lists its members.
    list_filter = ("is_staff", "is_superuser", "is_active", "language")
    search_fields = ("email", "full_name")
    ordering = ("email",)
    paginator = LargeTablePaginator
    show_full_result_count = False
    readonly_fields = ("last_login", "date_joined")
    inlines = (UserMembershipInline,)

    def get_inlines(self, request, obj):
        # The add form is the password form; memberships come once the user exists.
        return self.inlines if obj is not None else ()

    def save_formset(self, request, form, formset, change):
        if formset.model is Membership:
            _audit_memberships(request, formset)
        else:
            super().save_formset(request, form, formset, change)


class MembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "tenant"
    extra = 0
    autocomplete_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "slug",
        "status",
        "language",
        "contract_unit_price",
        "created_at",
    )
    list_filter = ("status", "language", "created_at")
    search_fields = ("name", "slug")
    ordering = ("name",)
    # Status changes are audited: the suspend/activate actions go through the service.
    readonly_fields = ("status", "created_at")
    inlines = (MembershipInline,)
    actions = ("suspend", "activate")

    def has_add_permission(self, request):
        # A tenant is born with its owner: `manage.py createtenant` or confirming a beta
        # application (R9) create both in one transaction.
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting a tenant would take its licenses, orders and audit trail with it.
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            audit_record(
                tenant=obj,
                action="tenant.updated",
                target=obj,
                actor=request.user,
                data={name: str(form.cleaned_data[name]) for name in form.changed_data},
            )

    def save_formset(self, request, form, formset, change):
        if formset.model is Membership:
            _audit_memberships(request, formset)
        else:
            super().save_formset(request, form, formset, change)

    # --- suspend and reactivate, with a reason (R9, R13) -----------------------------------

    change_form_template = "admin/console/tenant/change_form.html"

    def has_suspend_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("console.suspend_tenant")

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/suspend/",
                self.admin_site.admin_view(self.status_view),
                {"status": Tenant.Status.SUSPENDED},
                name="{}_{}_suspend".format(*info),
            ),
            path(
                "<path:object_id>/reactivate/",
                self.admin_site.admin_view(self.status_view),
                {"status": Tenant.Status.ACTIVE},
                name="{}_{}_reactivate".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        tenant = self.get_object(request, unquote(object_id))
        if tenant is not None and self.has_suspend_permission(request):
            name = "suspend" if tenant.status == Tenant.Status.ACTIVE else "reactivate"
            extra_context["status_button"] = {
                "url": reverse(f"admin:console_tenant_{name}", args=[tenant.pk]),
                "label": _("Suspend…") if name == "suspend" else _("Reactivate…"),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def _status_page(self, request, tenants, form, status: str, *, action: str | None):
        suspend = status == Tenant.Status.SUSPENDED
        return reason_page(
            self,
            request,
            objects=tenants,
            form=form,
            title=_("Suspend tenants") if suspend else _("Reactivate tenants"),
            intro=(
                _(
                    "Their API calls will be refused (403) and they cannot buy until "
                    "reactivated. Their owners and admins receive the reason by email."
                )
                if suspend
                else _("Their owners and admins are told by email, with the reason if given.")
            ),
            submit_label=_("Suspend") if suspend else _("Reactivate"),
            action=action,
            cancel_url=reverse("admin:console_tenant_changelist"),
        )

    def _status_form(self, request, status: str) -> StaffReasonForm:
        suspend = status == Tenant.Status.SUSPENDED
        return StaffReasonForm(
            request.POST if is_submitted(request) else None,
            reason_required=suspend,
            help_text=(
                _("Required. Sent to the tenant's owners and admins and kept in the audit trail.")
                if suspend
                else _("Optional. Sent to the owners and admins and kept in the audit trail.")
            ),
        )

    def _change_status(self, request, tenant: Tenant, status: str, reason: str) -> bool:
        service = tenant_suspend if status == Tenant.Status.SUSPENDED else tenant_reactivate
        try:
            service(tenant=tenant, actor=request.user, reason=reason)
        except ServiceError as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
            return False
        text = (
            _("%(tenant)s is suspended.")
            if status == Tenant.Status.SUSPENDED
            else _("%(tenant)s is active again.")
        )
        self.message_user(request, text % {"tenant": tenant.name}, messages.SUCCESS)
        return True

    def _bulk_status(self, request, queryset: QuerySet, status: str):
        form = self._status_form(request, status)
        tenants = list(queryset.order_by("name", "pk"))
        if form.is_bound and form.is_valid():
            for tenant in tenants:
                self._change_status(request, tenant, status, form.cleaned_data["reason"])
            return None
        action = "suspend" if status == Tenant.Status.SUSPENDED else "activate"
        return self._status_page(request, tenants, form, status, action=action)

    def status_view(self, request, object_id, status: str):
        """The change page's button: the reason page for one tenant."""
        if not self.has_suspend_permission(request):
            raise PermissionDenied
        tenant = self.get_object(request, unquote(object_id))
        if tenant is None:
            raise Http404(_("No such tenant."))
        form = self._status_form(request, status)
        if form.is_bound and form.is_valid():
            self._change_status(request, tenant, status, form.cleaned_data["reason"])
            return redirect(reverse("admin:console_tenant_change", args=[tenant.pk]))
        return self._status_page(request, [tenant], form, status, action=None)

    @admin.action(
        description=_("Suspend selected tenants (their API calls get 403)…"),
        permissions=["suspend"],
    )
    def suspend(self, request, queryset):
        return self._bulk_status(request, queryset, Tenant.Status.SUSPENDED)

    @admin.action(description=_("Reactivate selected tenants…"), permissions=["suspend"])
    def activate(self, request, queryset):
        return self._bulk_status(request, queryset, Tenant.Status.ACTIVE)


@admin.register(Membership)
class MembershipAdmin(IndexedSearchMixin, admin.ModelAdmin):
    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("role",)
    list_select_related = ("user", "tenant")
    search_fields = ("user__email", "user__full_name", "tenant__name", "tenant__slug")
    autocomplete_fields = ("user", "tenant")
    paginator = LargeTablePaginator
    show_full_result_count = False
    readonly_fields = ("created_at",)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        audit_record(
            tenant=obj.tenant,
            action="membership.updated" if change else "membership.created",
            target=obj,
            actor=request.user,
            data={"user": obj.user.email, "role": obj.role},
        )

    def delete_model(self, request, obj):
        audit_record(
            tenant=obj.tenant,
            action="membership.deleted",
            target=obj,
            actor=request.user,
            data={"user": obj.user.email, "role": obj.role},
        )
        super().delete_model(request, obj)

    @transaction.atomic
    def delete_queryset(self, request, queryset):
        # The admin's delete action runs outside a transaction: all the memberships and
        # their audit rows go together, or none.
        for obj in queryset.select_related("user", "tenant"):
            self.delete_model(request, obj)


class ApiKeyStateFilter(NullFilter):
    title = _("state")
    parameter_name = "state"
    field = "revoked_at"
    options = (("active", _("Active"), True), ("revoked", _("Revoked"), False))


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ("tenant", "name", "role")


@admin.register(ApiKey)
class ApiKeyAdmin(IndexedSearchMixin, admin.ModelAdmin):
    list_display = (
        "name",
        "tenant",
        "role",
        "prefix",
        "is_active",
        "created_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = (ApiKeyStateFilter, "role")
    list_select_related = ("tenant",)
    search_fields = ("name", "prefix", "tenant__name", "tenant__slug")
    autocomplete_fields = ("tenant",)
    paginator = LargeTablePaginator
    show_full_result_count = False
    actions = ("revoke",)

    @admin.display(boolean=True, description=_("active"))
    def is_active(self, obj: ApiKey) -> bool:
        return obj.is_active

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("tenant", "name", "role")
        return (
            "tenant",
            "name",
            "role",
            "prefix",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # Only the label may change; a key's tenant and role are what it was issued for.
        return (
            "tenant",
            "role",
            "prefix",
            "created_by",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    def has_delete_permission(self, request, obj=None):
        # Revoke instead: the audit trail keeps pointing at the key.
        return False

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw = api_key_create(
            tenant=obj.tenant, name=obj.name, role=obj.role, actor=request.user
        )
        # The admin goes on with `obj` (log entry, redirect): make it the stored key.
        obj.__dict__.update(
            {f.attname: getattr(key, f.attname) for f in ApiKey._meta.concrete_fields}
        )
        # The raw key exists only in this response; only its digest is stored.
        self.message_user(
            request,
            _("Copy the new API key now; it will not be shown again: %(key)s") % {"key": raw},
            messages.WARNING,
        )

    @admin.action(description=_("Revoke selected API keys"))
    def revoke(self, request, queryset):
        count = 0
        for key in queryset.select_related("tenant"):
            if key.revoked_at is None:
                api_key_revoke(tenant=key.tenant, key=key, actor=request.user)
                count += 1
        self.message_user(
            request,
            ngettext("%(n)d key revoked.", "%(n)d keys revoked.", count) % {"n": count},
            messages.SUCCESS,
        )


class AuditActorFilter(NullFilter):
    title = _("actor kind")
    parameter_name = "actor_kind"
    field = "actor"
    options = (("user", _("A user"), False), ("other", _("API key, command or job"), True))


@admin.register(AuditEvent)
class AuditEventAdmin(IndexedSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: append-only, so staff may read it but never add, change or delete."""

    list_display = ("created_at", "tenant", "action", "target_type", "target_id", "who")
    list_filter = ("action", "created_at", "target_type", AuditActorFilter)
    list_select_related = ("tenant", "actor")
    # Prefix and exact look-ups on the trail's own columns (audit_action_idx,
    # audit_actor_label_idx, audit_target_id_idx); tenants and users on their own tables first.
    search_fields = (
        "action__startswith",
        "actor_label__startswith",
        "target_id__exact",
        "actor__email",
        "tenant__name",
        "tenant__slug",
    )
    date_hierarchy = "created_at"
    paginator = LargeTablePaginator
    show_full_result_count = False
    readonly_fields = (
        "created_at",
        "tenant",
        "actor",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "data",
    )

    @admin.display(description=_("actor"), ordering="actor_label")
    def who(self, obj: AuditEvent) -> str:
        return obj.actor_label or str(obj.actor or "")


# The admin is the product's, not Django's: its name on every page, in the staff's language,
# and the index opens on what waits for them (templates/admin/field_console_index.html).
admin.site.site_header = _("Field Console")
admin.site.site_title = _("Field Console")
admin.site.index_title = _("Staff administration")
admin.site.index_template = "admin/field_console_index.html"


# Beta applications (R9) keep their admin beside their services, in console/admin_beta.py;
# Django only autodiscovers `console.admin`, so it is loaded from here once it exists.
if importlib.util.find_spec("console.admin_beta") is not None:
    importlib.import_module("console.admin_beta")

import console.admin_outbox  # noqa: E402, F401 — the outbox admin (R13) registers itself

# Invitations and notification recipients, webhook deliveries: read-only, they register
# themselves.
from console import admin_team, admin_webhooks  # noqa: E402, F401
