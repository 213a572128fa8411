"""Staff admin for devices, cameras, cockpits and control sessions.

Writes go through devices.services, so the admin validates, locks and audits exactly as the
API does. Devices know nothing of licenses: deleting a device (which must unbind its
licenses, R7) is wired up in licensing/admin.py, which subclasses DeviceAdmin.
"""

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from console.admin_filters import ReadOnlyAdminMixin
from console.admin_paging import IndexedSearchMixin, LargeTablePaginator
from devices import services
from devices.models import (
    MAX_CAMERAS_PER_DEVICE,
    Camera,
    ControlSession,
    FieldDevice,
    ImportJob,
    RemoteCockpit,
)


def _changes(form, fields) -> dict:
    return {name: form.cleaned_data[name] for name in fields if name in form.changed_data}


class CameraInlineFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        kept = [
            f
            for f in self.forms
            if f.has_changed() or f.instance.pk
            if not (self.can_delete and self._should_delete_form(f))
        ]
        if len(kept) > MAX_CAMERAS_PER_DEVICE:
            raise forms.ValidationError(
                _("A field device holds at most %(n)d cameras.") % {"n": MAX_CAMERAS_PER_DEVICE}
            )


class CameraInline(admin.TabularInline):
    model = Camera
    formset = CameraInlineFormSet
    extra = 0
    max_num = MAX_CAMERAS_PER_DEVICE
    fields = ("slot", "name", "width", "height", "enabled", "priority")
    readonly_fields = ("slot",)


@admin.register(FieldDevice)
class DeviceAdmin(IndexedSearchMixin, admin.ModelAdmin):
    list_display = (
        "serial",
        "name",
        "tenant",
        "max_concurrent_streams",
        "camera_count",
        "created_at",
    )
    # A tenant is found by searching its name or slug: a filter would list every tenant.
    list_filter = ("created_at",)
    list_select_related = ("tenant",)
    search_fields = ("serial", "name", "tenant__name", "tenant__slug")
    autocomplete_fields = ("tenant",)
    paginator = LargeTablePaginator
    show_full_result_count = False
    inlines = (CameraInline,)

    @admin.display(description=_("cameras"))
    def camera_count(self, obj: FieldDevice) -> int:
        return len(obj.cameras.all())

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("cameras")

    def get_readonly_fields(self, request, obj=None):
        # A device never changes tenant: its licenses and sessions belong to that tenant.
        return ("created_at",) if obj is None else ("tenant", "created_at")

    def save_model(self, request, obj, form, change):
        if change:
            services.device_update(
                tenant=obj.tenant,
                device=obj,
                actor=request.user,
                **_changes(form, services.DEVICE_FIELDS),
            )
            obj.refresh_from_db()
            return
        device = services.device_create(
            tenant=obj.tenant,
            serial=obj.serial,
            name=obj.name,
            max_concurrent_streams=obj.max_concurrent_streams,
            actor=request.user,
        )
        obj.pk = device.pk
        obj.created_at = device.created_at

    def save_formset(self, request, form, formset, change):
        if formset.model is not Camera:
            return super().save_formset(request, form, formset, change)
        device = form.instance
        formset.save(commit=False)
        for camera in formset.deleted_objects:
            services.camera_delete(tenant=device.tenant, camera=camera, actor=request.user)
        for camera_form in formset.forms:
            camera = camera_form.instance
            if camera in formset.deleted_objects or not camera_form.has_changed():
                continue
            if camera.pk:
                services.camera_update(
                    tenant=device.tenant,
                    camera=camera,
                    actor=request.user,
                    **_changes(camera_form, services.CAMERA_FIELDS),
                )
            else:
                created = services.camera_create(
                    tenant=device.tenant,
                    device=device,
                    actor=request.user,
                    **{name: camera_form.cleaned_data[name] for name in services.CAMERA_FIELDS},
                )
                camera.pk = created.pk
        return None


class CameraForm(forms.ModelForm):
    class Meta:
        model = Camera
        fields = ("device", "name", "width", "height", "enabled", "priority")

    def clean_device(self):
        device = self.cleaned_data["device"]
        if (
            self.instance.pk is None
            and device is not None
            and device.cameras.count() >= MAX_CAMERAS_PER_DEVICE
        ):
            raise forms.ValidationError(
                _("A field device holds at most %(n)d cameras.") % {"n": MAX_CAMERAS_PER_DEVICE}
            )
        return device


