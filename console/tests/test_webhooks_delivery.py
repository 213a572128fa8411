"""R15: webhook deliveries to a real HTTP receiver on 127.0.0.1 — signed per Standard
Webhooks (verified with the `standardwebhooks` library), retried with the same webhook-id and
a fresh timestamp, never following a redirect, cut at the timeout, refused when the host
resolves to a private address at delivery time, and the endpoint disabled (owners emailed)
after 72 hours without success."""

import datetime as dt
import http.server
import json
import socket
import threading
import time

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from console import webhooks
from console.models import Membership, OutboundEmail, WebhookDelivery, WebhookEndpoint
from console.tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 12, 2, 2, 0, tzinfo=dt.UTC)


class Receiver:
    """A local webhook receiver. `plan` holds what to answer to the next requests (an HTTP
    status, "redirect", "dribble"); once empty it answers 200."""

    def __init__(self):
        self.requests: list[dict] = []
        self.plan: list = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                        }
                    )
                    step = receiver.plan.pop(0) if receiver.plan else 200
                if step == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif step == "dribble":
                    # A status line, then a header a byte at a time, for far longer than the
                    # timeout: each read gets a byte well within a per-read timeout.
                    try:
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                        for _ in range(40):
                            self.wfile.write(b"a")
                            self.wfile.flush()
                            time.sleep(0.1)
                    except OSError:
                        pass
                else:
                    payload = b"x" * 5000 if step == 200 else b"nope"
                    self.send_response(step)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def do_GET(self):
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "method": "GET"})
                self.send_response(200)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/hook", host="127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE = True
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def endpoint_secret(tenant, receiver):
    endpoint, secret = webhooks.webhook_endpoint_create(
        tenant=tenant, url=receiver.url(), events=["*"]
    )
    return endpoint, secret


def record(tenant, type_="license.bound", data=None):
    return webhooks.webhook_event_record(tenant=tenant, type=type_, data=data or {"license": 1})


def deliver(at):
    with time_machine.travel(at, tick=False):
        return webhooks.webhook_deliveries_deliver()


def verify(secret, request, at):
    with time_machine.travel(at, tick=False):
        return Webhook(secret).verify(request["body"], request["headers"])


def test_delivery_is_signed_per_standard_webhooks(
    tenant, endpoint_secret, receiver, django_capture_on_commit_callbacks
):
    _endpoint, secret = endpoint_secret
    assert secret.startswith("whsec_")
    # The task queued on commit delivers it (tasks run eagerly in tests).
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        event = record(tenant, data={"license": 7, "device": 3})
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    payload = verify(secret, request, T0)
    assert payload == {
        "id": event.msg_id,
        "type": "license.bound",
        "timestamp": event.created_at.isoformat(),
        "data": {"license": 7, "device": 3},
    }
    assert request["headers"]["webhook-id"] == event.msg_id
    assert request["headers"]["content-type"] == "application/json"
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED
    assert delivery.attempts == 1 and delivery.response_status == 200
    # The log keeps the first 1 kB of the answer only.
    assert delivery.response_body == "x" * 1024
    with pytest.raises(WebhookVerificationError):
        verify(webhooks.secret_generate(), request, T0)


def test_nothing_is_stored_or_sent_when_the_change_rolls_back(tenant, endpoint_secret, receiver):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        record(tenant)
        raise RuntimeError("the change fails")
    assert not WebhookDelivery.objects.exists()
    webhooks.webhook_deliveries_deliver()
    assert receiver.requests == []


