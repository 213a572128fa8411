"""Licensing pages: a device's own page (its cameras, the R1 requirement computed live, its
licenses and the "bind N licenses" form), deleting a device (R7: its licenses are unbound in
the same transaction), and the license list with bind, unbind and the renewal selection.

The device's page is here rather than in devices/views.py because it binds licenses and
its delete unbinds them: licensing writes, and devices never writes through licensing. It
still reads devices' models and uses devices' camera form, which licensing may (licensing
→ devices). Renewing creates a billing order, and licensing never calls billing: the
renewal form on the license list posts to billing's view, which renders this list again
(`license_list_page`) when the input is bad.
"""

import datetime as dt

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from console.confirm import confirmation_page
from console.errors import Conflict, ServiceError
from console.pages import can_change, change_required, form_errors_from, form_key, member_required
from devices.forms import CameraForm
from devices.models import MAX_CAMERAS_PER_DEVICE, Camera, ControlSession, FieldDevice
from licensing import selectors, services
from licensing.forms import UNBOUND, BindCountForm, LicenseBindForm, LicenseFilterForm
from licensing.models import EntitlementTokenRecord, License
from licensing.templatetags.license_urgency import days_left

LICENSES_PER_PAGE = 50


def license_row(lic: License, now: dt.datetime) -> dict:
    """A license as the pages show it: its status computed now (R5), its last service date
    and the days left, both in Asia/Shanghai calendar days (R3, R12)."""
    status = lic.status_at(now)
    return {
        "license": lic,
        "status": status,
        "status_label": License.Status(status).label,
        "last_service_date": lic.last_service_date,
        # R11 counts days to the expiry date: on the last service date one day is left.
        "days_left": days_left(lic.expires_at, now) if status == License.Status.ACTIVE else None,
    }


def _device(request, device_id: int) -> FieldDevice:
    cameras = Prefetch("cameras", queryset=Camera.objects.order_by("id"))
    # Tenant-scoped: another tenant's device is a 404 like a missing one.
    return get_object_or_404(
        FieldDevice.objects.prefetch_related(cameras), pk=device_id, tenant=request.tenant
    )


def _device_page(request, device: FieldDevice, *, bind_form: BindCountForm | None = None):
    tenant = request.tenant
    now = timezone.now()
    cameras = list(device.cameras.all())
    requirement = selectors.device_requirement(device)
    bound = selectors.license_list(tenant, device_id=device.pk, at=now)
    rows = [license_row(lic, now) for lic in bound]
    valid = sum(1 for row in rows if row["license"].is_valid_at(now))
    free = selectors.license_list(tenant, at=now).filter(device__isnull=True).valid_at(now).count()
    session = (
        ControlSession.objects.filter(device=device).live(now).select_related("cockpit").first()
    )
    changeable = can_change(request)
    if bind_form is None and changeable:
        bind_form = BindCountForm(initial={"count": max(1, requirement.licenses - valid)})
    room = len(cameras) < MAX_CAMERAS_PER_DEVICE
    context = {
        "device": device,
        "cameras": cameras,
        "enabled_cameras": sum(1 for c in cameras if c.enabled),
        "max_cameras": MAX_CAMERAS_PER_DEVICE,
        "requirement": requirement,
        "licenses": rows,
        "licenses_valid": valid,
        "status": selectors.device_license_status(required=requirement.licenses, valid=valid),
        "licenses_free": free,
        "session": session,
        "last_token": EntitlementTokenRecord.objects.filter(device=device).first(),
        "token_ttl_minutes": settings.ENTITLEMENT_TOKEN_TTL // 60,
        "now": now,
        "can_change": changeable,
        "bind_form": bind_form if changeable else None,
        "camera_form": CameraForm() if changeable and room else None,
    }
    return render(request, "licensing/device_detail.html", context)


@require_safe
@member_required
def device_detail(request, device_id: int):
    return _device_page(request, _device(request, device_id))


@require_POST
@member_required
@change_required
def device_bind_licenses(request, device_id: int):
    """R7: bind N free licenses, soonest-expiring first, all or nothing."""
    device = _device(request, device_id)
    form = BindCountForm(request.POST)
    if form.is_valid():
        count = form.cleaned_data["count"]
        try:
            bound = services.licenses_bind_count(
                tenant=request.tenant, device=device, count=count, actor=request.user
            )
        except Conflict as exc:
            if exc.code == "NOT_ENOUGH_LICENSES":
                available = exc.extra.get("available", 0)
                form.add_error(
                    "count",
                    ngettext(
                        "Not enough licenses: %(free)d unbound valid license is free and you "
                        "asked for %(count)d. Nothing was bound; buy licenses or bind fewer.",
                        "Not enough licenses: %(free)d unbound valid licenses are free and you "
                        "asked for %(count)d. Nothing was bound; buy licenses or bind fewer.",
                        available,
                    )
                    % {"free": available, "count": count},
                )
            else:
                form_errors_from(form, exc)
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(
                request,
                ngettext(
                    "%(n)d license is bound to this device: %(ids)s.",
                    "%(n)d licenses are bound to this device: %(ids)s.",
                    len(bound),
                )
                % {"n": len(bound), "ids": ", ".join(f"L-{lic.pk}" for lic in bound)},
            )
            return redirect("device-detail", device_id=device.pk)
    # The form sits low on a long page: say at the top that nothing happened.
    messages.error(request, _("No license was bound; see “Bind licenses” below."))
    return _device_page(request, device, bind_form=form)


