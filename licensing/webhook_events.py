"""R15: licensing's webhook events — what a change tells customers' systems.

The services call these inside their own transaction and after their own locks, so an
event is stored with the change or not at all (console.webhooks). `device.service_changed`
compares a device's service level (R6: VALID / DEGRADED / NO_VALID_LICENSE for what it
pushes when no cameras are named, rules.device_service) before and after the change: a
snapshot is taken before it and compared after — two queries each, and none at all when no
endpoint of the tenant wants that event.
"""

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Prefetch
from django.utils import timezone

from console.models import WebhookEndpoint
from console.timeutils import start_of_business_day
from console.webhooks import webhook_events_record, webhook_tenants_wanting
from devices.models import Camera, FieldDevice
from licensing import rules
from licensing.models import License

SERVICE_CHANGED = "device.service_changed"


def device_service_codes(
    device_ids: Iterable[int], *, at: dt.datetime, extra_valid: dict[int, int] | None = None
) -> dict[int, str]:
    """R6's service code of each device (two queries for any number of devices);
    `extra_valid` adds licenses counted as valid (the moment before they expired)."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    valid = dict(
        License.objects.filter(device_id__in=ids)
        .valid_at(at)
        .values("device_id")
        .annotate(n=Count("id"))
        .values_list("device_id", "n")
    )
    devices = FieldDevice.objects.filter(pk__in=ids).prefetch_related(
        Prefetch("cameras", queryset=Camera.objects.order_by("id"))
    )
    codes = {}
    for device in devices:
        count = valid.get(device.pk, 0) + (extra_valid or {}).get(device.pk, 0)
        codes[device.pk], _choice = rules.device_service(
            list(device.cameras.all()),
            licenses_valid=count,
            max_concurrent_streams=device.max_concurrent_streams,
        )
    return codes


@dataclass
class ServiceSnapshot:
    tenant_id: int
    at: dt.datetime
    codes: dict[int, str]


def device_service_snapshot(
    *, tenant_id: int, device_ids: Iterable[int | None], at: dt.datetime | None = None
) -> ServiceSnapshot | None:
    """The devices' service levels before a change; None when nobody listens."""
    ids = {pk for pk in device_ids if pk is not None}
    if not ids or not webhook_tenants_wanting(tenant_ids=[tenant_id], type=SERVICE_CHANGED):
        return None
    at = at or timezone.now()
    return ServiceSnapshot(tenant_id, at, device_service_codes(ids, at=at))


def device_service_changes_record(snapshot: ServiceSnapshot | None) -> None:
    """After the change: a `device.service_changed` event per device whose level moved."""
    if snapshot is None:
        return
    after = device_service_codes(snapshot.codes, at=snapshot.at)
    webhook_events_record(
        events=[
            (
                snapshot.tenant_id,
                SERVICE_CHANGED,
                {"device": pk, "code": {"before": before, "after": after[pk]}},
            )
            for pk, before in sorted(snapshot.codes.items())
            if pk in after and after[pk] != before
        ]
    )


@contextmanager
def device_service_watched(*, tenant_id: int, device_id: int) -> Iterator[None]:
    """R15: a change to a device's cameras (devices.services knows nothing of licenses) in
    one transaction with the `device.service_changed` event it causes, if it moves the
    device's service level. The API and the pages wrap camera writes in it."""
    with transaction.atomic():
        snapshot = device_service_snapshot(tenant_id=tenant_id, device_ids=[device_id])
        yield
        device_service_changes_record(snapshot)


def licenses_event_data(licenses: Sequence[License], **extra) -> list[dict]:
    return [
        {"license": lic.pk, "device": lic.device_id, "expires_at": lic.expires_at, **extra}
        for lic in licenses
    ]


def expired_events_record(*, rows: Sequence[tuple[int, int, int | None, dt.date]], at) -> None:
    """The nightly job's batch (R5): one `license.expired` event per tenant and expiry date
    listing its licenses, and `device.service_changed` for the devices that lost them.
    `rows` are (license id, tenant id, device id, expiry date) of the licenses the batch
    expired, for the tenants with a listening endpoint only."""
    if not rows:
        return
    groups: dict[tuple[int, dt.date], list[int]] = defaultdict(list)
    lost: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for license_id, tenant_id, device_id, day in rows:
        groups[(tenant_id, day)].append(license_id)
        if device_id is not None:
            lost[tenant_id][device_id] += 1
    events = [
        (tenant_id, "license.expired", {"expiry_date": day, "licenses": sorted(ids)})
        for (tenant_id, day), ids in sorted(groups.items())
    ]
    listening = webhook_tenants_wanting(tenant_ids=lost, type=SERVICE_CHANGED)
    for tenant_id in sorted(listening):
        devices = lost[tenant_id]
        after = device_service_codes(devices, at=at)
        before = device_service_codes(devices, at=at, extra_valid=devices)
        events += [
            (
                tenant_id,
                SERVICE_CHANGED,
                {"device": pk, "code": {"before": before[pk], "after": after[pk]}},
            )
            for pk in sorted(after)
            if before.get(pk) != after[pk]
        ]
    webhook_events_record(events=events)


def expiry_listening_tenants() -> set[int]:
    """Tenants whose endpoints want what the expiry job tells (checked once per batch)."""
    tenant_ids = set(
        WebhookEndpoint.objects.filter(enabled=True).values_list("tenant_id", flat=True)
    )
    return webhook_tenants_wanting(
        tenant_ids=tenant_ids, type="license.expired"
    ) | webhook_tenants_wanting(tenant_ids=tenant_ids, type=SERVICE_CHANGED)


def expiring_event_record(*, tenant_id: int, milestone: int, expiry_date: dt.date) -> None:
    """R11's reminder, for webhooks: `license.expiring` with the milestone (days before the
    expiry date), the date and the tenant's licenses that expire on it."""
    if not webhook_tenants_wanting(tenant_ids=[tenant_id], type="license.expiring"):
        return
    start = start_of_business_day(expiry_date)
    licenses = list(
        License.objects.filter(
            tenant_id=tenant_id,
            status=License.Status.ACTIVE,
            expires_at__gte=start,
            expires_at__lt=start + dt.timedelta(days=1),
        )
        .order_by("id")
        .values_list("id", flat=True)
    )
    webhook_events_record(
        events=[
            (
                tenant_id,
                "license.expiring",
                {"milestone": milestone, "expiry_date": expiry_date, "licenses": licenses},
            )
        ]
    )


def webhooks_enabled_q(tenant_field: str) -> Exists:
    """An annotation: whether the row's tenant has an enabled webhook endpoint (a job asks
    it in a statement it runs anyway)."""
    return Exists(
        WebhookEndpoint.objects.filter(tenant_id=OuterRef(f"{tenant_field}_id"), enabled=True)
    )
