"""The customer console's pages: accounts, the beta application (R9) and, once the
application is confirmed, the tenant's shell (dashboard, API keys, team).

Until a user belongs to a tenant the application status page is all they see; every
member page gets its objects through tenant-scoped querysets, so another tenant's id is a
404.
"""

import secrets
import sys
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.db.models import F
from django.http import HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse, reverse_lazy
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from console import beta_services, login_limits
from console.api_errors import error_body
from console.beta_selectors import beta_application_audit_trail, beta_application_current
from console.confirm import confirmation_page
from console.errors import ServiceError
from console.forms import (
    ApiKeyCreateForm,
    BetaApplicationForm,
    EmailAuthenticationForm,
    SignUpForm,
    WithdrawForm,
)
from console.login_limits import request_allowed, too_many_requests
from console.models import ApiKey, BetaApplication, Membership, User
from console.services import api_key_create, api_key_revoke
from console.signup import signup_confirm, signup_read, signup_request
from licensing.rules import LICENSED, UNDER_LICENSED, UNLICENSED
from licensing.selectors import (
    device_status_counts,
    license_expiry_timeline,
    license_stats,
    licenses_expiring_soonest,
)

# Paths whose every answer is JSON, errors included (CONTRACT: "Errors are JSON").
_JSON_PREFIXES = ("/api/", "/.well-known/")


def server_error(request):
    """handler500: every uncaught error. The API answers JSON — 503 SERVICE_UNAVAILABLE
    when the database cannot be reached, else 500 SERVER_ERROR — and pages a page of their
    own in the visitor's language (no base template: it needs the database)."""
    exc = sys.exc_info()[1]
    unavailable = isinstance(exc, OperationalError | InterfaceError)
    status = 503 if unavailable else 500
    if request.path.startswith(_JSON_PREFIXES):
        if unavailable:
            body = error_body("SERVICE_UNAVAILABLE", _("The service is unavailable; try again."))
        else:
            body = error_body("SERVER_ERROR", _("Something went wrong on our side."))
        response = JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})
    else:
        page = "503.html" if unavailable else "500.html"
        response = HttpResponse(render_to_string(page, {}), status=status)
    if unavailable:
        response["Retry-After"] = "30"
    return response


@never_cache
@require_safe
def healthz(request):
    """200 {"status": "ok"} when the database answers, 503 otherwise (CONTRACT.md)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "error", "detail": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


# --- Tenancy helpers ------------------------------------------------------------------------

MANAGER_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.ADMIN})


def current_membership(request) -> Membership | None:
    """The tenant the user works in: the one chosen in the session, else their first
    membership — the same rule the API's session authentication uses."""
    # Under the API, DRF may have put a key's principal in request.user: no membership.
    if not isinstance(request.user, User) or not request.user.is_authenticated:
        return None
    memberships = Membership.objects.select_related("tenant").filter(user=request.user)
    tenant_id = request.session.get("tenant_id")
    if tenant_id:
        chosen = memberships.filter(tenant_id=tenant_id).first()
        if chosen is not None:
            return chosen
    return memberships.order_by("created_at", "id").first()


# Methods that change nothing: the only ones a suspended tenant's pages answer.
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def tenant_writable(request) -> bool:
    """R9: only an active tenant changes anything. The one rule behind every member page's
    writes (member_required refuses them; console.pages.can_change hides their forms)."""
    return request.tenant.is_active


def suspended_refusal(request) -> HttpResponse:
    """The 403 a suspended tenant's member gets for any write: a page that says why (the
    shell's banner gives the staff's reason)."""
    return render(
        request,
        "console/read_only.html",
        {
            "message": _(
                "This organisation is suspended: the console is read-only until it is "
                "reactivated. Nothing was changed."
            )
        },
        status=403,
    )