def test_only_endpoints_that_want_the_type_get_it(tenant, other_tenant, receiver):
    bound_only, _s = webhooks.webhook_endpoint_create(
        tenant=tenant, url=receiver.url("/a"), events=["license.bound"]
    )
    paid_only, _s = webhooks.webhook_endpoint_create(
        tenant=tenant, url=receiver.url("/b"), events=["order.paid"]
    )
    webhooks.webhook_endpoint_create(tenant=other_tenant, url=receiver.url("/c"), events=["*"])
    record(tenant, "license.bound")
    assert list(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == [bound_only.pk]
    assert record(tenant, "license.expired") is None
    del paid_only


def test_retry_after_a_500_keeps_the_id_with_a_fresh_timestamp(tenant, endpoint_secret, receiver):
    endpoint, secret = endpoint_secret
    receiver.plan = [500]
    with time_machine.travel(T0, tick=False):
        event = record(tenant)
    run = deliver(T0)
    assert run.retrying == 1
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert delivery.response_status == 500 and delivery.response_body == "nope"
    assert delivery.last_error == "HTTP 500"
    # R15's first retry: 5 s, with jitter.
    wait = (delivery.next_attempt_at - T0).total_seconds()
    assert 4 <= wait <= 6
    endpoint.refresh_from_db()
    assert endpoint.failing_since == T0
    # Not due yet: nothing is sent.
    assert deliver(T0 + dt.timedelta(seconds=3)).succeeded == 0
    retry_at = T0 + dt.timedelta(seconds=7)
    assert deliver(retry_at).succeeded == 1
    first, second = receiver.requests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == event.msg_id
    assert first["body"] == second["body"]
    assert (
        int(second["headers"]["webhook-timestamp"]) - int(first["headers"]["webhook-timestamp"])
        == 7
    )
    verify(secret, second, retry_at)
    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED and delivery.attempts == 2
    assert endpoint.failing_since is None and endpoint.last_success_at == retry_at


def test_backoff_follows_the_schedule_then_fails(tenant, endpoint_secret, receiver, monkeypatch):
    monkeypatch.setattr(webhooks, "JITTER", 0)
    receiver.plan = [500] * 20
    with time_machine.travel(T0, tick=False):
        event = record(tenant)
    at = T0
    waits = []
    for _ in range(webhooks.MAX_ATTEMPTS):
        deliver(at)
        delivery = WebhookDelivery.objects.get(event=event)
        if delivery.status != WebhookDelivery.Status.PENDING:
            break
        waits.append(delivery.next_attempt_at - at)
        at = delivery.next_attempt_at
    assert waits == list(webhooks.RETRY_DELAYS)
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.attempts == webhooks.MAX_ATTEMPTS == 8


def test_endpoint_failing_72_hours_is_disabled_and_owners_emailed(
    tenant, alice, endpoint_secret, receiver
):
    endpoint, _secret = endpoint_secret
    admin = UserFactory(email="admin@example.com")
    MembershipFactory(user=admin, tenant=tenant, role=Membership.Role.ADMIN)
    receiver.plan = [500] * 100
    with time_machine.travel(T0, tick=False):
        record(tenant)
    deliver(T0)
    # Later events fail too; the sweep keeps it enabled until 72 hours have passed.
    for hours in (10, 40, 71):
        with time_machine.travel(T0 + dt.timedelta(hours=hours), tick=False):
            record(tenant)
        run = deliver(T0 + dt.timedelta(hours=hours))
        assert run.disabled == 0
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since == T0
    run = deliver(T0 + dt.timedelta(hours=72, minutes=1))
    assert run.disabled == 1
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == webhooks.DISABLED_FAILING
    emails = OutboundEmail.objects.filter(template="emails/webhook_disabled")
    # The owners, not the admins.
    assert [e.to for e in emails] == ["alice@example.com"]
    assert endpoint.url in emails[0].body_text
    # A disabled endpoint gets no more deliveries; another sweep emails nobody again.
    sent = len(receiver.requests)
    with time_machine.travel(T0 + dt.timedelta(hours=73), tick=False):
        record(tenant)
    assert deliver(T0 + dt.timedelta(hours=73)).disabled == 0
    assert len(receiver.requests) == sent
    assert emails.count() == 1
    # Enabled again: its pending deliveries go out.
    receiver.plan = []
    with time_machine.travel(T0 + dt.timedelta(hours=74), tick=False):
        webhooks.webhook_endpoint_update(tenant=tenant, endpoint=endpoint, enabled=True)
    assert deliver(T0 + dt.timedelta(hours=74)).succeeded >= 1


def test_a_success_within_72_hours_keeps_the_endpoint(tenant, endpoint_secret, receiver):
    endpoint, _secret = endpoint_secret
    receiver.plan = [500]
    with time_machine.travel(T0, tick=False):
        record(tenant)
    deliver(T0)
    deliver(T0 + dt.timedelta(seconds=10))
    assert deliver(T0 + dt.timedelta(hours=80)).disabled == 0
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is None


def test_no_redirect_is_followed(tenant, endpoint_secret, receiver):
    receiver.plan = ["redirect"]
    with time_machine.travel(T0, tick=False):
        event = record(tenant)
    assert deliver(T0).retrying == 1
    assert [r["path"] for r in receiver.requests] == ["/hook"]  # /elsewhere never fetched
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.response_status == 302
    assert "redirect" in delivery.last_error


def test_a_slow_receiver_is_cut_at_the_timeout(tenant, endpoint_secret, receiver, monkeypatch):
    monkeypatch.setattr(webhooks, "TIMEOUT", 1.0)
    receiver.plan = ["dribble"]
    event = record(tenant)
    started = time.monotonic()
    run = webhooks.webhook_deliveries_deliver()
    elapsed = time.monotonic() - started
    assert run.retrying == 1
    assert elapsed < 2.5
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert "timed out" in delivery.last_error


def test_a_refused_connection_is_retried(tenant, settings):
    settings.WEBHOOK_ALLOW_HTTP = settings.WEBHOOK_ALLOW_PRIVATE = True
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    webhooks.webhook_endpoint_create(tenant=tenant, url=f"http://127.0.0.1:{port}/x", events=["*"])
    record(tenant)
    assert webhooks.webhook_deliveries_deliver().retrying == 1
    assert "Connection" in WebhookDelivery.objects.get().last_error


@pytest.fixture
def dns(monkeypatch):
    """A resolver whose answers the test sets: host → address. Other names fail; literal
    addresses resolve to themselves (as getaddrinfo does without a lookup)."""
    answers: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return real(answers[host], port, *args, **kwargs)
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_private_address_refused_at_delivery_when_dns_changes(tenant, settings, dns, receiver):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    dns["hooks.example.test"] = "93.184.216.34"  # public when the endpoint is saved
    url = f"http://hooks.example.test:{receiver.port}/hook"
    endpoint, _secret = webhooks.webhook_endpoint_create(tenant=tenant, url=url, events=["*"])
    dns["hooks.example.test"] = "127.0.0.1"  # …and loopback when the event is delivered
    with time_machine.travel(T0, tick=False):
        event = record(tenant)
    assert deliver(T0).retrying == 1
    delivery = WebhookDelivery.objects.get(event=event)
    assert "forbidden address" in delivery.last_error
    assert receiver.requests == []  # no connection was made
    # With WEBHOOK_ALLOW_PRIVATE (an air-gapped site) the same delivery goes through,
    # to the address checked, with the endpoint's host name in the Host header.
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert deliver(T0 + dt.timedelta(seconds=10)).succeeded == 1
    assert receiver.requests[0]["headers"]["host"] == f"hooks.example.test:{receiver.port}"
    del endpoint


def test_private_address_refused_at_creation(tenant, settings, dns):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    for address in ("10.1.2.3", "127.0.0.1", "169.254.169.254", "192.168.1.1", "::1", "224.0.0.1"):
        dns["internal.example.test"] = address
        with pytest.raises(webhooks.InvalidInput) as refused:
            webhooks.webhook_endpoint_create(
                tenant=tenant, url="https://internal.example.test/h", events=["*"]
            )
        assert refused.value.code == "WEBHOOK_URL_FORBIDDEN", address
        assert "url" in refused.value.errors
    assert not WebhookEndpoint.objects.exists()


def test_rotation_signs_with_both_secrets_for_24_hours(tenant, endpoint_secret, receiver):
    endpoint, old_secret = endpoint_secret
    with time_machine.travel(T0, tick=False):
        endpoint, new_secret = webhooks.webhook_endpoint_rotate_secret(
            tenant=tenant, endpoint=endpoint
        )
        record(tenant)
    assert new_secret != old_secret
    deliver(T0)
    request = receiver.requests[-1]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    verify(old_secret, request, T0)
    verify(new_secret, request, T0)
    later = T0 + dt.timedelta(hours=24, minutes=1)
    with time_machine.travel(later, tick=False):
        record(tenant)
    deliver(later)
    request = receiver.requests[-1]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 1
    verify(new_secret, request, later)
    with pytest.raises(WebhookVerificationError):
        verify(old_secret, request, later)


def test_secret_is_encrypted_at_rest(tenant, endpoint_secret):
    endpoint, secret = endpoint_secret
    stored = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert secret not in stored.secret_encrypted
    assert webhooks.endpoint_secret(stored) == secret
    assert webhooks.secret_masked(stored) == f"whsec_…{secret[-4:]}"


def test_two_claims_never_take_one_delivery(tenant, endpoint_secret):
    for _ in range(5):
        record(tenant)
    _token_a, first = webhooks.webhook_deliveries_claim(limit=3)
    _token_b, second = webhooks.webhook_deliveries_claim(limit=10)
    assert len(first) == 3 and len(second) == 2
    assert not {d.pk for d in first} & {d.pk for d in second}
    assert webhooks.webhook_deliveries_claim()[1] == []


def test_ping_and_manual_retry(
    tenant, endpoint_secret, receiver, django_capture_on_commit_callbacks
):
    endpoint, _secret = endpoint_secret
    receiver.plan = [500]
    with django_capture_on_commit_callbacks(execute=True):
        delivery = webhooks.webhook_endpoint_ping(tenant=tenant, endpoint=endpoint)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING and delivery.attempts == 1
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.webhook_delivery_retry(tenant=tenant, delivery=delivery)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED and delivery.attempts == 2
    body = json.loads(receiver.requests[-1]["body"])
    assert body["type"] == "ping" and body["data"] == {"endpoint": endpoint.pk}


def test_a_delivery_keeps_the_history_of_its_latest_ten_attempts(
    tenant, alice, endpoint_secret, receiver, monkeypatch, staff, english
):
    """Every attempt is logged on the delivery (time, answer's status or the error, how
    long), the latest ATTEMPT_LOG_LENGTH kept; the console's webhook page and the admin
    show them."""
    monkeypatch.setattr(webhooks, "JITTER", 0)
    endpoint, _secret = endpoint_secret
    receiver.plan = [500] * 10 + [200]
    with time_machine.travel(T0, tick=False):
        event = record(tenant)
    at, times = T0, []
    while True:  # the schedule's 8 attempts, all refused
        deliver(at)
        times.append(at)
        delivery = WebhookDelivery.objects.get(event=event)
        if delivery.status != WebhookDelivery.Status.PENDING:
            break
        at = delivery.next_attempt_at
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert len(delivery.attempt_log) == delivery.attempts == 8
    assert delivery.attempt_log[0] == {
        "at": T0.isoformat(),
        "status": 500,
        "error": "HTTP 500",
        "duration_ms": delivery.attempt_log[0]["duration_ms"],
    }
    # The customer retries three times: two more refusals, then a success.
    for _ in range(3):
        at += dt.timedelta(hours=1)
        with time_machine.travel(at, tick=False):
            webhooks.webhook_delivery_retry(tenant=tenant, delivery=delivery)
        deliver(at)
        times.append(at)
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.SUCCEEDED and delivery.attempts == 11
    log = delivery.attempt_log
    assert len(log) == WebhookDelivery.ATTEMPT_LOG_LENGTH == 10
    assert [entry["at"] for entry in log] == [t.isoformat() for t in times[1:]]
    assert [entry["status"] for entry in log] == [500] * 9 + [200]
    assert log[-1]["error"] == "" and all(isinstance(e["duration_ms"], int) for e in log)
    assert [row["at"] for row in delivery.attempt_history] == list(reversed(times[1:]))

    client = Client()
    client.force_login(alice)
    page = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert "The latest 10 attempts" in page
    last = timezone.localtime(times[-1]).strftime("%Y-%m-%d %H:%M:%S")
    assert f"<li>{last} · HTTP 200" in page
    assert page.count("HTTP 500") >= 9

    admin = Client()
    admin.force_login(staff)
    html = admin.get(f"/admin/console/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert html.count("<li>") >= 10 and "HTTP 200" in html and "HTTP 500" in html
    listed = admin.get("/admin/console/webhookdelivery/", {"q": tenant.slug})
    assert [d.pk for d in listed.context["cl"].result_list] == [delivery.pk]
    assert admin.get("/admin/console/webhookdelivery/add/").status_code == 403
