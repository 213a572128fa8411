"""R7: binding licenses to field devices, one by one or by count, and unbinding them."""

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import Conflict, InvalidInput, NotFound
from console.models import Tenant
from console.services import Actor, audit_record, audit_record_many, tenant_lock
from console.webhooks import webhook_event_record, webhook_events_record
from devices import services as device_services
from devices.models import ControlSession, FieldDevice
from licensing import rules
from licensing.models import License
from licensing.webhook_events import (
    device_service_changes_record,
    device_service_snapshot,
    licenses_event_data,
)


def _device_of(tenant: Tenant, device: FieldDevice | int) -> FieldDevice:
    device_id = device.pk if isinstance(device, FieldDevice) else device
    # Locked, so a concurrent device_delete_unbinding (which locks the device first) either
    # sees this binding or makes this call fail with "unknown device" — never a license
    # bound to a deleted device.
    found = (
        FieldDevice.objects.select_for_update(no_key=True)
        .filter(tenant=tenant, pk=device_id)
        .first()
    )
    if found is None:
        raise InvalidInput(
            _("Unknown device."), errors={"device": [_("No such device in this tenant.")]}
        )
    return found


def _served_if_driven(device: FieldDevice, license_ids: list[int], at: dt.datetime) -> None:
    """R10: a license bound to a device while a control session on it is live has served.
    (Heartbeats write nothing for R10: the session's start marked the licenses bound then,
    and this marks the ones bound later.)"""
    if ControlSession.objects.filter(device=device).live(at).exists():
        License.objects.filter(pk__in=license_ids, first_served_at__isnull=True).update(
            first_served_at=at
        )


@transaction.atomic
def license_bind(
    *,
    tenant: Tenant,
    license: License,
    device: FieldDevice | int,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> License:
    at = at or timezone.now()
    # The tenant first: binders queue up instead of racing for the same free licenses.
    tenant_lock(tenant.pk)
    device = _device_of(tenant, device)
    lic = License.objects.select_for_update().filter(pk=license.pk, tenant=tenant).first()
    if lic is None:
        raise NotFound(_("Not found."))
    if lic.status == License.Status.REFUNDED:
        raise Conflict(_("A refunded license cannot be bound."), code="LICENSE_REFUNDED")
    if not lic.is_valid_at(at):
        raise Conflict(_("An expired license cannot be bound."), code="LICENSE_EXPIRED")
    if lic.device_id == device.pk:
        return lic
    if lic.device_id is not None:
        raise Conflict(
            _("This license is bound to another device; unbind it first."), code="LICENSE_BOUND"
        )
    snapshot = device_service_snapshot(tenant_id=tenant.pk, device_ids=[device.pk], at=at)
    lic.device = device
    lic.save(update_fields=["device"])
    _served_if_driven(device, [lic.pk], at)
    # R15: told with the change, in its transaction.
    webhook_event_record(tenant=tenant, type="license.bound", data=licenses_event_data([lic])[0])
    device_service_changes_record(snapshot)
    audit_record(
        tenant=tenant, action="license.bound", target=lic, actor=actor, data={"device": device.pk}
    )
    lic.refresh_from_db(fields=["first_served_at"])
    return lic


@transaction.atomic
def license_unbind(*, tenant: Tenant, license: License, actor: Actor = None) -> License:
    lic = License.objects.select_for_update().filter(pk=license.pk, tenant=tenant).first()
    if lic is None:
        raise NotFound(_("Not found."))
    if lic.device_id is not None:
        old = lic.device_id
        snapshot = device_service_snapshot(tenant_id=tenant.pk, device_ids=[old])
        lic.device = None
        lic.save(update_fields=["device"])
        webhook_event_record(
            tenant=tenant,
            type="license.unbound",
            data=licenses_event_data([lic], device=old)[0],
        )
        device_service_changes_record(snapshot)
        audit_record(
            tenant=tenant, action="license.unbound", target=lic, actor=actor, data={"device": old}
        )
    return lic


MAX_BIND_COUNT = 10_000


@transaction.atomic
def licenses_bind_count(
    *,
    tenant: Tenant,
    device: FieldDevice | int,
    count: int,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> list[License]:
    """R7: bind `count` unbound valid licenses, soonest-expiring first; all or nothing."""
    if not rules.whole_number(count) or not 1 <= count <= MAX_BIND_COUNT:
        raise InvalidInput(
            _("Count must be a whole number from 1 to 10000."),
            errors={"count": [_("Enter a whole number from 1 to 10000.")]},
        )
    at = at or timezone.now()
    # The tenant first: binders queue up instead of racing for the same free licenses.
    tenant_lock(tenant.pk)
    device = _device_of(tenant, device)
    free = list(
        License.objects.select_for_update()
        .filter(tenant=tenant, device__isnull=True)
        .valid_at(at)
        .order_by("expires_at", "id")[:count]
    )
    if len(free) < count:
        raise Conflict(
            _("Only %(free)d unbound valid licenses are free; %(count)d asked for.")
            % {"free": len(free), "count": count},
            code="NOT_ENOUGH_LICENSES",
            extra={"available": len(free)},
        )
    ids = [lic.pk for lic in free]
    snapshot = device_service_snapshot(tenant_id=tenant.pk, device_ids=[device.pk], at=at)
    License.objects.filter(pk__in=ids).update(device=device)
    _served_if_driven(device, ids, at)
    for lic in free:
        lic.device = device
    webhook_events_record(
        events=[(tenant.pk, "license.bound", data) for data in licenses_event_data(free)]
    )
    device_service_changes_record(snapshot)
    audit_record_many(
        tenant=tenant,
        action="license.bound",
        targets=free,
        actor=actor,
        data={"device": device.pk, "by_count": count},
    )
    return free


@transaction.atomic
def device_delete_unbinding(*, tenant: Tenant, device: FieldDevice, actor: Actor = None) -> int:
    """R7: delete a device; its licenses are unbound (audited) in the same transaction."""
    # The device lock comes first: binders lock the device too, so no license can be bound
    # to it between the read below and the delete.
    if (
        not FieldDevice.objects.select_for_update(no_key=True)
        .filter(pk=device.pk, tenant=tenant)
        .exists()
    ):
        raise NotFound(_("Not found."))
    # Locked in id order, the order renewal uses, so the two cannot deadlock.
    bound = list(
        License.objects.select_for_update().filter(tenant=tenant, device=device).order_by("id")
    )
    if bound:
        License.objects.filter(pk__in=[lic.pk for lic in bound]).update(device=None)
        webhook_events_record(
            events=[
                (tenant.pk, "license.unbound", {**data, "reason": "device_deleted"})
                for data in licenses_event_data(bound)
            ]
        )
        audit_record_many(
            tenant=tenant,
            action="license.unbound",
            targets=bound,
            actor=actor,
            data={"device": device.pk, "reason": "device_deleted"},
        )
    device_services.device_delete(tenant=tenant, device=device, actor=actor)
    return len(bound)
