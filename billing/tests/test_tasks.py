"""The daily purge of old Idempotency-Keys: scheduled in beat, and the task runs the service."""

import datetime as dt

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from billing.models import IdempotencyKey
from billing.tasks import purge_idempotency_keys
from billing.tests.utils import new_order

pytestmark = pytest.mark.django_db


def test_purge_is_scheduled_daily_in_shanghai_time():
    task = PeriodicTask.objects.select_related("crontab").get(
        task="billing.tasks.purge_idempotency_keys"
    )
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour) == ("30", "3")
    assert str(task.crontab.timezone) == "Asia/Shanghai"


def test_purge_task_keeps_keys_for_at_least_a_day(tenant):
    order = new_order(tenant)
    IdempotencyKey.objects.create(tenant=tenant, key="k-1", body_hash="0" * 64, order=order)
    # CONTRACT.md: keys are kept at least 24 hours; the retention is longer still.
    with time_machine.travel(dt.timedelta(hours=23), tick=False):
        assert purge_idempotency_keys.delay().get() == 0
    with time_machine.travel(dt.timedelta(days=30), tick=False):
        assert purge_idempotency_keys.delay().get() == 1
    assert not IdempotencyKey.objects.exists()
