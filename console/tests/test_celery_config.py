"""Celery as configured for a worker that may die at any moment (SIGKILL, OOM, a lost node):

tasks are acknowledged late and queued again when their worker is lost, so each must be
safe to re-run, or say acks_late=False; every task's hard time limit is under the broker's
visibility timeout, which is minutes, not an hour, so the work of a killed worker resumes
soon and a task still running is never handed to a second worker.
"""

import pytest
from django.conf import settings

from console.celery import app

# Every task, by whether it may run twice. Safe: it claims its work with a compare-and-set
# update or a unique row (or is at least once by contract, with one Message-ID or webhook
# id, R13 and R15). A new task must be put in one of them.
RERUN_SAFE = {
    "licensing.tasks.expire_licenses",  # compare-and-set on status; notices are unique rows
    "licensing.tasks.send_renewal_reminders",  # unique (tenant, milestone, date) claims
    "licensing.tasks.send_reminder_emails",  # lease + pending-only finish per reminder
    "licensing.tasks.send_reminder_email",
    "devices.tasks.end_lapsed_control_sessions",  # conditional update of lapsed leases
    "devices.tasks.import_job_check",  # pure reads; the result is written only while checking
    "devices.tasks.import_job_write",  # claimed by status under the job's row lock
    "devices.tasks.sweep_import_jobs",  # compare-and-set on status and age
    "billing.tasks.purge_idempotency_keys",  # a delete by age
    "console.tasks.send_outbound_emails",  # outbox leases; at least once, one Message-ID
    "console.tasks.email_send",  # legacy messages: at least once (R13)
    "console.tasks.deliver_webhooks",  # at least once, one webhook-id (R15)
}
NOT_RERUN_SAFE = {
    "billing.tasks.send_staff_digest",  # nothing marks a day's digest as sent
}


def project_tasks():
    app.autodiscover_tasks(force=True)
    return {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}


def test_the_visibility_timeout_is_minutes():
    assert 60 <= settings.BROKER_VISIBILITY_TIMEOUT <= 600
    if settings.REDIS_URL:
        options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
        assert options["visibility_timeout"] == settings.BROKER_VISIBILITY_TIMEOUT
        # a lost task is looked for every few seconds, not every 100 s (kombu's default)
        assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= 10


def test_late_acks_and_redelivery_on_a_lost_worker_are_global():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


@pytest.mark.parametrize("name", sorted(project_tasks()))
def test_every_task_ends_within_the_visibility_timeout(name):
    task = project_tasks()[name]
    hard = task.time_limit or app.conf.task_time_limit
    soft = task.soft_time_limit or app.conf.task_soft_time_limit
    assert hard and soft and soft < hard < settings.BROKER_VISIBILITY_TIMEOUT, (soft, hard)
    # A retry's countdown longer than the timeout would have Redis hand the waiting
    # message to another worker too.
    if getattr(task, "retry_backoff", False):
        assert task.retry_backoff_max < settings.BROKER_VISIBILITY_TIMEOUT


@pytest.mark.parametrize("name", sorted(project_tasks()))
def test_only_tasks_safe_to_re_run_are_acknowledged_late(name):
    task = project_tasks()[name]
    acks_late = task.acks_late if task.acks_late is not None else app.conf.task_acks_late
    assert name in RERUN_SAFE | NOT_RERUN_SAFE, f"{name}: say whether it may run twice"
    assert acks_late == (name in RERUN_SAFE)
