"""Notification settings: the extra recipients of renewal reminders and of order and payment
notices (console.notify_settings). Owners and admins manage them; viewers read."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from console.errors import ServiceError
from console.models import NotificationRecipient
from console.notify_settings import notification_recipient_add, notification_recipient_remove
from console.pages import can_change, change_required, form_errors_from, member_required


class RecipientForm(forms.Form):
    kind = forms.ChoiceField(
        label=gettext_lazy("Notices"), choices=NotificationRecipient.Kind.choices
    )
    email = forms.EmailField(label=gettext_lazy("Email address"), max_length=254)
    language = forms.ChoiceField(label=gettext_lazy("Language"), choices=settings.LANGUAGES)


@member_required
@change_required
@require_http_methods(["GET", "HEAD", "POST"])
def notification_settings(request):
    tenant = request.tenant
    form = RecipientForm(request.POST or None, initial={"language": tenant.language})
    if request.method == "POST" and form.is_valid():
        try:
            recipient = notification_recipient_add(
                tenant=tenant, actor=request.user, **form.cleaned_data
            )
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(
                request,
                _("%(email)s now gets %(kind)s.")
                % {"email": recipient.email, "kind": recipient.get_kind_display().lower()},
            )
            return redirect("notification-settings")
    recipients = NotificationRecipient.objects.filter(tenant=tenant).order_by("kind", "email")
    groups = [
        {
            "kind": kind,
            "label": label,
            "recipients": [r for r in recipients if r.kind == kind],
        }
        for kind, label in NotificationRecipient.Kind.choices
    ]
    context = {"groups": groups, "form": form, "can_change": can_change(request)}
    return render(
        request, "console/notification_settings.html", context, status=400 if form.errors else 200
    )


@member_required
@change_required
@require_POST
def notification_recipient_delete(request, pk: int):
    recipient = get_object_or_404(NotificationRecipient, pk=pk, tenant=request.tenant)
    notification_recipient_remove(tenant=request.tenant, recipient=recipient, actor=request.user)
    messages.success(
        request, _("%(email)s no longer gets these notices.") % {"email": recipient.email}
    )
    return redirect("notification-settings")
