"""Django admin for beta applications (R9): the reviewers' workspace.

Reviewers (the "Reviewers" group, or superusers) see the applications, edit their internal
notes and move them through the workflow, from buttons on the change page or as bulk
actions on the changelist. Every move goes through console.beta_services, so the checks,
the row lock, the audit event and the emails are the same whichever button was used.
Other staff need the review permission (console.review_betaapplication) for any of that.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from console import beta_services
from console.beta_selectors import beta_application_audit_trail
from console.errors import ServiceError
from console.forms import ConfirmApplicationForm, ReasonForm
from console.models import BetaApplication

SIMPLE_ACTIONS = {
    "start_review": beta_services.beta_application_start_review,
    "approve": beta_services.beta_application_approve,
    "reject": beta_services.beta_application_reject,
}


@admin.register(BetaApplication)
class BetaApplicationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "company_name",
        "applicant",
        "industry",
        "expected_devices",
        "cameras_per_device",
        "state",
        "created_at",
    )
    list_display_links = ("id", "company_name")
    list_filter = ("state", "industry", "resolution", "created_at")
    search_fields = (
        "company_name",
        "contact_name",
        "email",
        "phone",
        "applicant__email",
        "scenario",
        "tenant__slug",
    )
    date_hierarchy = "created_at"
    list_select_related = ("applicant",)
    ordering = ("-created_at", "-id")
    fieldsets = (
        (
            gettext_lazy("Applicant"),
            {"fields": ("applicant", "company_name", "contact_name", "phone", "email", "language")},
        ),
        (
            gettext_lazy("Project"),
            {
                "fields": (
                    "industry",
                    "scenario",
                    "expected_devices",
                    "cameras_per_device",
                    "resolution",
                )
            },
        ),
        (
            gettext_lazy("Review"),
            {"fields": ("state", "state_changed_at", "created_at", "tenant", "reviewer_notes")},
        ),
        (gettext_lazy("Audit trail"), {"fields": ("audit_trail",)}),
    )
    # Only the notes are edited here; the state moves through the review actions.
    readonly_fields = (
        "applicant",
        "company_name",
        "contact_name",
        "phone",
        "email",
        "language",
        "industry",
        "scenario",
        "expected_devices",
        "cameras_per_device",
        "resolution",
        "state",
        "state_changed_at",
        "created_at",
        "tenant",
        "audit_trail",
    )
    actions = ("bulk_start_review", "bulk_approve", "bulk_reject", "bulk_confirm")
    change_form_template = "admin/console/betaapplication/change_form.html"

    # --- permissions ------------------------------------------------------------------------

    def has_add_permission(self, request):
        return False  # applications come from applicants, through the console

    def has_delete_permission(self, request, obj=None):
        return False  # the audit trail refers to them

    def has_review_permission(self, request) -> bool:
        return request.user.has_perm("console.review_betaapplication")

    def _require_review(self, request) -> None:
        if not self.has_review_permission(request):
            raise PermissionDenied

    # --- change page ------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        # Write the notes alone: a full save would write back the state read at the start of
        # this request and could undo a transition another reviewer committed meanwhile.
        if change:
            if "reviewer_notes" in form.changed_data:
                obj.save(update_fields=["reviewer_notes"])
        else:  # pragma: no cover - has_add_permission is False
            super().save_model(request, obj, form, change)

    @admin.display(description=gettext_lazy("Audit trail"))
    def audit_trail(self, obj: BetaApplication):
        if obj is None or obj.pk is None:
            return "—"
        events = list(beta_application_audit_trail(obj))
        if not events:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    timezone.localtime(event.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                    event.action,
                    event.actor.email if event.actor else event.actor_label,
                    " → ".join(
                        str(_state_label(s))
                        for s in (event.data.get("from"), event.data.get("to"))
                        if s
                    ),
                    _event_details(event.data),
                )
                for event in events
            ),
        )
        return format_html(
            '<table class="beta-audit-trail"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "<th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>",
            _("Time"),
            _("Action"),
            _("Actor"),
            _("State"),
            _("Reason and details"),
            rows,
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        obj = self.get_object(request, unquote(object_id))
        if obj is not None and self.has_review_permission(request):
            actions = beta_services.review_actions_for(obj)
            extra_context.update(
                {
                    "review_actions": [
                        {
                            "name": a,
                            "label": beta_services.ACTION_LABELS[a],
                            "reason_required": a in beta_services.REASON_REQUIRED,
                        }
                        for a in actions
                        if a != "confirm"
                    ],
                    "can_confirm": "confirm" in actions,
                    "reason_form": ReasonForm(),
                }
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        urls = super().get_urls()
        info = self.opts.app_label, self.opts.model_name
        own = [
            path(
                "<path:object_id>/transition/",
                self.admin_site.admin_view(self.transition_view),
                name="{}_{}_transition".format(*info),
            ),
            path(
                "<path:object_id>/confirm/",
                self.admin_site.admin_view(self.confirm_view),
                name="{}_{}_confirm".format(*info),
            ),
        ]
        return own + urls

    def _change_url(self, obj) -> str:
        return reverse("admin:console_betaapplication_change", args=[obj.pk])

    def _get_or_404(self, request, object_id) -> BetaApplication:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(_("No such application."))
        return obj

    def transition_view(self, request, object_id):
        """POST from the change page's review panel: start review, approve or reject.

        A rejection has its own page (GET ?action=reject): the reason is required, and an
        empty one shows the page again with the error, changing nothing."""
        self._require_review(request)
        obj = self._get_or_404(request, object_id)
        if request.method != "POST":
            if request.GET.get("action") == "reject":
                return self._reject_page(request, obj, ReasonForm(reason_required=True))
            return redirect(self._change_url(obj))
        action = request.POST.get("action", "")
        if action not in SIMPLE_ACTIONS:
            self.message_user(request, _("Unknown action."), messages.ERROR)
            return redirect(self._change_url(obj))
        form = ReasonForm(request.POST, reason_required=action in beta_services.REASON_REQUIRED)
        if not form.is_valid() and request.POST.get("reason_page") == "yes":
            return self._reject_page(request, obj, form)
        if not form.is_valid():
            for error in form.errors.get("reason", []):
                self.message_user(
                    request,
                    _("%(action)s: %(error)s")
                    % {"action": beta_services.ACTION_LABELS[action], "error": error},
                    messages.ERROR,
                )
            return redirect(self._change_url(obj))
        self._run(request, obj, action, form.cleaned_data["reason"])
        return redirect(self._change_url(obj))

    def _reject_page(self, request, obj: BetaApplication, form: ReasonForm):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": beta_services.ACTION_LABELS["reject"],
            "action": "reject",
            "action_label": beta_services.ACTION_LABELS["reject"],
            "queryset": [obj],
            "form": form,
            "single": True,
            "form_url": reverse("admin:console_betaapplication_transition", args=[obj.pk]),
            "cancel_url": self._change_url(obj),
            "media": self.media,
        }
        return TemplateResponse(
            request, "admin/console/betaapplication/bulk_transition.html", context
        )

    def _run(self, request, obj: BetaApplication, action: str, reason: str) -> bool:
        try:
            SIMPLE_ACTIONS[action](application=obj, actor=request.user, reason=reason)
        except ServiceError as exc:
            self.message_user(request, f"{obj}: {exc.detail}", messages.ERROR)
            return False
        self.message_user(
            request,
            _("%(application)s is now %(state)s.")
            % {"application": obj, "state": obj.get_state_display()},
            messages.SUCCESS,
        )
        return True

    def confirm_view(self, request, object_id):
        """R9: ask for the contract price and the tenant slug, then confirm."""
        self._require_review(request)
        obj = self._get_or_404(request, object_id)
        if obj.state != BetaApplication.State.APPROVED:
            self.message_user(
                request,
                _("Only an approved application can be confirmed; this one is %(state)s.")
                % {"state": obj.get_state_display()},
                messages.ERROR,
            )
            return redirect(self._change_url(obj))
        if request.method == "POST":
            form = ConfirmApplicationForm(request.POST, application=obj)
            if form.is_valid():
                try:
                    tenant = beta_services.beta_application_confirm(
                        application=obj,
                        actor=request.user,
                        contract_unit_price=form.cleaned_data["contract_unit_price"],
                        slug=form.cleaned_data["slug"],
                        reason=form.cleaned_data["reason"],
                    )
                except ServiceError as exc:
                    placed = False
                    for field, errors in exc.errors.items():
                        if field in form.fields:
                            for error in errors:
                                form.add_error(field, error)
                                placed = True
                    if not placed:
                        form.add_error(None, str(exc.detail))
                else:
                    self.message_user(
                        request,
                        _("%(application)s is confirmed: tenant “%(tenant)s” (%(slug)s) is active.")
                        % {"application": obj, "tenant": tenant.name, "slug": tenant.slug},
                        messages.SUCCESS,
                    )
                    return redirect(self._change_url(obj))
        else:
            form = ConfirmApplicationForm(application=obj)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": obj,
            "form": form,
            "title": _("Confirm %(application)s") % {"application": obj},
            "media": self.media + form.media,
            "has_view_permission": self.has_view_permission(request, obj),
        }
        return TemplateResponse(request, "admin/console/betaapplication/confirm.html", context)

    # --- bulk actions -----------------------------------------------------------------------

    def _bulk(self, request, queryset, action: str):
        """Ask for the reason on an intermediate page, then run the action on each selected
        application; each succeeds or fails on its own."""
        form = ReasonForm(
            request.POST if request.POST.get("post") else None,
            reason_required=action in beta_services.REASON_REQUIRED,
        )
        if request.POST.get("post") and form.is_valid():
            done = sum(
                self._run(request, obj, action, form.cleaned_data["reason"])
                for obj in queryset.order_by("pk")
            )
            if done == 0:
                self.message_user(request, _("Nothing was changed."), messages.WARNING)
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": beta_services.ACTION_LABELS[action],
            "action": f"bulk_{action}",
            "action_label": beta_services.ACTION_LABELS[action],
            "queryset": queryset,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(
            request, "admin/console/betaapplication/bulk_transition.html", context
        )

    @admin.action(description=gettext_lazy("Start review"), permissions=["review"])
    def bulk_start_review(self, request, queryset):
        return self._bulk(request, queryset, "start_review")

    @admin.action(description=gettext_lazy("Approve"), permissions=["review"])
    def bulk_approve(self, request, queryset):
        return self._bulk(request, queryset, "approve")

    @admin.action(description=gettext_lazy("Reject"), permissions=["review"])
    def bulk_reject(self, request, queryset):
        return self._bulk(request, queryset, "reject")

    @admin.action(
        description=gettext_lazy("Confirm and create tenant (one at a time)"),
        permissions=["review"],
    )
    def bulk_confirm(self, request, queryset):
        # Each confirmation needs its own price and slug, so it goes to the confirm page.
        if queryset.count() != 1:
            self.message_user(
                request, _("Select exactly one application to confirm."), messages.WARNING
            )
            return None
        obj = queryset.get()
        return HttpResponseRedirect(reverse("admin:console_betaapplication_confirm", args=[obj.pk]))


def _state_label(value: str):
    try:
        return BetaApplication.State(value).label
    except ValueError:
        return value


def _event_details(data: dict) -> str:
    parts = [data["reason"]] if data.get("reason") else []
    parts += [f"{k}: {v}" for k, v in data.items() if k not in {"from", "to", "reason"}]
    return "; ".join(str(p) for p in parts) or "—"
