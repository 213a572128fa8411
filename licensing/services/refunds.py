"""R10: refunded licenses are unbound and never count again (billing decides whether the
money may go back; licensing never calls billing)."""

import datetime as dt
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import InvalidInput
from console.models import Tenant
from console.services import Actor, audit_record_many
from console.webhooks import webhook_events_record
from licensing.models import License
from licensing.webhook_events import (
    device_service_changes_record,
    device_service_snapshot,
    licenses_event_data,
)


def licenses_refund(
    *,
    tenant: Tenant,
    license_ids: Sequence[int],
    at: dt.datetime | None = None,
    actor: Actor = None,
    audit_data: dict | None = None,
) -> list[License]:
    """R10: mark licenses refunded and unbind them, so they never count again. Whether the
    money may go back (nothing served yet) is the caller's rule, checked under its lock.
    Set-based, audited in bulk (one statement per device, not per license). Caller's
    transaction."""
    at = at or timezone.now()
    ids = sorted(set(license_ids))
    # Chunks keep each statement under SQLite's bound-variable limit (a grant may be 100,000).
    chunks = [ids[i : i + 5000] for i in range(0, len(ids), 5000)]
    with transaction.atomic():
        licenses = [
            lic
            for chunk in chunks
            for lic in License.objects.select_for_update()
            .filter(tenant=tenant, pk__in=chunk)
            .order_by("id")
        ]
        if len(licenses) != len(ids):
            raise InvalidInput(
                _("Unknown license."), errors={"licenses": [_("No such license in this tenant.")]}
            )
        snapshot = device_service_snapshot(
            tenant_id=tenant.pk, device_ids={lic.device_id for lic in licenses}, at=at
        )
        # R15: the bound ones are unbound by the refund.
        webhook_events_record(
            events=[
                (tenant.pk, "license.unbound", {**data, "reason": "refunded"})
                for data in licenses_event_data([lic for lic in licenses if lic.device_id])
            ]
        )
        for chunk in chunks:
            License.objects.filter(pk__in=chunk).update(
                status=License.Status.REFUNDED, refunded_at=at, device=None
            )
        by_device: dict[int | None, list[License]] = {}
        for lic in licenses:
            by_device.setdefault(lic.device_id, []).append(lic)
            lic.status, lic.refunded_at, lic.device = License.Status.REFUNDED, at, None
        for device_id, group in by_device.items():
            # The device each was unbound from is part of the record (R7: unbinding is audited).
            audit_record_many(
                tenant=tenant,
                action="license.refunded",
                targets=group,
                actor=actor,
                data={"unbound_from_device": device_id, **(audit_data or {})},
            )
        device_service_changes_record(snapshot)
    return licenses
