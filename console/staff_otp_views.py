"""Staff two-factor pages under /admin/2fa/: enrol an authenticator, verify a session,
issue new recovery codes (console.staff_otp holds the rules)."""

from django import forms
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from console import staff_otp


class CodeForm(forms.Form):
    code = forms.CharField(
        label=gettext_lazy("Code"),
        max_length=40,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}
        ),
    )


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("admin:index")


def _render(request, template: str, title: str, **context):
    return render(
        request,
        template,
        {
            **admin.site.each_context(request),
            # Nothing of the admin is reachable before the second factor: no app list.
            "is_nav_sidebar_enabled": False,
            "available_apps": [],
            "title": title,
            "next": _next_url(request),
            **context,
        },
    )


@never_cache
@sensitive_post_parameters("code")
@staff_member_required
def setup(request):
    if staff_otp.staff_has_second_factor(request.user):
        return HttpResponseRedirect(
            _next_url(request) if request.user.is_verified() else reverse("staff-2fa-verify")
        )
    device = staff_otp.totp_device_pending(user=request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = staff_otp.totp_device_confirm(
            request=request, device=device, token=form.cleaned_data["code"]
        )
        if codes is not None:
            return _render(
                request,
                "admin/staff_otp/recovery_codes.html",
                _("Your recovery codes"),
                codes=codes,
                enrolled=True,
            )
        form.add_error("code", _("That code is wrong or has expired. Enter the current one."))
    return _render(
        request,
        "admin/staff_otp/setup.html",
        _("Set up two-factor sign-in"),
        form=form,
        secret=staff_otp.totp_secret_text(device),
        qr_svg=staff_otp.totp_qr_svg(device),
    )


@never_cache
@sensitive_post_parameters("code")
@staff_member_required
def verify(request):
    if request.user.is_verified():
        return HttpResponseRedirect(_next_url(request))
    if not staff_otp.staff_has_second_factor(request.user):
        return HttpResponseRedirect(reverse("staff-2fa-setup"))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if staff_otp.staff_otp_verify(request=request, token=form.cleaned_data["code"]):
            return HttpResponseRedirect(_next_url(request))
        form.add_error(
            "code",
            _(
                "That code is wrong, used already or has expired. After several wrong codes, "
                "wait a few seconds before the next one."
            ),
        )
    return _render(request, "admin/staff_otp/verify.html", _("Two-factor sign-in"), form=form)


@never_cache
@staff_member_required
def recovery_codes(request):
    if not request.user.is_verified():
        return HttpResponseRedirect(
            f"{reverse('staff-2fa-verify')}?next={reverse('staff-2fa-recovery-codes')}"
        )
    if request.method == "POST":
        codes = staff_otp.recovery_codes_issue(user=request.user)
        return _render(
            request, "admin/staff_otp/recovery_codes.html", _("Your recovery codes"), codes=codes
        )
    return _render(
        request,
        "admin/staff_otp/recovery_codes.html",
        _("Recovery codes"),
        codes_left=staff_otp.recovery_codes_left(request.user),
    )


urlpatterns = [
    path("setup/", setup, name="staff-2fa-setup"),
    path("verify/", verify, name="staff-2fa-verify"),
    path("recovery-codes/", recovery_codes, name="staff-2fa-recovery-codes"),
]
