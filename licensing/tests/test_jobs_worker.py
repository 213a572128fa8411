"""The jobs through a real Celery worker on a real Redis broker (REDIS_URL; CI sets it).

The worker runs in a thread of this process with its own database connection, so the
data must be committed (transaction=True). Eager mode is switched off for the test: every
task here is published to Redis and consumed by the worker, including the reminder email
that the expiry task queues for itself.
"""

import datetime as dt
import os
import time

import pytest
from django.core import mail
from django.db import connections
from django.utils import timezone

from console.celery import app
from console.models import Membership
from console.tests.factories import (
    CockpitFactory,
    DeviceFactory,
    LicenseFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)
from devices.models import ControlSession
from devices.tasks import end_lapsed_control_sessions
from licensing.models import License, SentReminder
from licensing.tasks import expire_licenses

# Runs on PostgreSQL and on SQLite alike: Django's in-memory SQLite test database is a
# shared-cache one that the worker's thread can open too.
pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def reset_broker_pools() -> None:
    """Forget the app's pools (as Celery does after a fork), so the next publish takes a
    connection to the broker now configured."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def redis_worker():
    from celery.contrib.testing.worker import start_worker

    saved = {
        key: app.conf[key]
        for key in ("broker_url", "task_always_eager", "broker_transport_options")
    }
    app.conf.update(
        broker_url=os.environ["REDIS_URL"],
        task_always_eager=False,
        broker_transport_options={"visibility_timeout": 3600},
    )
    reset_broker_pools()
    app.control.purge()  # nothing left over from an earlier run on this Redis database
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield
    finally:
        app.conf.update(saved)
        reset_broker_pools()
        connections.close_all()


def wait_for(check, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_r8_worker_on_redis_ends_lapsed_control_sessions(redis_worker):
    tenant = TenantFactory()
    now = timezone.now()
    session = ControlSession.objects.create(
        device=DeviceFactory(tenant=tenant),
        cockpit=CockpitFactory(tenant=tenant),
        started_at=now - dt.timedelta(minutes=2),
        lease_expires_at=now - dt.timedelta(seconds=1),
    )
    result = end_lapsed_control_sessions.delay()
    assert result.id
    assert wait_for(lambda: ControlSession.objects.get(pk=session.pk).ended_at is not None)


def test_r5_r11_worker_on_redis_expires_and_sends_the_notice(redis_worker):
    tenant = TenantFactory(language="en", name="Redis Mining")
    MembershipFactory(
        tenant=tenant, user=UserFactory(email="owner@example.com"), role=Membership.Role.OWNER
    )
    now = timezone.now()
    lic = LicenseFactory(
        tenant=tenant,
        starts_at=now - dt.timedelta(days=365),
        expires_at=now - dt.timedelta(hours=1),
    )
    mail.outbox = []
    expire_licenses.delay()
    assert wait_for(lambda: License.objects.get(pk=lic.pk).status == License.Status.EXPIRED)
    # the expiry task queued the notice through Redis; the worker sent it
    assert wait_for(
        lambda: SentReminder.objects.filter(tenant=tenant, status="sent", milestone=0).exists()
    )
    # …and stored its email in the outbox, whose own task (R13) the worker ran next
    assert wait_for(lambda: len(mail.outbox) >= 1)
    assert [m.to for m in mail.outbox] == [["owner@example.com"]]
    assert "Redis Mining: 1 license expired on" in mail.outbox[0].subject
