"""Bulk import pages: upload a CSV or XLSX of devices and cameras, follow its dry run, import
it (devices.imports). Owners and admins of an active tenant import; viewers see the jobs
read-only; another tenant's job is a 404."""

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_http_methods

from console.confirm import confirmation_page
from console.errors import ServiceError
from console.pages import can_change, change_required, form_errors_from, member_required
from devices import imports
from devices.models import PRIORITY_MAX, PRIORITY_MIN, ImportJob

RECENT_JOBS = 10
ERRORS_SHOWN = imports.MAX_ERRORS_KEPT
TEMPLATE_TYPES = {
    ImportJob.Format.CSV: "text/csv; charset=utf-8",
    ImportJob.Format.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class ImportForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("File"),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,text/csv"}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The limits are devices.imports', in the request's language.
        self.fields["file"].help_text = _(
            "CSV (UTF-8, comma-separated) or XLSX (its first worksheet); at most %(size)d MB "
            "and %(rows)s rows."
        ) % {"size": imports.MAX_FILE_BYTES >> 20, "rows": f"{imports.MAX_ROWS:,}"}


def _job(request, job_id: int) -> ImportJob:
    # Tenant-scoped: another tenant's job is a 404 like a missing one.
    return get_object_or_404(ImportJob.objects.defer("content"), pk=job_id, tenant=request.tenant)


@require_http_methods(["GET", "HEAD", "POST"])
@member_required
@change_required
def import_upload(request):
    form = None
    if can_change(request):
        posted = request.method == "POST"
        form = ImportForm(request.POST if posted else None, request.FILES if posted else None)
    if form is not None and form.is_bound and form.is_valid():
        upload = form.cleaned_data["file"]
        # One byte more than the limit is enough to say the file is too large.
        content = upload.read(imports.MAX_FILE_BYTES + 1)
        try:
            job = imports.import_job_create(
                tenant=request.tenant,
                file_name=upload.name or "upload",
                content=content,
                language=request.LANGUAGE_CODE,
                actor=request.user,
            )
        except ServiceError as exc:
            form_errors_from(form, exc)
        else:
            return redirect("device-import-job", job_id=job.pk)
    jobs = ImportJob.objects.filter(tenant=request.tenant).defer("content", "errors", "preview")
    return render(
        request,
        "devices/import.html",
        {
            "form": form,
            "jobs": jobs[:RECENT_JOBS],
            "can_change": can_change(request),
            "max_rows": imports.MAX_ROWS,
            "max_cameras": imports.MAX_CAMERAS_PER_DEVICE,
            "priority_min": PRIORITY_MIN,
            "priority_max": PRIORITY_MAX,
            "columns": imports.COLUMNS,
            "chinese_headers": [imports.CHINESE_HEADERS[c] for c in imports.COLUMNS],
        },
    )


@require_http_methods(["GET", "HEAD", "POST"])
@member_required
@change_required
def import_job(request, job_id: int):
    job = _job(request, job_id)
    if request.method == "POST":
        Status = ImportJob.Status
        question = _("Create %(devices)s and %(cameras)s from %(file)s?") % {
            "devices": ngettext("%(n)s device", "%(n)s devices", job.devices_count)
            % {"n": f"{job.devices_count:,}"},
            "cameras": ngettext("%(n)s camera", "%(n)s cameras", job.cameras_count)
            % {"n": f"{job.cameras_count:,}"},
            "file": job.file_name,
        }
        if job.status == Status.READY:
            asked = confirmation_page(
                request,
                title=_("Import devices"),
                question=question,
                detail=_("Every row is created, or none if anything changed since the check."),
                confirm_label=_("Import"),
                cancel_url=reverse("device-import-job", args=[job.pk]),
            )
            if asked is not None:
                return asked
        try:
            imports.import_job_start(tenant=request.tenant, job=job, actor=request.user)
        except ServiceError as exc:
            messages.error(request, str(exc.detail))
        return redirect("device-import-job", job_id=job.pk)
    errors = job.errors[:ERRORS_SHOWN]
    return render(
        request,
        "devices/import_job.html",
        {
            "job": job,
            "errors": errors,
            "more_errors": max(0, job.error_count - len(errors)),
            "can_change": can_change(request),
            "summary_devices": ngettext("%(n)s device", "%(n)s devices", job.devices_count)
            % {"n": f"{job.devices_count:,}"},
            "summary_cameras": ngettext("%(n)s camera", "%(n)s cameras", job.cameras_count)
            % {"n": f"{job.cameras_count:,}"},
        },
    )


@require_http_methods(["GET", "HEAD"])
@member_required
def import_template(request):
    file_format = request.GET.get("format", ImportJob.Format.CSV)
    if file_format not in TEMPLATE_TYPES:
        raise Http404
    content = imports.import_template(file_format=file_format, language=request.LANGUAGE_CODE)
    response = HttpResponse(content, content_type=TEMPLATE_TYPES[file_format])
    response["Content-Disposition"] = f'attachment; filename="devices-template.{file_format}"'
    return response