def member_required(view):
    """Logged in and a member of a tenant; a user without one is sent to their application
    (R9: until confirmation that is all the console shows them).

    Every write of a member page comes through here, so this is where a suspended tenant's
    console becomes read-only: any method but GET/HEAD/OPTIONS is refused before the view
    runs, whatever the role and whatever the page (devices, cameras, cockpits, licenses,
    orders, keys, team, and pages added later)."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        membership = current_membership(request)
        if membership is None:
            return redirect("application")
        request.membership = membership
        request.tenant = membership.tenant
        if request.method not in READ_ONLY_METHODS and not tenant_writable(request):
            return suspended_refusal(request)
        return view(request, *args, **kwargs)

    # Marks the view as a tenant page (the suspension tests enumerate the URLs by it).
    wrapper.tenant_page = True
    return wrapper


def form_errors_from(form, exc: ServiceError) -> None:
    """Put a service's refusal on the form: field errors on their fields when the form has
    them, everything else (a 409's detail included) as a form-wide error. (The other apps'
    pages take it from console.pages.)"""
    placed = False
    for field, messages_ in exc.errors.items():
        target = field if field in form.fields else None
        for message in messages_:
            form.add_error(target, message)
            placed = True
    if not placed:
        form.add_error(None, str(exc.detail))


# --- Accounts -------------------------------------------------------------------------------


def _too_many_attempts(request):
    return too_many_requests(
        request,
        _(
            "Too many requests for this address or from your network. "
            "Try again in %(minutes)d minutes."
        )
        % {"minutes": login_limits.WINDOW_SECONDS // 60},
    )


@require_http_methods(["GET", "HEAD", "POST"])
def signup(request):
    """The same answer whether the address has an account or not (console.signup)."""
    if request.user.is_authenticated:
        return redirect("dashboard")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        if not request_allowed(request, scope="signup", email=email):
            return _too_many_attempts(request)
        language = translation.get_language()
        signup_request(
            email=email,
            full_name=form.cleaned_data["full_name"],
            password=form.cleaned_data["password1"],
            language=language if language in dict(settings.LANGUAGES) else "",
        )
        return redirect("signup-sent")
    return render(request, "registration/signup.html", {"form": form})


@require_safe
def signup_sent(request):
    return render(request, "registration/signup_sent.html")


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def signup_confirm_view(request, token: str):
    """The emailed link: a page with one button (mail scanners that open links do not make
    accounts), which creates the account, logs in and goes on to the beta application."""
    pending = signup_read(token)
    if pending is None:
        return render(request, "registration/signup_confirm.html", {"valid": False})
    if request.method == "POST":
        user = signup_confirm(signup=pending)
        if user is None:
            messages.info(request, _("This address already has an account: log in."))
            return redirect("login")
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, _("Welcome! Tell us about your project to join the beta."))
        return redirect("apply")
    return render(
        request, "registration/signup_confirm.html", {"valid": True, "email": pending["email"]}
    )


class LoginView(auth_views.LoginView):
    """Failed logins are counted and locked out by django-axes (console.login_limits)."""

    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, with links built from SITE_URL (the request's host may be an
    internal name behind the proxy) and an HTML alternative."""

    email_template_name = "registration/password_reset_email.txt"
    html_email_template_name = "registration/password_reset_email.html"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")

    def form_valid(self, form):
        # Counted whether or not the address has an account: a 429 tells nothing either.
        if not request_allowed(self.request, scope="reset", email=form.cleaned_data["email"]):
            return _too_many_attempts(self.request)
        self.extra_email_context = {
            "site_url": settings.SITE_URL,
            "product_name": _("Field Console"),
        }
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    success_url = reverse_lazy("password_reset_complete")


class PasswordChangeView(auth_views.PasswordChangeView):
    # Not registration/password_change_form.html: that name would also restyle the admin's
    # own password change page.
    template_name = "registration/change_password.html"
    success_url = reverse_lazy("password_change_done")


# --- Beta application (R9) ------------------------------------------------------------------


CHART_WIDTH, CHART_HEIGHT, CHART_TOP, CHART_BOTTOM = 600, 180, 16, 24


