"""Cockpit pages: the tenant's remote cockpits, what each one drives now, adding, renaming
and deleting one (devices.services). Owners and admins change them; viewers read."""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from console.errors import ServiceError
from console.pages import can_change, change_required, form_errors_from, member_required
from devices import services
from devices.models import ControlSession, RemoteCockpit


class CockpitForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)


def _cockpit(request, cockpit_id: int) -> RemoteCockpit:
    return get_object_or_404(RemoteCockpit, pk=cockpit_id, tenant=request.tenant)


@member_required
@change_required
@require_http_methods(["GET", "HEAD", "POST"])
def cockpit_list(request):
    tenant = request.tenant
    form = CockpitForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            cockpit = services.cockpit_create(
                tenant=tenant, name=form.cleaned_data["name"], actor=request.user
            )
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, _("Cockpit “%(name)s” added.") % {"name": cockpit.name})
            return redirect("cockpits")
    cockpits = list(RemoteCockpit.objects.filter(tenant=tenant).order_by("name", "id"))
    # One query for what every cockpit drives now (R8: a live lease).
    live = {
        s.cockpit_id: s
        for s in ControlSession.objects.live(timezone.now())
        .filter(device__tenant=tenant)
        .select_related("device")
    }
    rows = [{"cockpit": c, "session": live.get(c.pk)} for c in cockpits]
    context = {"rows": rows, "form": form, "can_change": can_change(request)}
    return render(request, "devices/cockpit_list.html", context, status=400 if form.errors else 200)


@member_required
@change_required
@require_http_methods(["GET", "HEAD", "POST"])
def cockpit_edit(request, cockpit_id: int):
    cockpit = _cockpit(request, cockpit_id)
    if not can_change(request):
        return redirect("cockpits")
    form = CockpitForm(request.POST or None, initial={"name": cockpit.name})
    if request.method == "POST" and form.is_valid():
        try:
            services.cockpit_update(
                tenant=request.tenant,
                cockpit=cockpit,
                name=form.cleaned_data["name"],
                actor=request.user,
            )
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, _("Cockpit renamed."))
            return redirect("cockpits")
    return render(
        request,
        "devices/cockpit_form.html",
        {"cockpit": cockpit, "form": form},
        status=400 if form.errors else 200,
    )


@member_required
@change_required
@require_http_methods(["GET", "HEAD", "POST"])
def cockpit_delete(request, cockpit_id: int):
    cockpit = _cockpit(request, cockpit_id)
    if request.method == "POST":
        services.cockpit_delete(tenant=request.tenant, cockpit=cockpit, actor=request.user)
        messages.success(request, _("Cockpit “%(name)s” deleted.") % {"name": cockpit.name})
        return redirect("cockpits")
    if not can_change(request):
        return redirect("cockpits")
    return render(
        request,
        "console/confirm.html",
        {
            "title": _("Delete a cockpit"),
            "question": _("Delete the cockpit “%(name)s”?") % {"name": cockpit.name},
            "detail": _(
                "Its session history goes with it, and a session it holds now ends at once."
            ),
            "action": reverse("cockpit-delete", args=[cockpit.pk]),
            "confirm_label": _("Delete the cockpit"),
            "cancel_url": reverse("cockpits"),
        },
    )
