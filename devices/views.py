"""Device pages: the tenant's devices with their licensing (R1, R6), creating and editing a
device, adding, editing and deleting its cameras.

Why the device's own page is not here: every view in this module changes things only
through devices.services, as devices never writes through licensing. The detail page
/devices/<id>/ binds licenses to the device, and deleting a device unbinds its licenses
(R7); both are licensing writes, so those views live in licensing/views.py under the same
/devices/<id>/ URLs. Reading another app's selectors is fine for a page (DESIGN.md: pages
are the top layer), so the list below reads licensing.selectors for its license counts.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from console.errors import ServiceError
from console.pages import can_change, change_required, form_errors_from, member_required
from devices import services
from devices.forms import CameraForm, DeviceForm, camera_initial
from devices.models import MAX_CAMERAS_PER_DEVICE, Camera, FieldDevice
from licensing.forms import DeviceFilterForm
from licensing.selectors import device_search, devices_with_licensing
from licensing.webhook_events import device_service_watched

DEVICES_PER_PAGE = 50


def _device(request, device_id: int) -> FieldDevice:
    # Tenant-scoped: another tenant's device is a 404 like a missing one.
    return get_object_or_404(FieldDevice, pk=device_id, tenant=request.tenant)


def _camera(request, device_id: int, camera_id: int) -> Camera:
    return get_object_or_404(
        Camera.objects.select_related("device"),
        pk=camera_id,
        device_id=device_id,
        device__tenant=request.tenant,
    )


def _bound(form_class, request, **kwargs):
    return form_class(request.POST if request.method == "POST" else None, **kwargs)


@require_http_methods(["GET", "HEAD", "POST"])
@member_required
@change_required
def device_list(request):
    tenant = request.tenant
    form = _bound(DeviceForm, request) if can_change(request) else None
    if form is not None and form.is_bound and form.is_valid():
        try:
            device = services.device_create(tenant=tenant, actor=request.user, **form.cleaned_data)
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(
                request,
                _("Device %(serial)s is registered. Add its cameras below.")
                % {"serial": device.serial},
            )
            return redirect("device-detail", device_id=device.pk)
    # A constant number of statements for any fleet: the page's 50 devices with their
    # valid-license counts, their cameras (R1 is computed from them), and the count. The
    # status filter runs in the database (licensing.selectors.device_search).
    filters = DeviceFilterForm(request.GET or None)
    data = filters.cleaned_data if filters.is_bound and filters.is_valid() else {}
    devices = device_search(
        tenant,
        q=data.get("q") or "",
        status=data.get("status") or "",
        sort=data.get("sort") or "serial",
        at=timezone.now(),
    )
    if data.get("status"):
        # The status is computed for the whole fleet (set-based): do it once, for the ids in
        # order, rather than once for the count and again for the page.
        page = Paginator(list(devices.values_list("pk", flat=True)), DEVICES_PER_PAGE)
        page = page.get_page(request.GET.get("page"))
        found = FieldDevice.objects.in_bulk(page.object_list)
        shown = [found[pk] for pk in page.object_list if pk in found]
    else:
        page = Paginator(devices, DEVICES_PER_PAGE).get_page(request.GET.get("page"))
        shown = page.object_list
    rows = [
        {"device": device, "cameras": len(device.cameras.all()), "licensing": licensing}
        for device, licensing in devices_with_licensing(shown)
    ]
    return render(
        request,
        "devices/device_list.html",
        {
            "rows": rows,
            "page": page,
            "filters": filters,
            "filtered": bool(data.get("q") or data.get("status")),
            "form": form,
            "can_change": can_change(request),
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
@member_required
@change_required
def device_edit(request, device_id: int):
    device = _device(request, device_id)
    if not can_change(request):
        return redirect("device-detail", device_id=device.pk)
    form = _bound(
        DeviceForm,
        request,
        initial={
            "serial": device.serial,
            "name": device.name,
            "max_concurrent_streams": device.max_concurrent_streams,
        },
    )
    if form.is_bound and form.is_valid():
        try:
            services.device_update(
                tenant=request.tenant, device=device, actor=request.user, **form.cleaned_data
            )
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, _("The device is saved."))
            return redirect("device-detail", device_id=device.pk)
    return render(request, "devices/device_form.html", {"device": device, "form": form})


@require_http_methods(["GET", "HEAD", "POST"])
@member_required
@change_required
def camera_add(request, device_id: int):
    """The detail page's "add a camera" form posts here; bad input comes back on this page."""
    device = _device(request, device_id)
    if not can_change(request):
        return redirect("device-detail", device_id=device.pk)
    form = _bound(CameraForm, request)
    if form.is_bound and form.is_valid():
        try:
            with device_service_watched(tenant_id=request.tenant.pk, device_id=device.pk):
                camera = services.camera_create(
                    tenant=request.tenant,
                    device=device,
                    actor=request.user,
                    **form.service_values(),
                )
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(
                request,
                _("Camera %(width)d × %(height)d is added.")
                % {"width": camera.width, "height": camera.height},
            )
            return redirect("device-detail", device_id=device.pk)
    return render(
        request,
        "devices/camera_form.html",
        {
            "device": device,
            "camera": None,
            "form": form,
            "cameras": device.cameras.order_by("id"),
            "max_cameras": MAX_CAMERAS_PER_DEVICE,
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
@member_required
@change_required
def camera_edit(request, device_id: int, camera_id: int):
    camera = _camera(request, device_id, camera_id)
    if not can_change(request):
        return redirect("device-detail", device_id=camera.device_id)
    form = _bound(CameraForm, request, initial=camera_initial(camera))
    if form.is_bound and form.is_valid():
        try:
            with device_service_watched(tenant_id=request.tenant.pk, device_id=camera.device_id):
                services.camera_update(
                    tenant=request.tenant,
                    camera=camera,
                    actor=request.user,
                    **form.service_values(),
                )
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, _("The camera is saved."))
            return redirect("device-detail", device_id=camera.device_id)
    return render(
        request,
        "devices/camera_form.html",
        {"device": camera.device, "camera": camera, "form": form, "cameras": None},
    )


@require_POST
@member_required
@change_required
def camera_delete(request, device_id: int, camera_id: int):
    camera = _camera(request, device_id, camera_id)
    try:
        with device_service_watched(tenant_id=request.tenant.pk, device_id=camera.device_id):
            services.camera_delete(tenant=request.tenant, camera=camera, actor=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc.detail))
    else:
        messages.success(
            request,
            _("Camera %(width)d × %(height)d is deleted.")
            % {"width": camera.width, "height": camera.height},
        )
    return redirect("device-detail", device_id=camera.device_id)
