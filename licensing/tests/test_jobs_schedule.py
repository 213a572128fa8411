"""R12: the beat schedule (00:05 and 09:00 Asia/Shanghai, lapsed control sessions every
minute), the Celery configuration the jobs rely on, and the thin tasks."""

import datetime as dt
import importlib

import pytest
import time_machine
from django.apps import apps
from django.db import DatabaseError
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from console.celery import app
from console.tests.factories import CockpitFactory, DeviceFactory, TenantFactory
from console.timeutils import BUSINESS_TZ
from devices.models import ControlSession
from devices.tasks import end_lapsed_control_sessions
from licensing.tasks import (
    expire_licenses,
    send_reminder_email,
    send_reminder_emails,
    send_renewal_reminders,
)

pytestmark = pytest.mark.django_db

SCHEDULE = {
    "licensing.tasks.expire_licenses": ("5", "0"),
    "licensing.tasks.send_renewal_reminders": ("0", "9"),
    "devices.tasks.end_lapsed_control_sessions": ("*", "*"),
}


def test_r12_beat_schedule_is_in_the_database_in_shanghai_time():
    tasks = {
        t.task: t for t in PeriodicTask.objects.filter(task__in=SCHEDULE).select_related("crontab")
    }
    assert set(tasks) == set(SCHEDULE)
    for name, (minute, hour) in SCHEDULE.items():
        crontab = tasks[name].crontab
        assert (crontab.minute, crontab.hour) == (minute, hour)
        assert (crontab.day_of_week, crontab.day_of_month, crontab.month_of_year) == ("*",) * 3
        assert str(crontab.timezone) == "Asia/Shanghai"
        assert tasks[name].enabled


def test_r12_beat_fires_at_00_05_and_09_00_shanghai_whatever_utc_says():
    tasks = {t.task: t for t in PeriodicTask.objects.filter(task__in=SCHEDULE)}
    expiry = tasks["licensing.tasks.expire_licenses"].crontab.schedule
    reminders = tasks["licensing.tasks.send_renewal_reminders"].crontab.schedule
    # 2027-03-15 23:00 CST is 15:00 UTC: the next 00:05 CST is 65 minutes away, the next
    # 09:00 CST ten hours.
    with time_machine.travel(dt.datetime(2027, 3, 15, 23, 0, tzinfo=BUSINESS_TZ), tick=False):
        last_expiry = dt.datetime(2027, 3, 15, 0, 5, tzinfo=BUSINESS_TZ)
        last_reminders = dt.datetime(2027, 3, 15, 9, 0, tzinfo=BUSINESS_TZ)
        assert expiry.remaining_estimate(last_expiry) == dt.timedelta(minutes=65)
        assert reminders.remaining_estimate(last_reminders) == dt.timedelta(hours=10)


def test_r12_schedule_migration_is_idempotent_and_keeps_operator_changes():
    migration = importlib.import_module("licensing.migrations.0003_beat_schedule")
    task = PeriodicTask.objects.get(task="licensing.tasks.send_renewal_reminders")
    task.enabled = False  # an operator paused it in the admin
    task.save()
    before = PeriodicTask.objects.count()
    migration.create_schedule(apps, None)
    migration.create_schedule(apps, None)
    assert PeriodicTask.objects.count() == before
    assert not PeriodicTask.objects.get(pk=task.pk).enabled


def test_celery_is_configured_for_safe_jobs():
    conf = app.conf
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.result_serializer == "json"
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.task_time_limit and conf.task_soft_time_limit
    assert conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"
    assert conf.timezone == "Asia/Shanghai"


def test_r11_reminder_task_retries_database_failures_with_backoff():
    # Mail server failures are the outbox's (R13): the reminder task only stores emails.
    assert DatabaseError in send_reminder_email.autoretry_for
    assert send_reminder_email.retry_backoff
    assert send_reminder_email.max_retries >= 3
    # the sender's lease outlives the task's hard time limit (no second sender mid-send)
    from licensing.reminders import SEND_LEASE

    assert SEND_LEASE.total_seconds() > send_reminder_email.time_limit
    assert SEND_LEASE.total_seconds() > send_reminder_emails.time_limit


def test_tasks_are_registered_under_their_scheduled_names():
    for name in SCHEDULE:
        assert name in app.tasks
    assert "licensing.tasks.send_reminder_email" in app.tasks
    assert "licensing.tasks.send_reminder_emails" in app.tasks


def test_the_jobs_queue_registered_tasks_by_name():
    """The jobs and the email helper name the tasks they queue instead of importing them:
    each name is a registered task, and a misspelt one fails where it is queued."""
    from console.celery import enqueue
    from console.emails import EMAIL_SEND_TASK
    from licensing.reminders import SEND_CHUNK_TASK, SEND_ONE_TASK

    app.autodiscover_tasks(force=True)  # what a worker does at start, and enqueue on a miss
    for name in (SEND_CHUNK_TASK, SEND_ONE_TASK, EMAIL_SEND_TASK):
        assert name in app.tasks
    with pytest.raises(KeyError):
        enqueue("licensing.tasks.no_such_task")


def test_r5_expire_task_calls_the_job(tenant):
    from console.tests.factories import LicenseFactory

    now = timezone.now()
    LicenseFactory(tenant=tenant, starts_at=now - dt.timedelta(days=2), expires_at=now)
    result = expire_licenses.delay().get()
    assert result["expired"] == 1


def test_r11_reminder_task_calls_the_job():
    assert send_renewal_reminders.delay().get() == {"claimed": {}, "requeued": 0}


def test_r8_lapsed_control_sessions_end_every_minute():
    tenant = TenantFactory()
    now = timezone.now()
    lapsed = ControlSession.objects.create(
        device=DeviceFactory(tenant=tenant),
        cockpit=CockpitFactory(tenant=tenant),
        started_at=now - dt.timedelta(minutes=2),
        lease_expires_at=now - dt.timedelta(seconds=1),
    )
    live = ControlSession.objects.create(
        device=DeviceFactory(tenant=tenant),
        cockpit=CockpitFactory(tenant=tenant),
        started_at=now - dt.timedelta(seconds=5),
        lease_expires_at=now + dt.timedelta(seconds=25),
    )
    assert end_lapsed_control_sessions.delay().get() == 1
    lapsed.refresh_from_db()
    live.refresh_from_db()
    assert lapsed.ended_at == lapsed.lease_expires_at
    assert lapsed.end_reason == ControlSession.EndReason.LAPSED
    assert live.ended_at is None