def _expiry_chart(timeline) -> dict:
    """The expiry timeline as SVG geometry, drawn by the template: no script (CSP)."""
    highest = max((n for _m, n in timeline), default=0)
    step = CHART_WIDTH / max(1, len(timeline))
    room = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    bars = []
    for index, (month, count) in enumerate(timeline):
        height = round(room * count / highest) if highest else 0
        bars.append(
            {
                "month": month,
                "count": count,
                "x": round(index * step + step * 0.15, 1),
                "width": round(step * 0.7, 1),
                "y": CHART_TOP + room - height,
                "height": height,
                "label_x": round(index * step + step / 2, 1),
            }
        )
    return {
        "bars": bars,
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "baseline": CHART_HEIGHT - CHART_BOTTOM,
        "label_y": CHART_HEIGHT - 8,
        "total": sum(n for _m, n in timeline),
    }


@login_required
@require_safe
def dashboard(request):
    """The tenant at a glance, in a constant number of statements for any fleet: license
    figures (R5), devices by status (R1 against R6's valid licenses), the expiry timeline of
    the next 12 months, the licenses expiring soonest with a one-click renewal (R4), and
    what a new tenant does first."""
    from licensing.templatetags.license_urgency import days_left

    membership = current_membership(request)
    if membership is None:
        return redirect("application")
    request.membership, request.tenant = membership, membership.tenant
    tenant = membership.tenant
    now = timezone.now()
    stats = license_stats(tenant, at=now)
    devices = device_status_counts(tenant, at=now)
    devices_total = sum(devices.values())
    api_keys_active = ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).count()
    soonest = [
        # One Idempotency-Key per rendered renewal form, as console.pages.form_key makes
        # them (console.pages imports this module, so it cannot be imported from here).
        {
            "license": lic,
            "days_left": days_left(lic.expires_at, now),
            "key": "web-" + secrets.token_hex(16),
        }
        for lic in licenses_expiring_soonest(tenant, limit=5, at=now)
    ]
    checklist = [
        {
            "done": devices_total > 0,
            "label": _("Register a device and its cameras"),
            "url": "devices",
        },
        {
            "done": bool(stats.valid or stats.expired),
            "label": _("Buy licenses for your devices"),
            "url": "order-new",
        },
        {
            "done": api_keys_active > 0,
            "label": _("Create an API key for your gateways"),
            "url": "api-keys",
        },
    ]
    context = {
        "tenant": tenant,
        "membership": membership,
        "stats": stats,
        "devices_total": devices_total,
        "devices_licensed": devices[LICENSED],
        "devices_under_licensed": devices[UNDER_LICENSED],
        "devices_unlicensed": devices[UNLICENSED],
        "chart": _expiry_chart(license_expiry_timeline(tenant, months=12, at=now)),
        "soonest": soonest,
        "checklist": checklist,
        "checklist_open": not all(item["done"] for item in checklist),
        "api_keys_active": api_keys_active,
        # console.pages.can_change, the same two rules.
        "can_change": membership.role in MANAGER_ROLES and tenant_writable(request),
    }
    return render(request, "console/dashboard.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def apply(request):
    if current_membership(request) is not None:
        return redirect("dashboard")
    current = beta_application_current(applicant=request.user)
    if current is not None and current.is_open:
        return redirect("application")
    language = translation.get_language()
    initial = {
        "email": request.user.email,
        "contact_name": request.user.full_name,
        "language": language if language in dict(settings.LANGUAGES) else request.user.language,
    }
    form = BetaApplicationForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            beta_services.beta_application_submit(applicant=request.user, **form.cleaned_data)
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, _("Thank you: your application is submitted."))
            return redirect("application")
    return render(request, "console/apply.html", {"form": form, "previous": current})


