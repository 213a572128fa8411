"""Webhooks (R15): tenants' endpoints, events stored with the change, signed deliveries.

    record   webhook_event_record / webhook_events_record store each event and one delivery
             per enabled endpoint that wants its type, in the caller's transaction (a
             rolled-back change stores nothing), set-based (one SELECT of the endpoints, two
             INSERTs), then, on commit, queue the delivery task for those events.
    deliver  webhook_deliveries_deliver: claim due deliveries with a compare-and-set and a
             lease (as console.outbox does for emails), POST each one signed per the
             Standard Webhooks specification, mark it succeeded or schedule its retry.

Three things deliver and may run at the same moment: the task queued on commit, the
periodic sweep (beat, every minute: lost tasks, retries, and endpoints to disable) and a
manual retry. A delivery goes to whichever claim's UPDATE matched it, so two workers never
send one delivery at once. Delivery is at least once: a worker that dies after the receiver
answered and before the row says so sends it again after the lease, with the same
`webhook-id` (the event's id), which receivers use to de-duplicate. Each attempt is signed
afresh with a new `webhook-timestamp` (verifiers refuse old ones).

Retries (R15): 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, each ±20 % (jitter, so a receiver
that was down is not hit by every retry at once), then the delivery is failed. An endpoint
with no successful delivery for 72 hours since its first failure is disabled and its
tenant's owners are emailed.

Safety: https only (unless WEBHOOK_ALLOW_HTTP), no credentials in the URL, and a host that
resolves to a private, loopback, link-local, multicast or reserved address is refused when
the endpoint is saved and again at every attempt, which connects to the address it checked
(DNS may have changed since) — unless WEBHOOK_ALLOW_PRIVATE. No redirect is followed; an
attempt takes at most TIMEOUT seconds in all (a receiver that dribbles its answer is cut),
and at most RESPONSE_BODY_LIMIT bytes of the answer are read.
"""

import base64
import contextlib
import datetime as dt
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from standardwebhooks import Webhook
from urllib3.connection import HTTPConnection, HTTPSConnection