@admin.register(Camera)
class CameraAdmin(IndexedSearchMixin, admin.ModelAdmin):
    form = CameraForm
    list_display = (
        "__str__",
        "device",
        "tenant",
        "slot",
        "width",
        "height",
        "pixels",
        "enabled",
        "priority",
    )
    list_filter = ("enabled",)
    list_select_related = ("device__tenant",)
    search_fields = (
        "name",
        "device__serial",
        "device__name",
        "device__tenant__name",
        "device__tenant__slug",
    )
    autocomplete_fields = ("device",)
    paginator = LargeTablePaginator
    show_full_result_count = False

    @admin.display(description=_("tenant"), ordering="device__tenant__name")
    def tenant(self, obj: Camera):
        return obj.device.tenant

    @admin.display(description=_("pixels"))
    def pixels(self, obj: Camera) -> int:
        return obj.pixels

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else ("device", "slot")

    def save_model(self, request, obj, form, change):
        tenant = obj.device.tenant
        if change:
            services.camera_update(
                tenant=tenant,
                camera=obj,
                actor=request.user,
                **_changes(form, services.CAMERA_FIELDS),
            )
            obj.refresh_from_db()
            return
        camera = services.camera_create(
            tenant=tenant,
            device=obj.device,
            actor=request.user,
            **{name: form.cleaned_data[name] for name in services.CAMERA_FIELDS},
        )
        obj.pk, obj.slot = camera.pk, camera.slot

    def delete_model(self, request, obj):
        services.camera_delete(tenant=obj.device.tenant, camera=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for camera in queryset.select_related("device__tenant"):
            self.delete_model(request, camera)


@admin.register(RemoteCockpit)
class CockpitAdmin(IndexedSearchMixin, admin.ModelAdmin):
    list_display = ("name", "tenant", "created_at")
    list_select_related = ("tenant",)
    search_fields = ("name", "tenant__name", "tenant__slug")
    autocomplete_fields = ("tenant",)
    paginator = LargeTablePaginator
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return ("created_at",) if obj is None else ("tenant", "created_at")

    def save_model(self, request, obj, form, change):
        if change:
            services.cockpit_update(
                tenant=obj.tenant, cockpit=obj, actor=request.user, **_changes(form, ("name",))
            )
            return
        cockpit = services.cockpit_create(tenant=obj.tenant, name=obj.name, actor=request.user)
        obj.pk, obj.created_at = cockpit.pk, cockpit.created_at

    def delete_model(self, request, obj):
        services.cockpit_delete(tenant=obj.tenant, cockpit=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for cockpit in queryset.select_related("tenant"):
            self.delete_model(request, cockpit)


class SessionStateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("live", _("Live")), ("lapsed", _("Lapsed, not yet ended")), ("ended", _("Ended")))

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "live":
            return queryset.live(now)
        if self.value() == "lapsed":
            return queryset.lapsed(now)
        if self.value() == "ended":
            return queryset.filter(ended_at__isnull=False)
        return queryset


@admin.register(ControlSession)
class ControlSessionAdmin(IndexedSearchMixin, admin.ModelAdmin):
    """Read-mostly: sessions are made by cockpits through the API. Staff may end one."""

    list_display = (
        "id",
        "device",
        "tenant",
        "cockpit",
        "started_at",
        "lease_expires_at",
        "live",
        "ended_at",
        "end_reason",
    )
    list_filter = (SessionStateFilter, "end_reason", "started_at")
    list_select_related = ("device__tenant", "cockpit")
    search_fields = (
        "=id",
        "device__serial",
        "device__tenant__name",
        "device__tenant__slug",
        "cockpit__name",
    )
    paginator = LargeTablePaginator
    show_full_result_count = False
    actions = ("end_sessions",)
    readonly_fields = (
        "device",
        "cockpit",
        "started_at",
        "lease_expires_at",
        "ended_at",
        "end_reason",
    )

    @admin.display(description=_("tenant"), ordering="device__tenant__name")
    def tenant(self, obj: ControlSession):
        return obj.device.tenant

    @admin.display(boolean=True, description=_("live"))
    def live(self, obj: ControlSession) -> bool:
        return obj.is_live(timezone.now())

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description=_("End selected control sessions"))
    def end_sessions(self, request, queryset):
        ended = 0
        for session in queryset.filter(ended_at__isnull=True).select_related("device__tenant"):
            tenant = session.device.tenant
            with transaction.atomic():
                locked = services.control_session_lock(tenant=tenant, session_id=session.pk)
                if locked.ended_at is None:
                    services.control_session_end(tenant=tenant, session=locked, actor=request.user)
                    ended += 1
        self.message_user(
            request,
            ngettext("%(n)d session ended.", "%(n)d sessions ended.", ended) % {"n": ended},
            messages.SUCCESS,
        )


@admin.register(ImportJob)
class ImportJobAdmin(IndexedSearchMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: customers upload and import on their console (devices.imports); staff see
    what was imported, by whom and with which errors, when helping a customer."""

    list_display = (
        "file_name",
        "tenant",
        "status",
        "rows_total",
        "devices_count",
        "cameras_count",
        "error_count",
        "created_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "file_format", "created_at")
    list_select_related = ("tenant", "created_by")
    search_fields = ("=id", "file_name", "tenant__name", "tenant__slug")
    paginator = LargeTablePaginator
    show_full_result_count = False
    exclude = ("content",)

    def get_queryset(self, request):
        # The file is never shown: the list and the page leave its bytes (megabytes) unread.
        return super().get_queryset(request).defer("content")
