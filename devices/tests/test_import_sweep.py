"""The imports' sweep (devices.imports.import_jobs_sweep, beat every 5 minutes): a check or
an import whose task was lost (hard time limit, out of memory, a lost message) ends FAILED
with its file dropped instead of refreshing its page for ever; files kept over a day are
dropped there, not by the next upload."""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from devices import imports
from devices.models import FieldDevice, ImportJob
from devices.tasks import sweep_import_jobs
from devices.tests.test_import import csv_file, latest_job, row, upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

S = ImportJob.Status
NOW = dt.datetime(2027, 3, 15, 2, 0, tzinfo=dt.UTC)


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def lost_after(settings) -> dt.timedelta:
    return dt.timedelta(
        seconds=settings.CELERY_TASK_TIME_LIMIT + settings.BROKER_VISIBILITY_TIMEOUT + 60
    )


def job_of(tenant, status, *, updated_at, created_at=None, language="en", content=b"x"):
    return ImportJob.objects.create(
        tenant=tenant,
        file_name="fleet.csv",
        file_format=ImportJob.Format.CSV,
        content=content,
        status=status,
        language=language,
        rows_total=10,
        created_at=created_at or updated_at,
        updated_at=updated_at,
    )


def test_running_jobs_silent_past_the_task_limit_fail_with_their_file_dropped(
    tenant, other_tenant, settings
):
    silent = NOW - lost_after(settings) - dt.timedelta(seconds=1)
    recent = NOW - lost_after(settings) + dt.timedelta(seconds=1)
    checking = job_of(tenant, S.VALIDATING, updated_at=silent)
    importing = job_of(other_tenant, S.IMPORTING, updated_at=silent, language="zh-hans")
    alive = job_of(tenant, S.IMPORTING, updated_at=recent)
    ready = job_of(tenant, S.READY, updated_at=silent)
    assert imports.import_jobs_sweep(now=NOW) == (2, 0)
    for job in (checking, importing, alive, ready):
        job.refresh_from_db()
    assert (checking.status, bytes(checking.content), checking.finished_at) == (S.FAILED, b"", NOW)
    assert checking.errors == [
        {
            "line": None,
            "column": "",
            "message": "The check stopped before it finished: upload the file again.",
        }
    ]
    assert checking.error_count == 1
    assert (importing.status, bytes(importing.content)) == (S.FAILED, b"")
    # in the uploader's language, as the worker writes its errors
    assert importing.errors[0]["message"] == "导入未完成就中止了，未写入任何内容。请重新上传文件。"
    assert (alive.status, bytes(alive.content)) == (S.IMPORTING, b"x")
    assert (ready.status, bytes(ready.content)) == (S.READY, b"x")
    # run again (or twice at once): nothing more to do
    assert imports.import_jobs_sweep(now=NOW) == (0, 0)


def test_a_lost_job_stops_refreshing_its_page(owner, tenant, settings):
    job = job_of(tenant, S.VALIDATING, updated_at=timezone.now() - lost_after(settings) * 2)
    url = reverse("device-import-job", args=[job.pk])
    assert 'http-equiv="refresh"' in owner.get(url).content.decode()
    sweep_import_jobs.delay()
    html = owner.get(url).content.decode()
    assert 'http-equiv="refresh"' not in html
    assert "The check stopped before it finished: upload the file again." in html


def test_the_task_of_a_swept_import_writes_nothing(owner, capture, tenant, settings):
    upload(owner, capture, csv_file([row()]))
    job = latest_job()
    assert imports.import_job_start(tenant=tenant, job=job).status == S.IMPORTING
    with time_machine.travel(timezone.now() + lost_after(settings) * 2, tick=False):
        assert imports.import_jobs_sweep() == (1, 0)
    # the message delivered late finds the job failed
    assert imports.import_job_write(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == S.FAILED
    assert FieldDevice.objects.count() == 0


def test_every_step_and_progress_report_moves_the_last_update(owner, capture, tenant):
    start = timezone.now().replace(microsecond=0) + dt.timedelta(minutes=1)
    with time_machine.travel(start, tick=False):
        upload(owner, capture, csv_file([row()]))
    job = latest_job()
    assert (job.status, job.updated_at) == (S.READY, start)
    later = start + dt.timedelta(minutes=3)
    with time_machine.travel(later, tick=False):
        imports.import_job_start(tenant=tenant, job=job)
    job.refresh_from_db()
    assert (job.status, job.updated_at) == (S.IMPORTING, later)
    seen = []
    with time_machine.travel(later + dt.timedelta(minutes=1), tick=False):
        imports._progress(job.pk, S.IMPORTING)(1)
        seen.append(ImportJob.objects.get(pk=job.pk).updated_at)
    assert seen == [later + dt.timedelta(minutes=1)]


def test_files_kept_over_a_day_are_dropped_by_the_sweep_not_by_an_upload(
    owner, capture, tenant, other_tenant
):
    day_old = NOW - imports.KEEP_FOR - dt.timedelta(minutes=1)
    waiting = job_of(other_tenant, S.READY, created_at=day_old, updated_at=day_old)
    # clicked just before the day ran out: its task still reads the file
    importing = job_of(tenant, S.IMPORTING, created_at=day_old, updated_at=NOW)
    fresh = job_of(tenant, S.READY, updated_at=NOW - dt.timedelta(hours=23))
    with (
        time_machine.travel(NOW, tick=False),
        CaptureQueriesContext(connection) as queries,
        capture(execute=False),
    ):
        upload(owner, capture, csv_file([row()]))
    # the upload writes its own job only: no UPDATE over every tenant's jobs
    assert not [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    waiting.refresh_from_db()
    assert bytes(waiting.content) == b"x"
    assert imports.import_jobs_sweep(now=NOW) == (0, 1)
    for job in (waiting, importing, fresh):
        job.refresh_from_db()
    assert (waiting.status, bytes(waiting.content)) == (S.READY, b"")
    assert bytes(importing.content) == b"x"
    assert bytes(fresh.content) == b"x"


def test_the_sweep_is_in_the_beat_schedule_every_5_minutes():
    task = PeriodicTask.objects.select_related("crontab").get(
        task="devices.tasks.sweep_import_jobs"
    )
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour) == ("*/5", "*")
    assert str(task.crontab.timezone) == "Asia/Shanghai"


def test_the_task_runs_the_sweep(tenant, settings):
    job_of(tenant, S.VALIDATING, updated_at=timezone.now() - lost_after(settings) * 2)
    assert sweep_import_jobs() == (1, 0)
