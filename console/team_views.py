"""The team page (owners invite, change roles, remove members; admins and viewers read it)
and the invitation link's page (console.team holds the rules)."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.http import HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from console import team
from console.errors import ServiceError
from console.models import Invitation, Membership, User
from console.pages import can_change, forbidden, form_errors_from, member_required


class InviteForm(forms.Form):
    email = forms.EmailField(label=gettext_lazy("Email address"), max_length=254)
    role = forms.ChoiceField(
        label=gettext_lazy("Role"), choices=Membership.Role.choices, initial="viewer"
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=gettext_lazy("Role"), choices=Membership.Role.choices)


class JoinForm(forms.Form):
    """A new account for the invited address."""

    full_name = forms.CharField(label=gettext_lazy("Your name"), max_length=150)
    password1 = forms.CharField(
        label=gettext_lazy("Password"),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label=gettext_lazy("Password again"),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self):
        data = super().clean()
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords differ."))
        elif p1:
            try:
                validate_password(p1, User(email=self.email, full_name=data.get("full_name", "")))
            except ValidationError as exc:
                self.add_error("password1", exc)
        return data


def can_manage_team(request) -> bool:
    """Owners of an active tenant manage the team; everyone else reads the list."""
    return can_change(request) and request.membership.role == Membership.Role.OWNER


def _owner_only(request):
    if not can_change(request):
        return forbidden(request)
    return HttpResponseForbidden(_("Only owners of the organisation can manage the team."))


@member_required
@require_http_methods(["GET", "HEAD", "POST"])
def team_page(request):
    tenant = request.tenant
    manage = can_manage_team(request)
    form = InviteForm(request.POST or None)
    if request.method == "POST":
        if not manage:
            return _owner_only(request)
        if form.is_valid():
            try:
                invitation = team.invitation_create(
                    tenant=tenant, actor=request.user, **form.cleaned_data
                )
            except ServiceError as exc:
                form_errors_from(form, exc)
            else:
                messages.success(
                    request,
                    _("An invitation is on its way to %(email)s.") % {"email": invitation.email},
                )
                return redirect("team")
    members = (
        Membership.objects.filter(tenant=tenant).select_related("user").order_by("created_at", "id")
    )
    invitations = (
        Invitation.objects.filter(tenant=tenant, status=Invitation.Status.PENDING)
        .select_related("invited_by")
        .order_by("-sent_at", "-id")
    )
    context = {
        "tenant": tenant,
        "members": members,
        "invitations": invitations,
        "form": form,
        "can_manage": manage,
        "roles": Membership.Role.choices,
        "max_age_days": team.INVITATION_MAX_AGE.days,
    }
    return render(request, "console/team.html", context, status=400 if form.errors else 200)


@member_required
@require_POST
def member_role(request, pk: int):
    if not can_manage_team(request):
        return _owner_only(request)
    membership = get_object_or_404(Membership, pk=pk, tenant=request.tenant)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose a role."))
        return redirect("team")
    try:
        team.member_set_role(
            tenant=request.tenant,
            membership=membership,
            role=form.cleaned_data["role"],
            actor=request.user,
        )
    except ServiceError as exc:
        messages.error(request, str(exc.detail))
    else:
        messages.success(
            request,
            _("%(email)s is now %(role)s.")
            % {
                "email": membership.user.email,
                "role": Membership.Role(form.cleaned_data["role"]).label,
            },
        )
    return redirect("team")


@member_required
@require_http_methods(["GET", "HEAD", "POST"])
def member_remove(request, pk: int):
    if not can_manage_team(request):
        return _owner_only(request)
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=pk, tenant=request.tenant
    )
    if request.method == "POST":
        try:
            team.member_remove(tenant=request.tenant, membership=membership, actor=request.user)
        except ServiceError as exc:
            messages.error(request, str(exc.detail))
            return redirect("team")
        messages.success(
            request, _("%(email)s is no longer a member.") % {"email": membership.user.email}
        )
        if membership.user_id == request.user.pk:
            return redirect("dashboard")
        return redirect("team")
    return render(
        request,
        "console/confirm.html",
        {
            "title": _("Remove a member"),
            "question": _("Remove %(email)s from %(tenant)s? They lose access at once.")
            % {"email": membership.user.email, "tenant": request.tenant.name},
            "action": reverse("member-remove", args=[membership.pk]),
            "confirm_label": _("Remove the member"),
            "cancel_url": reverse("team"),
        },
    )


@member_required
@require_POST
def invitation_resend(request, pk: int):
    if not can_manage_team(request):
        return _owner_only(request)
    invitation = get_object_or_404(Invitation, pk=pk, tenant=request.tenant)
    try:
        team.invitation_resend(tenant=request.tenant, invitation=invitation, actor=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc.detail))
    else:
        messages.success(
            request, _("The invitation to %(email)s is sent again.") % {"email": invitation.email}
        )
    return redirect("team")


@member_required
@require_POST
def invitation_revoke(request, pk: int):
    if not can_manage_team(request):
        return _owner_only(request)
    invitation = get_object_or_404(Invitation, pk=pk, tenant=request.tenant)
    try:
        team.invitation_revoke(tenant=request.tenant, invitation=invitation, actor=request.user)
    except ServiceError as exc:
        messages.error(request, str(exc.detail))
    else:
        messages.success(
            request, _("The invitation to %(email)s is revoked.") % {"email": invitation.email}
        )
    return redirect("team")


def _invitation_suspended(request, invitation: Invitation):
    return render(
        request,
        "console/invitation.html",
        {"valid": True, "invitation": invitation, "suspended": True},
        status=403,
    )


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def invitation_accept(request, token: str):
    """The emailed link. A POST joins (mail scanners that open links join no one): a
    logged-in user with the invited address joins as themselves; a visitor whose address
    has no account sets a password; an address with an account logs in first."""
    invitation = team.invitation_read(token)
    if invitation is None:
        return render(request, "console/invitation.html", {"valid": False}, status=404)
    user = request.user if request.user.is_authenticated else None
    has_account = User.objects.filter(email__iexact=invitation.email).exists()
    wrong_user = user is not None and user.email.lower() != invitation.email.lower()
    form = None
    if user is None and not has_account:
        form = JoinForm(request.POST or None, email=invitation.email)
    can_join = not wrong_user and (user is not None or form is not None)
    # R9: a suspended tenant's console is read-only, so no one joins it. The page says so and
    # offers no form; a POST is refused with nothing written (the service refuses it too,
    # under the tenant's lock, for a suspension that lands between the two).
    suspended = not invitation.tenant.is_active
    if request.method == "POST" and can_join and suspended:
        return _invitation_suspended(request, invitation)
    if request.method == "POST" and can_join and (form is None or form.is_valid()):
        language = translation.get_language()
        try:
            membership = team.invitation_accept(
                invitation=invitation,
                user=user,
                password=form.cleaned_data["password1"] if form else None,
                full_name=form.cleaned_data["full_name"] if form else "",
                language=language if language in dict(settings.LANGUAGES) else "",
            )
        except ServiceError as exc:
            if exc.code == "TENANT_SUSPENDED":
                return _invitation_suspended(request, invitation)
            messages.error(request, str(exc.detail))
            return redirect("dashboard" if user else "login")
        if user is None:
            login(request, membership.user, backend="django.contrib.auth.backends.ModelBackend")
        request.session["tenant_id"] = membership.tenant_id
        messages.success(request, _("Welcome to %(tenant)s.") % {"tenant": invitation.tenant.name})
        return redirect("dashboard")
    context = {
        "valid": True,
        "invitation": invitation,
        "suspended": suspended,
        "form": form,
        "has_account": has_account,
        "wrong_user": wrong_user,
        "login_url": reverse("login") + "?next=" + request.path,
    }
    return render(
        request, "console/invitation.html", context, status=400 if form and form.errors else 200
    )
