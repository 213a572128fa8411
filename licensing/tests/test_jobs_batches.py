"""The nightly expiry as a chain of short batch tasks (R5), and what a worker killed in the
middle of a batch leaves: the batch is redelivered once the broker's visibility timeout
has passed, and every license is expired, audited and announced exactly once.

The kill test runs real `celery worker` processes on Redis against the test database, so
it needs PostgreSQL (another process cannot open the in-memory SQLite test database) and
REDIS_URL; CI's PostgreSQL pass has both.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from console.celery import app
from console.models import AuditEvent, Membership, OutboundEmail
from console.tests.factories import LicenseFactory, MembershipFactory, TenantFactory, UserFactory
from licensing import expiry
from licensing.models import License, SentReminder
from licensing.tasks import expire_licenses


def _due_licenses(tenants, n_each, *, at):
    for tenant in tenants:
        for i in range(n_each):
            LicenseFactory(
                tenant=tenant,
                starts_at=at - dt.timedelta(days=365),
                expires_at=at - dt.timedelta(minutes=30 + i),
            )


def _team(name):
    tenant = TenantFactory(name=name, language="en")
    MembershipFactory(
        tenant=tenant,
        user=UserFactory(email=f"owner@{name.lower()}.example"),
        role=Membership.Role.OWNER,
    )
    return tenant


def _assert_expired_once(tenants, total):
    assert License.objects.filter(status=License.Status.EXPIRED).count() == total
    assert not License.objects.filter(status=License.Status.ACTIVE).exists()
    audited = [
        pk
        for data in AuditEvent.objects.filter(action=expiry.EXPIRED_ACTION).values_list(
            "data", flat=True
        )
        for pk in data["licenses"]
    ]
    assert sorted(audited) == sorted(License.objects.values_list("pk", flat=True))
    # one expiry-date notice per tenant and date, stored as one email per owner
    for tenant in tenants:
        notices = SentReminder.objects.filter(tenant=tenant, milestone=0)
        assert notices.count() == len({n.expiry_date for n in notices})
    return audited


@pytest.mark.django_db
def test_the_task_runs_the_expiry_as_a_chain_of_batches(django_capture_on_commit_callbacks):
    tenants = [_team("Alpha"), _team("Beta")]
    now = timezone.now()
    _due_licenses(tenants, 12, at=now)
    with django_capture_on_commit_callbacks(execute=True):
        first = expire_licenses.delay(batch_size=5).get()
    # 24 licenses in batches of 5: five links, each its own task; the first says more follow
    assert first["more"] is True and first["expired"] == 5
    _assert_expired_once(tenants, 24)
    assert SentReminder.objects.filter(milestone=0).count() >= 2
    assert SentReminder.objects.filter(status=SentReminder.Status.SENT).count() == len(
        set(SentReminder.objects.values_list("tenant_id", "expiry_date"))
    )


@pytest.mark.django_db
def test_a_batch_re_run_after_its_commit_does_the_next_batch():
    tenant = _team("Gamma")
    now = timezone.now()
    _due_licenses([tenant], 7, at=now)
    one = expiry.licenses_expire_batch(at=now, batch_size=4, actor="test")
    again = expiry.licenses_expire_batch(at=now, batch_size=4, actor="test")  # the re-run
    last = expiry.licenses_expire_batch(at=now, batch_size=4, actor="test")
    assert (one.expired, again.expired, last.expired) == (4, 3, 0)
    assert (one.more, again.more) == (True, False)
    _assert_expired_once([tenant], 7)


# --- a worker killed with SIGKILL mid-batch ---------------------------------------------------

VISIBILITY_TIMEOUT = 5


def _database_url(application_name: str) -> str:
    db = connection.settings_dict
    auth = quote(db["USER"] or "")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"])
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{db['NAME']}?application_name={application_name}"


def _start_worker(name: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(name),
        "REDIS_URL": os.environ["REDIS_URL"],
        "BROKER_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "true",
        "SECRET_KEY": settings.SECRET_KEY,
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    env.pop("EMAIL_URL", None)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "console",
            "worker",
            "--pool=solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=INFO",
            f"--hostname={name}@%h",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def _wait_for(check, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def _backends(cursor, name: str, *, waiting: bool = False) -> int:
    cursor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        + (" AND wait_event_type = 'Lock'" if waiting else ""),
        [name],
    )
    return cursor.fetchone()[0]


@pytest.fixture
def redis_broker():
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=os.environ["REDIS_URL"], task_always_eager=False)
    app._pool = None
    app.amqp._producer_pool = None
    app.control.purge()
    with app.connection_for_write() as conn:
        # Unacknowledged messages an earlier killed run may have left for redelivery.
        conn.default_channel.client.delete("unacked", "unacked_index", "unacked_mutex")
    try:
        yield
    finally:
        app.control.purge()
        app.conf.update(saved)
        app._pool = None
        app.amqp._producer_pool = None
        connections.close_all()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_leaves_the_work_done_exactly_once(
    postgres_only, redis_broker, tmp_path
):
    tenants = [_team("Delta"), _team("Epsilon")]
    now = timezone.now()
    _due_licenses(tenants, 15, at=now)
    total = 30
    workers: list[subprocess.Popen] = []
    # The test's own connection holds a lock on the notices' table: the first batch
    # expires and audits its licenses in its transaction, then waits to claim its notice,
    # and is killed there, uncommitted.
    blocker = psycopg.connect(
        _database_url("fc-test-blocker").replace("postgres://", "postgresql://")
    )
    watcher = psycopg.connect(
        _database_url("fc-test-watcher").replace("postgres://", "postgresql://"), autocommit=True
    )
    try:
        blocker.execute(f"LOCK TABLE {SentReminder._meta.db_table} IN EXCLUSIVE MODE")
        first = _start_worker("fc-worker-1", tmp_path / "worker1.log")
        workers.append(first)
        expire_licenses.apply_async(kwargs={"batch_size": 10})
        with watcher.cursor() as cursor:
            assert _wait_for(lambda: _backends(cursor, "fc-worker-1", waiting=True), 60), (
                tmp_path / "worker1.log"
            ).read_text()
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            killed_at = time.monotonic()
            blocker.rollback()  # the dead worker's backend finds its client gone: rolled back
            assert _wait_for(lambda: not _backends(cursor, "fc-worker-1"), 30)
        # Nothing of the killed batch was kept.
        assert License.objects.filter(status=License.Status.EXPIRED).count() == 0
        assert not AuditEvent.objects.filter(action=expiry.EXPIRED_ACTION).exists()

        second = _start_worker("fc-worker-2", tmp_path / "worker2.log")
        workers.append(second)

        def finished():
            return (
                not License.objects.filter(status=License.Status.ACTIVE).exists()
                and SentReminder.objects.filter(status=SentReminder.Status.SENT).count()
                == len(set(SentReminder.objects.values_list("tenant_id", "expiry_date")))
                and OutboundEmail.objects.exists()
                and not OutboundEmail.objects.exclude(status=OutboundEmail.Status.SENT).exists()
            )

        assert _wait_for(finished, VISIBILITY_TIMEOUT + 40), (tmp_path / "worker2.log").read_text()
        elapsed = time.monotonic() - killed_at
        # redelivered once the visibility timeout passed, then a few seconds of work
        assert elapsed < VISIBILITY_TIMEOUT + 30
        time.sleep(VISIBILITY_TIMEOUT + 1)  # anything redelivered twice would run by now
        _assert_expired_once(tenants, total)
        # 30 licenses in batches of 10, each batch one audit event per tenant and date
        events = AuditEvent.objects.filter(action=expiry.EXPIRED_ACTION)
        assert sum(e.data["count"] for e in events) == total
        # one email per owner and notice, never two
        sent = SentReminder.objects.filter(status=SentReminder.Status.SENT)
        emails = sorted(OutboundEmail.objects.values_list("to", flat=True))
        assert len(emails) == sum(len(reminder.recipients) for reminder in sent)
        assert len(emails) == sent.count() >= len(tenants)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait(10)
        blocker.close()
        watcher.close()
