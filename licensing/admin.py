"""Staff admin for licenses, and the field-device admin's delete that unbinds (R7).

Licenses change only through licensing.services: binding and unbinding (the device field
of the change form), never their dates or status by hand — money and license changes are
services, so they are validated, locked and audited.
"""

import re

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from console.admin_filters import NullFilter, ReadOnlyAdminMixin
from console.admin_paging import IndexedSearchMixin, LargeTablePaginator
from console.errors import ServiceError
from devices.admin import DeviceAdmin
from devices.models import FieldDevice
from licensing import services
from licensing.models import License, SentReminder


class LicensedDeviceAdmin(DeviceAdmin):
    """DeviceAdmin, plus what only licensing may know about devices.

    devices/admin.py cannot import licensing (devices never depend on licenses), yet R7 says
    deleting a device unbinds its licenses, audited, in the same transaction. So the device
    admin is re-registered here with a delete that goes through
    licensing.services.device_delete_unbinding, and a column of valid licenses."""

    list_display = (*DeviceAdmin.list_display, "licenses_valid")

    def get_queryset(self, request):
        # A subquery per shown row, not a join grouped over every license: PostgreSQL runs
        # it for the page's rows only (a GROUP BY over 1,000,000 licenses took 0.5 s).
        valid = (
            License.objects.valid_at(timezone.now())
            .filter(device=OuterRef("pk"))
            .order_by()
            .values("device")
            .annotate(n=Count("pk"))
            .values("n")
        )
        return super().get_queryset(request).annotate(lic_valid=Coalesce(Subquery(valid), 0))

    @admin.display(description=_("valid licenses"), ordering="lic_valid")
    def licenses_valid(self, obj: FieldDevice) -> int:
        return obj.lic_valid

    def get_deleted_objects(self, objs, request):
        to_delete, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Bound licenses "protect" a device from a plain delete; this delete unbinds them
        # instead (R7), so they are listed as unbound rather than blocking the page.
        # Listing them also put "license" in perms_needed (licenses are never deleted in
        # the admin), which would refuse the delete for want of a permission it doesn't use.
        prefix = f"{capfirst(License._meta.verbose_name)}: "
        protected = [p for p in protected if not str(p).startswith(prefix)]
        perms_needed = {p for p in perms_needed if str(p) != str(License._meta.verbose_name)}
        bound = License.objects.filter(device__in=list(objs)).order_by("id")
        if bound:
            to_delete = [
                *to_delete,
                _("Licenses to be unbound (kept by the tenant): %(ids)s")
                % {"ids": ", ".join(str(lic) for lic in bound)},
            ]
        return to_delete, model_count, perms_needed, protected

    def delete_model(self, request, obj):
        services.device_delete_unbinding(tenant=obj.tenant, device=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for device in queryset.select_related("tenant"):
            self.delete_model(request, device)


admin.site.unregister(FieldDevice)
admin.site.register(FieldDevice, LicensedDeviceAdmin)


class StatusNowFilter(admin.SimpleListFilter):
    """R5: the status computed from expires_at now, whatever the nightly job stored."""

    title = _("status now")
    parameter_name = "status_now"

    def lookups(self, request, model_admin):
        return License.Status.choices

    def queryset(self, request, queryset):
        if self.value() in License.Status.values:
            return queryset.with_status_at(self.value(), timezone.now())
        return queryset


class BoundFilter(NullFilter):
    title = _("bound")
    parameter_name = "bound"
    field = "device"
    options = (("yes", _("Bound to a device"), False), ("no", _("Unbound"), True))


class LicenseForm(forms.ModelForm):
    """Only the device can be changed, and only to one of the license's own tenant."""

    class Meta:
        model = License
        fields = ("device",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "device" in self.fields:
            self.fields["device"].queryset = FieldDevice.objects.filter(
                tenant_id=self.instance.tenant_id
            ).order_by("serial")
            self.fields["device"].help_text = _(
                "Binding and unbinding go through the license services and are audited. "
                "Choosing another device moves the license (unbind, then bind)."
            )

    def clean_device(self):
        device = self.cleaned_data.get("device")
        lic = self.instance
        if device is not None and device.pk != lic.device_id:
            # The same checks the service makes (R7), shown on the form instead of a 500.
            if lic.status == License.Status.REFUNDED:
                raise forms.ValidationError(_("A refunded license cannot be bound."))
            if lic.expires_at <= timezone.now():
                raise forms.ValidationError(_("An expired license cannot be bound."))
        return device


@admin.register(License)
class LicenseAdmin(IndexedSearchMixin, admin.ModelAdmin):
    form = LicenseForm
    list_display = (
        "__str__",
        "tenant",
        "device",
        "status_now",
        "status",
        "starts_at",
        "expires_at",
        "last_service_date",
        "first_served_at",
    )
    # No tenant filter (a thousand links): search the tenant's name or slug, or follow the
    # tenant's link. No date hierarchy: its year list scans every license; the expiry
    # filter below uses license_exp_id_idx.
    list_filter = (StatusNowFilter, "status", BoundFilter, "expires_at")
    list_select_related = ("tenant", "device")
    # Run by IndexedSearchMixin: a number is the id; tenants and devices are looked up on
    # their own tables first.
    search_fields = ("=id", "tenant__name", "tenant__slug", "device__serial")
    paginator = LargeTablePaginator
    show_full_result_count = False
    actions = ("unbind",)
    fields = (
        "tenant",
        "device",
        "status_now",
        "status",
        "starts_at",
        "expires_at",
        "last_service_date",
        "first_served_at",
        "refunded_at",
        "created_at",
    )
    readonly_fields = (
        "tenant",
        "status_now",
        "status",
        "starts_at",
        "expires_at",
        "last_service_date",
        "first_served_at",
        "refunded_at",
        "created_at",
    )

    @admin.display(description=_("status now"))
    def status_now(self, obj: License) -> str:
        return License.Status(obj.status_at(timezone.now())).label

    @admin.display(description=_("last service date"), ordering="expires_at")
    def last_service_date(self, obj: License):
        return obj.last_service_date

    def get_search_results(self, request, queryset, search_term):
        # Staff paste license names as shown everywhere ("L-42"); search by the number.
        match = re.fullmatch(r"\s*[Ll]-(\d+)\s*", search_term or "")
        if match:
            search_term = match.group(1)
        return super().get_search_results(request, queryset, search_term)

    def has_add_permission(self, request):
        # Licenses are issued by paid orders (billing) or `manage.py grantlicenses`.
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status == License.Status.REFUNDED:
            return (*self.readonly_fields, "device")
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if "device" not in form.changed_data:
            return
        stored = License.objects.get(pk=obj.pk)
        if stored.device_id is not None:
            services.license_unbind(tenant=obj.tenant, license=obj, actor=request.user)
        if obj.device_id is not None:
            services.license_bind(
                tenant=obj.tenant, license=obj, device=obj.device_id, actor=request.user
            )
        obj.refresh_from_db()

    @admin.action(description=_("Unbind selected licenses from their devices"))
    def unbind(self, request, queryset):
        count = 0
        for lic in queryset.filter(device__isnull=False).select_related("tenant"):
            try:
                services.license_unbind(tenant=lic.tenant, license=lic, actor=request.user)
            except ServiceError as exc:
                self.message_user(request, f"{lic}: {exc.detail}", messages.ERROR)
                continue
            count += 1
        self.message_user(
            request,
            ngettext("%(n)d license unbound.", "%(n)d licenses unbound.", count) % {"n": count},
            messages.SUCCESS,
        )


@admin.register(SentReminder)
class SentReminderAdmin(IndexedSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """R11's exactly-once record of renewal emails: written by the reminder job only."""

    list_display = (
        "tenant",
        "expiry_date",
        "milestone",
        "status",
        "license_count",
        "attempts",
        "sent_at",
    )
    list_filter = ("status", "milestone", "expiry_date")
    list_select_related = ("tenant",)
    search_fields = ("tenant__name", "tenant__slug", "note")
    date_hierarchy = "expiry_date"
    paginator = LargeTablePaginator
    show_full_result_count = False
