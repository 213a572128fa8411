"""The intermediate admin page on which staff give the reason for a decision.

Suspending and reactivating a tenant, rejecting a refund or an application and cancelling
an order each ask for a reason first — from the changelist's bulk action and from the
change page's button alike. The reason goes to the audit event (`data["reason"]`) and to the
customer. It is required where the customer is refused something (a rejection, a
suspension) and optional otherwise.
"""

from django import forms
from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

REASON_MAX_LENGTH = 2000
TEMPLATE = "admin/staff_reason.html"


class StaffReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 60}),
    )

    def __init__(self, *args, reason_required: bool, help_text: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["reason"]
        field.required = reason_required
        field.help_text = help_text
        field.error_messages["required"] = _(
            "Give a reason: the customer will read it. Nothing was changed."
        )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if self.fields["reason"].required and not reason:
            raise forms.ValidationError(self.fields["reason"].error_messages["required"])
        return reason


def is_submitted(request) -> bool:
    """The reason page's own POST (not the changelist's first POST of the action)."""
    return request.method == "POST" and request.POST.get("reason_page") == "yes"


def reason_page(
    model_admin,
    request,
    *,
    objects,
    form: StaffReasonForm,
    title: str,
    intro: str,
    submit_label: str,
    action: str | None = None,
    cancel_url: str,
):
    """Render the page. `action`: the bulk action's name, so the form posts back through the
    changelist with the same selection; None for a one-object view, which posts to itself."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "intro": intro,
        "objects": objects,
        "form": form,
        "submit_label": submit_label,
        "action": action,
        "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        "cancel_url": cancel_url,
        "media": model_admin.media,
    }
    return TemplateResponse(request, TEMPLATE, context)