@require_http_methods(["GET", "HEAD", "POST"])
@member_required
@change_required
def device_delete(request, device_id: int):
    """A confirmation page, then R7: the device's licenses are unbound (audited) and the
    device, its cameras and control sessions deleted, in one transaction."""
    device = _device(request, device_id)
    if not can_change(request):
        return redirect("device-detail", device_id=device.pk)
    if request.method == "POST":
        try:
            unbound = services.device_delete_unbinding(
                tenant=request.tenant, device=device, actor=request.user
            )
        except ServiceError as exc:
            messages.error(request, str(exc.detail))
            return redirect("device-detail", device_id=device.pk)
        messages.success(
            request,
            ngettext(
                "Device %(serial)s is deleted; %(n)d license was unbound and can be bound "
                "to another device.",
                "Device %(serial)s is deleted; %(n)d licenses were unbound and can be bound "
                "to another device.",
                unbound,
            )
            % {"serial": device.serial, "n": unbound},
        )
        return redirect("devices")
    now = timezone.now()
    bound = selectors.license_list(request.tenant, device_id=device.pk, at=now)
    context = {
        "device": device,
        "cameras": len(device.cameras.all()),
        "licenses_bound": bound.count(),
        "licenses_valid": bound.valid_at(now).count(),
        "session": ControlSession.objects.filter(device=device).live(now).exists(),
    }
    return render(request, "licensing/device_delete.html", context)


# --- the license list ----------------------------------------------------------------------


def license_list_page(request, *, renew_form=None):
    """The tenant's licenses, searched, filtered, sorted and paginated (the state in the
    URL), with bind / unbind and the renewal selection. `renew_form` is billing's bound
    renewal form when it comes back with errors. A constant number of statements for any
    number of licenses and devices."""
    tenant = request.tenant
    now = timezone.now()
    filters = LicenseFilterForm(request.GET or None, tenant=tenant)
    if filters.is_bound and not filters.is_valid():
        licenses = License.objects.none()
    else:
        data = filters.cleaned_data if filters.is_bound else {}
        device = data.get("device") or ""
        licenses = selectors.license_search(
            tenant,
            q=data.get("q") or "",
            status=data.get("status") or None,
            device=UNBOUND if device == UNBOUND else (data.get("serial") or ""),
            device_id=int(device) if device.isdigit() else None,
            expiring_within=data.get("expiring"),
            sort=data.get("sort") or "expires",
            at=now,
        )
    page = Paginator(licenses, LICENSES_PER_PAGE).get_page(request.GET.get("page"))
    checked = set(renew_form.data.getlist("licenses")) if renew_form is not None else set()
    rows = []
    for lic in page.object_list:
        row = license_row(lic, now)
        row["checked"] = str(lic.pk) in checked
        rows.append(row)
    context = {
        "tenant": tenant,
        "filters": filters,
        "filtered": any(v for k, v in request.GET.items() if k not in ("page", "sort")),
        "page": page,
        "rows": rows,
        "has_devices": FieldDevice.objects.filter(tenant=tenant).exists(),
        "can_change": can_change(request),
        "renew_form": renew_form,
        "renew_years": (renew_form.data.get("years") if renew_form is not None else None) or 1,
        "renew_key": form_key(),
    }
    return render(request, "licensing/license_list.html", context)


@require_safe
@member_required
def licenses(request):
    return license_list_page(request)


def _back(request) -> str:
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("licenses")


@require_POST
@member_required
@change_required
def license_bind(request, license_id: int):
    lic = get_object_or_404(License, pk=license_id, tenant=request.tenant)
    form = LicenseBindForm(request.POST, tenant=request.tenant)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return redirect(_back(request))
    device = form.cleaned_data["device"]
    try:
        services.license_bind(tenant=request.tenant, license=lic, device=device, actor=request.user)
    except ServiceError as exc:
        # 409s: expired, refunded, or bound to another device (R7).
        messages.error(request, f"L-{lic.pk}: {exc.detail}")
    else:
        messages.success(
            request,
            _("L-%(id)s is bound to %(device)s.") % {"id": lic.pk, "device": device.serial},
        )
    return redirect(_back(request))


@require_POST
@member_required
@change_required
def license_unbind(request, license_id: int):
    lic = get_object_or_404(
        License.objects.select_related("device"), pk=license_id, tenant=request.tenant
    )
    page = confirmation_page(
        request,
        title=_("Unbind a license"),
        question=_("Unbind L-%(id)s from %(serial)s?")
        % {"id": lic.pk, "serial": lic.device.serial if lic.device else "—"},
        detail=_(
            "The device loses this license at once: its video may be degraded or stop while "
            "it has too few valid licenses."
        ),
        confirm_label=_("Unbind the license"),
        cancel_url=_back(request),
    )
    if page is not None:
        return page
    try:
        services.license_unbind(tenant=request.tenant, license=lic, actor=request.user)
    except ServiceError as exc:
        messages.error(request, f"L-{lic.pk}: {exc.detail}")
    else:
        messages.success(request, _("L-%(id)s is unbound.") % {"id": lic.pk})
    return redirect(_back(request))