from console import claims
from console.celery import enqueue
from console.emails import send_templated_email, tenant_recipients
from console.errors import InvalidInput
from console.models import (
    Membership,
    Tenant,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from console.services import Actor, audit_record, tenant_lock

logger = logging.getLogger(__name__)

# The Celery task (console.tasks), queued by name: console.tasks imports this module.
DELIVER_TASK = "console.tasks.deliver_webhooks"

EVENT_TYPES = {
    "license.expiring": gettext_lazy("A license reaches a reminder milestone before expiry"),
    "license.expired": gettext_lazy("Licenses expired"),
    "license.bound": gettext_lazy("A license was bound to a device"),
    "license.unbound": gettext_lazy("A license was unbound from a device"),
    "device.service_changed": gettext_lazy("A device's service level changed"),
    "control.started": gettext_lazy("A cockpit took control of a device"),
    "control.ended": gettext_lazy("A control session ended"),
    "order.paid": gettext_lazy("An order was paid"),
    "order.refunded": gettext_lazy("An order was refunded"),
    "ping": gettext_lazy("A test event sent on request"),
}
ALL_EVENTS = "*"

# R15: the wait after the n-th failed attempt is RETRY_DELAYS[n - 1] (± JITTER); after the
# last one the delivery is failed (about 31.6 hours after the event).
RETRY_DELAYS = (
    dt.timedelta(seconds=5),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=5),
    dt.timedelta(hours=10),
    dt.timedelta(hours=14),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.2
DISABLE_AFTER = dt.timedelta(hours=72)
ROTATION_OVERLAP = dt.timedelta(hours=24)

MAX_ENDPOINTS_PER_TENANT = 20
MAX_URL_LENGTH = 2000
# One attempt, connect to the last byte read, in seconds: a 2xx within it is success.
TIMEOUT = 10.0
RESPONSE_BODY_LIMIT = 1024
ERROR_MAX_LENGTH = 1000
# An error as the attempt history keeps it (the last one is on the row in full).
ATTEMPT_LOG_ERROR_LENGTH = 200
# A worker holds its claimed deliveries this long: longer than the task's hard time limit
# (console.tasks), so a killed task's deliveries are not sent by another worker meanwhile;
# a worker stops after half of it (BATCH_SEND_WINDOW) and hands the rest back.
LEASE = dt.timedelta(minutes=10)
BATCH_SEND_WINDOW = LEASE / 2
BATCH_SIZE = 20

SECRET_PREFIX = "whsec_"
_HKDF_INFO = b"field-console webhook secrets"
USER_AGENT = "FieldConsole-Webhooks/1"

DISABLED_FAILING = "failing"

Status = WebhookDelivery.Status


# --- secrets at rest ----------------------------------------------------------------------------
# The secret signs every delivery, so it must be readable: encrypted with a key derived from
# SECRET_KEY (SECRET_KEY_FALLBACKS still decrypt after a rotation of SECRET_KEY).


def _fernet() -> MultiFernet:
    keys = []
    for secret in [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
            secret.encode()
        )
        keys.append(Fernet(base64.urlsafe_b64encode(key)))
    return MultiFernet(keys)


def secret_generate() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise RuntimeError(
            "a webhook secret cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS"
        ) from exc


def endpoint_secret(endpoint: WebhookEndpoint) -> str:
    return secret_decrypt(endpoint.secret_encrypted)


def secret_masked(endpoint: WebhookEndpoint) -> str:
    """What the API and the console show after creation: the prefix and the last 4."""
    return f"{SECRET_PREFIX}…{endpoint_secret(endpoint)[-4:]}"


def signing_secrets(endpoint: WebhookEndpoint, at: dt.datetime) -> list[str]:
    """The secrets that sign a delivery at `at`: the current one, and during the 24 hours
    after a rotation the previous one too (a second `v1,` signature)."""
    found = [endpoint_secret(endpoint)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_until
        and endpoint.previous_secret_until > at
    ):
        found.append(secret_decrypt(endpoint.previous_secret_encrypted))
    return found


# --- URL safety ---------------------------------------------------------------------------------


class UrlForbidden(Exception):
    """The URL's host resolves to an address webhooks may not reach."""


def address_forbidden(address: str) -> bool:
    """Private, loopback, link-local, multicast, reserved, unspecified or shared (CGNAT)
    addresses: anything not globally routable (an IPv4-mapped IPv6 address is judged as the
    IPv4 address it carries)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_multicast or ip.is_reserved or not ip.is_global


def resolve_checked(host: str, port: int) -> str:
    """One address of `host` that webhooks may reach (connect to that one, not the name: a
    second resolution could answer differently). Raises UrlForbidden when any address is
    forbidden (and WEBHOOK_ALLOW_PRIVATE is off), OSError when the name does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise OSError(f"{host} has no address")
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        bad = [a for a in addresses if address_forbidden(a)]
        if bad:
            raise UrlForbidden(f"{host} resolves to a forbidden address ({bad[0]})")
    return addresses[0]


def url_errors(url: Any) -> tuple[list[str], bool]:
    """The URL's problems (messages for the `url` field) and whether it is forbidden by
    address (WEBHOOK_URL_FORBIDDEN) rather than malformed."""
    if not isinstance(url, str) or not url:
        return [_("Enter a URL.")], False
    if len(url) > MAX_URL_LENGTH:
        return [_("Use at most %(max)d characters.") % {"max": MAX_URL_LENGTH}], False
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return [_("Enter a valid URL.")], False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [_("Enter a valid URL.")], False
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        return [_("Use an https:// URL.")], False
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return [_("Do not put credentials in the URL.")], False
    if not parts.hostname:
        return [_("Enter a valid URL.")], False
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return [], False
    try:
        resolve_checked(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except UrlForbidden:
        return [
            _(
                "This address is on a private, loopback, link-local or reserved network; "
                "webhooks may not be sent there."
            )
        ], True
    except (OSError, UnicodeError):
        return [_("This host name does not resolve.")], False
    return [], False


def events_errors(events: Any) -> list[str]:
    if not isinstance(events, list) or not events:
        return [_('Give a list of event types, or ["*"] for all of them.')]
    if events == [ALL_EVENTS]:
        return []
    unknown = [e for e in events if not isinstance(e, str) or e not in EVENT_TYPES]
    if unknown:
        return [_("Unknown event type: %(type)s.") % {"type": str(e)[:64]} for e in unknown[:10]]
    return []


def wants(events: Sequence[str], type_: str) -> bool:
    return ALL_EVENTS in events or type_ in events


# --- endpoints ----------------------------------------------------------------------------------


def webhook_endpoints(tenant: Tenant) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.filter(tenant=tenant).order_by("created_at", "id")


def webhook_deliveries(tenant: Tenant, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    return (
        WebhookDelivery.objects.filter(endpoint=endpoint, endpoint__tenant=tenant)
        .select_related("event")
        .order_by("-created_at", "-id")
    )


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    forbidden = False
    if "url" in values:
        messages, forbidden = url_errors(values["url"])
        if messages:
            errors["url"] = messages
    if "events" in values:
        messages = events_errors(values["events"])
        if messages:
            errors["events"] = messages
        else:
            values["events"] = list(dict.fromkeys(values["events"]))
    if "enabled" in values and not isinstance(values["enabled"], bool):
        errors["enabled"] = [_("Must be true or false.")]
    if errors:
        code = "WEBHOOK_URL_FORBIDDEN" if forbidden else "INVALID"
        raise InvalidInput(next(iter(errors.values()))[0], code=code, errors=errors)
    return values


@transaction.atomic
def webhook_endpoint_create(
    *, tenant: Tenant, url: str, events: list[str], enabled: bool = True, actor: Actor = None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (returned in full here only)."""
    values = _validate({"url": url, "events": events, "enabled": enabled})
    # The tenant's row lock makes the count and the insert one step: two concurrent
    # creations cannot both be the 20th.
    tenant_lock(tenant.pk)
    if WebhookEndpoint.objects.filter(tenant=tenant).count() >= MAX_ENDPOINTS_PER_TENANT:
        message = _("A tenant may have at most %(max)d webhook endpoints.") % {
            "max": MAX_ENDPOINTS_PER_TENANT
        }
        raise InvalidInput(
            message, code="WEBHOOK_ENDPOINT_LIMIT", errors={"non_field_errors": [message]}
        )
    secret = secret_generate()
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant, secret_encrypted=secret_encrypt(secret), **values
    )
    audit_record(
        tenant=tenant,
        action="webhook.created",
        target=endpoint,
        actor=actor,
        data={"url": endpoint.url, "events": endpoint.events},
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(
    *, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor = None, **values: Any
) -> WebhookEndpoint:
    values = _validate({k: v for k, v in values.items() if k in ("url", "events", "enabled")})
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk, tenant=tenant)
    changed = {k: v for k, v in values.items() if getattr(endpoint, k) != v}
    if not changed:
        return endpoint
    for key, value in changed.items():
        setattr(endpoint, key, value)
    fields = list(changed)
    if changed.get("enabled") is True:
        # Enabled again: its 72 hours start over; its pending deliveries go out again.
        endpoint.failing_since, endpoint.disabled_at, endpoint.disabled_reason = None, None, ""
        fields += ["failing_since", "disabled_at", "disabled_reason"]
        transaction.on_commit(lambda: _queue_endpoint(endpoint.pk), robust=True)
    elif changed.get("enabled") is False:
        endpoint.disabled_at, endpoint.disabled_reason = timezone.now(), ""
        fields += ["disabled_at", "disabled_reason"]
    endpoint.save(update_fields=fields)
    audit_record(
        tenant=tenant, action="webhook.updated", target=endpoint, actor=actor, data=changed
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor = None):
    audit_record(
        tenant=tenant,
        action="webhook.deleted",
        target=endpoint,
        actor=actor,
        data={"url": endpoint.url},
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk, tenant=tenant).delete()


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor = None
) -> tuple[WebhookEndpoint, str]:
    """R15: a new secret (returned in full here only); the current one keeps signing too for
    ROTATION_OVERLAP, so receivers switch without missing a delivery."""
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk, tenant=tenant)
    secret = secret_generate()
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_until = timezone.now() + ROTATION_OVERLAP
    endpoint.secret_encrypted = secret_encrypt(secret)
    endpoint.save(
        update_fields=["previous_secret_encrypted", "previous_secret_until", "secret_encrypted"]
    )
    audit_record(tenant=tenant, action="webhook.secret_rotated", target=endpoint, actor=actor)
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_ping(
    *, tenant: Tenant, endpoint: WebhookEndpoint, actor: Actor = None
) -> WebhookDelivery:
    """A `ping` event to this endpoint alone (even one that does not list `ping`)."""
    now = timezone.now()
    event = WebhookEvent.objects.create(
        tenant=tenant, type="ping", data={"endpoint": endpoint.pk}, created_at=now
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event=event, next_attempt_at=now, created_at=now
    )
    event_ids = [str(event.pk)]
    transaction.on_commit(lambda: webhook_deliveries_queue(event_ids=event_ids), robust=True)
    return delivery


@transaction.atomic
def webhook_delivery_retry(
    *, tenant: Tenant, delivery: WebhookDelivery, actor: Actor = None
) -> WebhookDelivery:
    """A customer's "retry": the delivery is due now (a failed one gets one more attempt;
    a succeeded one is sent again, with the same webhook-id)."""
    now = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk, endpoint__tenant=tenant).update(
        status=Status.PENDING, next_attempt_at=now
    )
    audit_record(tenant=tenant, action="webhook.retried", target=delivery, actor=actor)
    event_ids = [str(delivery.event_id)]
    transaction.on_commit(lambda: webhook_deliveries_queue(event_ids=event_ids), robust=True)
    delivery.refresh_from_db()
    return delivery


# --- record -------------------------------------------------------------------------------------

NewEvent = tuple[int, str, dict[str, Any]]  # (tenant id, type, data)


def _enabled_endpoints(tenant_ids: set[int]) -> dict[int, list[tuple[int, list[str]]]]:
    """tenant id → [(endpoint id, events)] of its enabled endpoints. One query; for a job's
    batch of thousands of tenants, all enabled endpoints (few: at most 20 per tenant that
    uses webhooks) instead of a list of ids longer than SQLite allows."""
    rows = WebhookEndpoint.objects.filter(enabled=True)
    if len(tenant_ids) <= 500:
        rows = rows.filter(tenant_id__in=tenant_ids)
    found: dict[int, list[tuple[int, list[str]]]] = {}
    for pk, tenant_id, events in rows.order_by("id").values_list("id", "tenant_id", "events"):
        if tenant_id in tenant_ids:
            found.setdefault(tenant_id, []).append((pk, events or []))
    return found


def webhook_tenants_wanting(*, tenant_ids: Iterable[int], type: str) -> set[int]:
    """The tenants among `tenant_ids` with an enabled endpoint for `type`: callers ask first
    when an event's data costs queries to compute (a device's service level)."""
    endpoints = _enabled_endpoints(set(tenant_ids))
    return {t for t, eps in endpoints.items() if any(wants(events, type) for _pk, events in eps)}


def webhook_events_record(*, events: Sequence[NewEvent]) -> list[WebhookEvent]:
    """Store `events` and one delivery per enabled endpoint that wants each, in the current
    transaction (its own outside one), and queue their delivery once it commits. An event no
    endpoint wants is not stored. One SELECT and two INSERTs however many events: the
    nightly expiry job records a batch's events at once."""
    if not events:
        return []
    endpoints = _enabled_endpoints({tenant_id for tenant_id, _t, _d in events})
    if not endpoints:
        return []
    now = timezone.now()
    stored: list[WebhookEvent] = []
    deliveries: list[WebhookDelivery] = []
    for tenant_id, type_, data in events:
        targets = [pk for pk, wanted in endpoints.get(tenant_id, ()) if wants(wanted, type_)]
        if not targets:
            continue
        event = WebhookEvent(id=uuid.uuid4(), tenant_id=tenant_id, type=type_, data=data)
        event.created_at = now
        stored.append(event)
        deliveries += [
            WebhookDelivery(endpoint_id=pk, event=event, next_attempt_at=now, created_at=now)
            for pk in targets
        ]
    if not stored:
        return []
    with transaction.atomic(savepoint=False):
        WebhookEvent.objects.bulk_create(stored, batch_size=1000)
        WebhookDelivery.objects.bulk_create(deliveries, batch_size=1000)
        event_ids = [str(event.pk) for event in stored]
        transaction.on_commit(lambda: webhook_deliveries_queue(event_ids=event_ids), robust=True)
    return stored


def webhook_event_record(*, tenant: Tenant | int, type: str, data: dict[str, Any]):
    """Store one event of `tenant` (see webhook_events_record); None when no endpoint of the
    tenant wants it."""
    assert type in EVENT_TYPES, type
    tenant_id = tenant.pk if isinstance(tenant, Tenant) else tenant
    stored = webhook_events_record(events=[(tenant_id, type, data)])
    return stored[0] if stored else None


def webhook_deliveries_queue(*, event_ids: list[str]) -> None:
    """Ask a worker to deliver these events now. Best effort: with the broker down they wait
    for the periodic sweep; nothing is lost, so no error."""
    try:
        enqueue(DELIVER_TASK, event_ids)
    except Exception:
        logger.warning(
            "webhook queue unavailable: %d event(s) wait for the sweep",
            len(event_ids),
            exc_info=True,
        )


def _queue_endpoint(endpoint_id: int) -> None:
    event_ids = [
        str(pk)
        for pk in WebhookDelivery.objects.filter(
            endpoint_id=endpoint_id, status=Status.PENDING
        ).values_list("event_id", flat=True)[:1000]
    ]
    if event_ids:
        webhook_deliveries_queue(event_ids=event_ids)


# --- deliver ------------------------------------------------------------------------------------


@dataclass
class DeliveryRun:
    succeeded: int = 0
    retrying: int = 0
    failed: int = 0
    disabled: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "succeeded": self.succeeded,
            "retrying": self.retrying,
            "failed": self.failed,
            "disabled": self.disabled,
        }


@dataclass
class AttemptResult:
    ok: bool
    status: int | None = None
    body: str = ""
    error: str = ""
    duration_ms: int = 0


def _due(now: dt.datetime) -> QuerySet[WebhookDelivery]:
    return claims.due(WebhookDelivery.objects.all(), now=now)


def webhook_deliveries_claim(
    *, event_ids: Sequence[str] | None = None, limit: int = BATCH_SIZE
) -> tuple[str, list[WebhookDelivery]]:
    """Claim up to `limit` due deliveries to enabled endpoints (only those of `event_ids`
    when given), oldest due first (so each endpoint gets its events in order, where the
    retries allow). Compare-and-set: the UPDATE repeats the "due and not leased" condition,
    so of two workers that read the same ids only one UPDATE matches each row."""
    now = timezone.now()
    due = _due(now).filter(endpoint__enabled=True)
    if event_ids is not None:
        due = due.filter(event_id__in=list(event_ids))
    token, ids = claims.claim(due, now=now, lease=LEASE, limit=limit)
    if not ids:
        return token, []
    rows = WebhookDelivery.objects.filter(pk__in=ids, claim_token=token)
    return token, list(rows.select_related("endpoint", "event").order_by("next_attempt_at", "id"))


def payload_body(event: WebhookEvent) -> str:
    """The JSON body: the same bytes on every attempt."""
    return json.dumps(
        {
            "id": event.msg_id,
            "type": event.type,
            "timestamp": event.created_at.isoformat(),
            "data": event.data,
        },
        cls=DjangoJSONEncoder,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def signed_headers(endpoint: WebhookEndpoint, event: WebhookEvent, body: str) -> dict[str, str]:
    """Standard Webhooks headers, signed now: a fresh webhook-timestamp on every attempt."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    signatures = [
        Webhook(secret).sign(msg_id=event.msg_id, timestamp=now, data=body)
        for secret in signing_secrets(endpoint, now)
    ]
    return {
        "webhook-id": event.msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def http_post(url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
    """POST `body` to `url`: connect to an address checked now, follow no redirect, give up
    after TIMEOUT seconds in all (a watchdog closes the socket of a receiver that answers a
    byte at a time), read at most RESPONSE_BODY_LIMIT bytes of the answer."""
    started = time.monotonic()

    def result(**fields) -> AttemptResult:
        return AttemptResult(duration_ms=int((time.monotonic() - started) * 1000), **fields)

    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    try:
        address = resolve_checked(host, port)
    except UrlForbidden as exc:
        return result(ok=False, error=f"forbidden address: {exc}")
    except (OSError, UnicodeError) as exc:
        return result(ok=False, error=f"DNS: {exc}"[:ERROR_MAX_LENGTH])
    if https:
        conn: HTTPConnection = HTTPSConnection(
            address,
            port,
            timeout=TIMEOUT,
            server_hostname=host,
            ca_certs=settings.WEBHOOK_CA_BUNDLE or None,
        )
    else:
        conn = HTTPConnection(address, port, timeout=TIMEOUT)
    timed_out = threading.Event()

    def abort() -> None:
        timed_out.set()
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(TIMEOUT, abort)
    watchdog.daemon = True
    watchdog.start()
    host_header = host if ":" not in host else f"[{host}]"
    if parts.port:
        host_header += f":{parts.port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request(
            "POST",
            target,
            body=body,
            headers={**headers, "host": host_header, "content-length": str(len(body))},
            preload_content=False,
        )
        response = conn.getresponse()
        if timed_out.is_set():
            # Cut before its head was complete (a receiver dribbling its answer).
            return result(ok=False, error=f"timed out after {TIMEOUT:g} s")
        status = response.status
        try:
            raw = response.read(RESPONSE_BODY_LIMIT, decode_content=False)
        except Exception:  # the body is for the log only: its loss changes nothing
            raw = b""
        text = raw[:RESPONSE_BODY_LIMIT].decode("utf-8", errors="replace")
        if 200 <= status < 300:
            return result(ok=True, status=status, body=text)
        error = f"HTTP {status}"
        if 300 <= status < 400:
            error += " (redirects are not followed)"
        return result(ok=False, status=status, body=text, error=error)
    except Exception as exc:
        if timed_out.is_set():
            return result(ok=False, error=f"timed out after {TIMEOUT:g} s")
        return result(ok=False, error=f"{type(exc).__name__}: {exc}"[:ERROR_MAX_LENGTH])
    finally:
        watchdog.cancel()
        try:
            conn.close()
        except Exception:
            logger.debug("closing a webhook connection failed", exc_info=True)


def next_attempt_delay(attempts: int) -> dt.timedelta | None:
    """The wait after the `attempts`-th failed attempt (R15's schedule ± JITTER), or None
    when it was the last."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[max(attempts, 1) - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def _mine(delivery: WebhookDelivery, token: str) -> QuerySet[WebhookDelivery]:
    # Only the claim that holds the row may finish it: after a lapsed lease another worker
    # may own it now.
    return WebhookDelivery.objects.filter(pk=delivery.pk, claim_token=token, status=Status.PENDING)


def attempt_log_add(log: list[dict] | None, *, at: dt.datetime, outcome: AttemptResult) -> list:
    """The delivery's attempt history with this attempt last, at most the latest
    ATTEMPT_LOG_LENGTH (no body: the last one is on the row)."""
    entry = {
        "at": at.isoformat(),
        "status": outcome.status,
        "error": outcome.error[:ATTEMPT_LOG_ERROR_LENGTH],
        "duration_ms": outcome.duration_ms,
    }
    return [*(log or []), entry][-WebhookDelivery.ATTEMPT_LOG_LENGTH :]


def _finish(delivery: WebhookDelivery, token: str, outcome: AttemptResult) -> str:
    now = timezone.now()
    fields: dict[str, Any] = {
        "lease_until": None,
        "last_attempt_at": now,
        "response_status": outcome.status,
        "response_body": outcome.body[:RESPONSE_BODY_LIMIT],
        "duration_ms": outcome.duration_ms,
        "last_error": outcome.error[:ERROR_MAX_LENGTH],
        # Read with the claim, written by the claim's holder only (_mine): no lost entry.
        "attempt_log": attempt_log_add(delivery.attempt_log, at=now, outcome=outcome),
    }
    endpoint = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
    if outcome.ok:
        fields.update(status=Status.SUCCEEDED, delivered_at=now)
        if not _mine(delivery, token).update(**fields):
            logger.warning("webhook delivery %s: succeeded after its lease lapsed", delivery.pk)
        endpoint.update(failing_since=None, last_success_at=now)
        return "succeeded"
    delay = next_attempt_delay(delivery.attempts)
    if delay is None:
        fields["status"] = Status.FAILED
    else:
        fields["next_attempt_at"] = now + delay
    _mine(delivery, token).update(**fields)
    endpoint.filter(failing_since__isnull=True).update(failing_since=now)
    return "failed" if delay is None else "retrying"


def webhook_delivery_attempt(delivery: WebhookDelivery, token: str) -> str:
    """One signed attempt of a claimed delivery; its outcome recorded on the row."""
    body = payload_body(delivery.event)
    headers = signed_headers(delivery.endpoint, delivery.event, body)
    outcome = http_post(delivery.endpoint.url, body.encode(), headers)
    if not outcome.ok:
        logger.info(
            "webhook %s to endpoint %s: %s",
            delivery.event.msg_id,
            delivery.endpoint_id,
            outcome.error,
        )
    return _finish(delivery, token, outcome)


def _hand_back(deliveries: Sequence[WebhookDelivery], token: str) -> None:
    """Release claimed deliveries that were not tried: not an attempt."""
    WebhookDelivery.objects.filter(
        pk__in=[d.pk for d in deliveries], claim_token=token, status=Status.PENDING
    ).update(lease_until=None, attempts=F("attempts") - 1)


def webhook_endpoints_disable_failing(*, now: dt.datetime | None = None) -> int:
    """R15: disable every enabled endpoint with no success for DISABLE_AFTER since its first
    failure, and email its tenant's owners. Compare-and-set: of two sweeps, one disables
    and emails."""
    now = now or timezone.now()
    cutoff = now - DISABLE_AFTER
    disabled = 0
    candidates = WebhookEndpoint.objects.filter(enabled=True, failing_since__lte=cutoff)
    for endpoint in candidates.select_related("tenant")[:1000]:
        with transaction.atomic():
            changed = WebhookEndpoint.objects.filter(
                pk=endpoint.pk, enabled=True, failing_since__lte=cutoff
            ).update(enabled=False, disabled_at=now, disabled_reason=DISABLED_FAILING)
            if not changed:
                continue
            disabled += 1
            audit_record(
                tenant=endpoint.tenant,
                action="webhook.disabled",
                target=endpoint,
                data={"failing_since": endpoint.failing_since.isoformat()},
            )
            send_templated_email(
                recipients=tenant_recipients(endpoint.tenant, roles=(Membership.Role.OWNER,)),
                template_prefix="emails/webhook_disabled",
                context={"endpoint": endpoint, "tenant": endpoint.tenant},
                dedup_key=f"webhook-disabled:{endpoint.pk}:{now:%Y%m%d%H%M}",
            )
    return disabled


def webhook_deliveries_deliver(
    *,
    event_ids: Sequence[str] | None = None,
    batch_size: int = BATCH_SIZE,
    time_budget: float | None = None,
) -> DeliveryRun:
    """Send every due delivery (only those of `event_ids` when given), batch by batch, until
    none is left or `time_budget` seconds have passed. The sweep (no `event_ids`) first
    disables the endpoints failing for 72 hours. Safe to run any number of times at once;
    failures are recorded on the rows, never raised."""
    run = DeliveryRun()
    started = time.monotonic()
    if event_ids is None:
        run.disabled = webhook_endpoints_disable_failing()
    while True:
        token, deliveries = webhook_deliveries_claim(event_ids=event_ids, limit=batch_size)
        if not deliveries:
            break
        deadline = time.monotonic() + BATCH_SEND_WINDOW.total_seconds()
        for index, delivery in enumerate(deliveries):
            if time.monotonic() > deadline:
                _hand_back(deliveries[index:], token)
                break
            outcome = webhook_delivery_attempt(delivery, token)
            setattr(run, outcome, getattr(run, outcome) + 1)
        if time_budget is not None and time.monotonic() - started > time_budget:
            break
    if run.succeeded or run.retrying or run.failed or run.disabled:
        logger.info("webhooks: %s", run.as_dict())
    return run