@login_required
@require_safe
def application(request):
    current = beta_application_current(applicant=request.user)
    if current is None:
        return redirect("apply")
    # The applicant sees when the state changed, and a rejection's reason; other reasons
    # and the reviewers' names stay internal.
    history = [
        {
            "at": event.created_at,
            "state": event.data.get("to", ""),
            "state_label": BetaApplication.State(event.data["to"]).label
            if event.data.get("to") in BetaApplication.State.values
            else event.action,
            "reason": event.data.get("reason", "")
            if event.data.get("to") == BetaApplication.State.REJECTED
            else "",
        }
        for event in beta_application_audit_trail(current)
    ]
    context = {
        "application": current,
        "history": history,
        "withdraw_form": WithdrawForm() if current.can_withdraw else None,
        "is_member": current_membership(request) is not None,
    }
    return render(request, "console/application.html", context)


@login_required
@require_POST
def application_withdraw(request, pk: int):
    app = get_object_or_404(BetaApplication, pk=pk, applicant=request.user)
    form = WithdrawForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The reason is too long."))
        return redirect("application")
    page = confirmation_page(
        request,
        title=_("Withdraw the application"),
        question=_("Withdraw your application for %(company)s?") % {"company": app.company_name},
        detail=_("Our staff stop reviewing it. You can apply again later."),
        confirm_label=_("Withdraw the application"),
        cancel_url=reverse("application"),
    )
    if page is not None:
        return page
    try:
        beta_services.beta_application_withdraw(
            application=app, actor=request.user, reason=form.cleaned_data["reason"]
        )
    except ServiceError as exc:
        messages.error(request, str(exc.detail))
    else:
        messages.success(request, _("Your application is withdrawn."))
    return redirect("application")


# --- Tenant shell ---------------------------------------------------------------------------


def _can_manage_keys(request) -> bool:
    # Suspended: read-only (member_required already refuses the POSTs; this hides the forms).
    return request.membership.role in MANAGER_ROLES and tenant_writable(request)


@member_required
@require_http_methods(["GET", "HEAD", "POST"])
def api_keys(request):
    tenant = request.tenant
    can_manage = _can_manage_keys(request)
    form = ApiKeyCreateForm(request.POST or None)
    created = None
    raw_key = None
    if request.method == "POST":
        if not can_manage:
            return HttpResponseForbidden(_("Only owners and admins can create API keys."))
        if form.is_valid():
            try:
                created, raw_key = api_key_create(
                    tenant=tenant,
                    name=form.cleaned_data["name"],
                    role=form.cleaned_data["role"],
                    actor=request.user,
                )
            except ServiceError as exc:
                form_errors_from(form, exc)
            else:
                # The raw key is shown in this response only: it is never stored, so a
                # redirect could not show it again.
                form = ApiKeyCreateForm()
    keys = (
        ApiKey.objects.filter(tenant=tenant)
        .select_related("created_by")
        # Active keys first on every database (PostgreSQL sorts NULLs last).
        .order_by(F("revoked_at").asc(nulls_first=True), "-created_at")
    )
    context = {
        "tenant": tenant,
        "keys": keys,
        "form": form,
        "can_manage": can_manage,
        "created": created,
        "raw_key": raw_key,
    }
    response = render(request, "console/api_keys.html", context)
    if raw_key:
        response["Cache-Control"] = "no-store"
    return response


@member_required
@require_POST
def api_key_revoke_view(request, pk: int):
    if not _can_manage_keys(request):
        return HttpResponseForbidden(_("Only owners and admins can revoke API keys."))
    key = get_object_or_404(ApiKey, pk=pk, tenant=request.tenant)
    page = confirmation_page(
        request,
        title=_("Revoke an API key"),
        question=_("Revoke the key “%(name)s” (%(prefix)s…)?")
        % {"name": key.name, "prefix": key.prefix},
        detail=_(
            "Every gateway or cockpit that uses it is refused at once. This cannot be undone."
        ),
        confirm_label=_("Revoke the key"),
        cancel_url=reverse("api-keys"),
    )
    if page is not None:
        return page
    api_key_revoke(tenant=request.tenant, key=key, actor=request.user)
    messages.success(request, _("The key %(prefix)s… is revoked.") % {"prefix": key.prefix})
    return redirect("api-keys")
