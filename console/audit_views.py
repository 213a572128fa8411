"""The tenant's own audit log: filterable by kind (action), actor and object, 50 a page,
exportable as CSV with the same filter.

A tenant may hold millions of events, so nothing here counts them: a page reads one row
more than it shows to know whether a next page exists, walking the (tenant, -created_at)
index newest first, and the CSV is streamed in chunks.
"""

import csv
import json

from django import forms
from django.apps import apps
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_safe

from console.models import AuditEvent, Tenant
from console.pages import member_required

PAGE_SIZE = 50
MAX_PAGE = 10_000  # beyond this an offset walk stops being cheap; narrow the filter instead

# The objects a customer's trail names, for the object filter (label_lower of the model).
TARGET_TYPES = [
    "devices.fielddevice",
    "devices.camera",
    "devices.remotecockpit",
    "devices.controlsession",
    "licensing.license",
    "billing.order",
    "billing.refundrequest",
    "console.apikey",
    "console.membership",
    "console.invitation",
    "console.notificationrecipient",
    "console.tenant",
]


def _type_label(label_lower: str) -> str:
    try:
        return str(apps.get_model(label_lower)._meta.verbose_name)
    except (LookupError, ValueError):
        return label_lower


class AuditFilterForm(forms.Form):
    action = forms.CharField(
        label=gettext_lazy("Kind"),
        required=False,
        max_length=64,
        help_text=gettext_lazy("An action or its start, e.g. “license.” or “order.created”."),
    )
    actor = forms.CharField(
        label=gettext_lazy("Actor"),
        required=False,
        max_length=100,
        help_text=gettext_lazy("An email address or its start, or “api-key:”, “system”."),
    )
    target_type = forms.ChoiceField(label=gettext_lazy("Object"), required=False)
    target_id = forms.CharField(label=gettext_lazy("Object id"), required=False, max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target_type"].choices = [("", _("Any"))] + [
            (t, _type_label(t)) for t in TARGET_TYPES
        ]


def audit_events(tenant: Tenant, filters: dict) -> QuerySet[AuditEvent]:
    """The tenant's events, newest first, narrowed by the filter form's cleaned data."""
    events = AuditEvent.objects.filter(tenant=tenant)
    if filters.get("action"):
        events = events.filter(action__startswith=filters["action"].strip())
    if filters.get("actor"):
        events = events.filter(actor_label__startswith=filters["actor"].strip().lower())
    if filters.get("target_type"):
        events = events.filter(target_type=filters["target_type"])
    if filters.get("target_id"):
        events = events.filter(target_id=filters["target_id"].strip())
    return events.order_by("-created_at", "-id")


def _filters(request) -> tuple[AuditFilterForm, dict]:
    form = AuditFilterForm(request.GET or None)
    return form, (form.cleaned_data if form.is_valid() else {})


@member_required
@require_safe
def audit_log(request):
    form, filters = _filters(request)
    try:
        page = max(1, min(int(request.GET.get("page", "1")), MAX_PAGE))
    except ValueError:
        page = 1
    offset = (page - 1) * PAGE_SIZE
    rows = list(
        audit_events(request.tenant, filters).only(
            "created_at", "actor_label", "action", "target_type", "target_id", "data"
        )[offset : offset + PAGE_SIZE + 1]
    )
    has_next = len(rows) > PAGE_SIZE
    events = [
        {
            "event": event,
            "target_label": _type_label(event.target_type) if event.target_type else "",
            "data": json.dumps(event.data, ensure_ascii=False, sort_keys=True)
            if event.data
            else "",
        }
        for event in rows[:PAGE_SIZE]
    ]
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "events": events,
        "page": page,
        "has_previous": page > 1,
        "has_next": has_next and page < MAX_PAGE,
        "query": query.urlencode(),
    }
    return render(request, "console/audit_log.html", context)


class _Echo:
    def write(self, value):
        return value


def _cell(value: str) -> str:
    # A cell starting with = + - @ would be a formula in a spreadsheet (CSV injection).
    if value and value[0] in "=+-@\t\r":
        return "'" + value
    return value


@member_required
@require_safe
def audit_export(request):
    _form, filters = _filters(request)
    events = audit_events(request.tenant, filters).values_list(
        "created_at", "actor_label", "action", "target_type", "target_id", "data"
    )
    writer = csv.writer(_Echo())

    def rows():
        yield writer.writerow(["time", "actor", "action", "object_type", "object_id", "data"])
        for created_at, actor, action, target_type, target_id, data in events.iterator(
            chunk_size=2000
        ):
            yield writer.writerow(
                [
                    created_at.isoformat(),
                    _cell(actor),
                    _cell(action),
                    target_type,
                    _cell(target_id),
                    _cell(json.dumps(data, ensure_ascii=False, sort_keys=True) if data else ""),
                ]
            )

    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="audit-{request.tenant.slug}-{stamp}.csv"'
    )
    return response
