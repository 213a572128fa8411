"""R15 through a real Celery worker on Redis (REDIS_URL): a burst of 1,000 events, each
queued on commit, delivered to a local receiver exactly once each (at least once is the
promise; no retry is needed here, so once). Prints deliveries per second per worker; the
figure is in bench/RESULTS.md ("Issue 15 — webhooks")."""

import http.server
import os
import threading
import time

import pytest
from django.db import connections, transaction

from console import webhooks
from console.celery import app
from console.models import WebhookDelivery
from console.tests.factories import TenantFactory

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BURST = 1000


def reset_broker_pools() -> None:
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
    app.control.purge()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            yield
    finally:
        app.conf.update(saved)
        reset_broker_pools()
        connections.close_all()


class Counter(http.server.BaseHTTPRequestHandler):
    ids: list[str] = []
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with self.lock:
            self.ids.append(self.headers["webhook-id"])
        self.send_response(204)
        self.end_headers()


def test_burst_of_1000_events_delivered_once_each(postgres_only, redis_worker, settings):
    # PostgreSQL only: on the shared-cache in-memory SQLite a burst of writers in two
    # threads fails on table locks ("database table is locked"), which says nothing of
    # the webhooks.
    settings.WEBHOOK_ALLOW_HTTP = settings.WEBHOOK_ALLOW_PRIVATE = True
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Counter)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Counter.ids = []
    try:
        tenant = TenantFactory()
        webhooks.webhook_endpoint_create(
            tenant=tenant,
            url=f"http://127.0.0.1:{server.server_address[1]}/hook",
            events=["*"],
        )
        started = time.monotonic()
        for n in range(BURST):
            with transaction.atomic():
                webhooks.webhook_event_record(
                    tenant=tenant, type="license.bound", data={"license": n}
                )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(Counter.ids) < BURST:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        time.sleep(1)  # anything sent twice would arrive now
        assert len(Counter.ids) == BURST
        assert len(set(Counter.ids)) == BURST
        assert WebhookDelivery.objects.filter(status="succeeded").count() == BURST
        print(
            f"\nwebhooks: {BURST} deliveries in {elapsed:.2f} s: {BURST / elapsed:.0f}/s, 1 worker"
        )
    finally:
        server.shutdown()
        server.server_close()
