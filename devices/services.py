"""Writes owned by the devices app: devices, cameras, cockpits and control leases (R8).

Devices know nothing of licenses or money. The license check before control ("may I
drive?") lives in licensing, which calls the lease mechanics below.
"""

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import Conflict, InvalidInput, NotFound, invalid_from_django
from console.models import Tenant
from console.services import Actor, audit_record
from console.webhooks import webhook_event_record, webhook_events_record
from devices.models import (
    MAX_CAMERAS_PER_DEVICE,
    Camera,
    ControlSession,
    FieldDevice,
    RemoteCockpit,
)

DEVICE_FIELDS = ("serial", "name", "max_concurrent_streams")
CAMERA_FIELDS = ("name", "width", "height", "enabled", "priority")
COCKPIT_FIELDS = ("name",)


def _validate(obj, *, exclude: list[str] | None = None) -> None:
    try:
        obj.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        raise invalid_from_django(exc) from exc


def _apply(obj, fields: tuple[str, ...], values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(fields)
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidInput(
            _("Unknown field: %(field)s.") % {"field": field},
            errors={field: [_("This field cannot be set.")]},
        )
    changed = {}
    for name, value in values.items():
        if getattr(obj, name) != value:
            changed[name] = value
            setattr(obj, name, value)
    return changed


def _locked(model, **lookups):
    """The row, locked for the caller's transaction; NotFound when the tenant has no such
    row (another tenant's object is a 404, never a 500)."""
    obj = model.objects.select_for_update(no_key=True).filter(**lookups).first()
    if obj is None:
        raise NotFound(_("Not found."))
    return obj


def _save_device(device: FieldDevice) -> None:
    try:
        with transaction.atomic():
            device.save()
    except IntegrityError as exc:
        # The unique (tenant, serial) constraint decides races between two creators.
        raise InvalidInput(
            _("A device with this serial already exists."),
            errors={"serial": [_("A device with this serial already exists.")]},
        ) from exc


@transaction.atomic
def device_create(
    *,
    tenant: Tenant,
    serial: str,
    name: str = "",
    max_concurrent_streams: int | None = None,
    actor: Actor = None,
) -> FieldDevice:
    device = FieldDevice(
        tenant=tenant, serial=serial, name=name or "", max_concurrent_streams=max_concurrent_streams
    )
    _validate(device, exclude=["tenant"])
    if FieldDevice.objects.filter(tenant=tenant, serial=serial).exists():
        raise InvalidInput(
            _("A device with this serial already exists."),
            errors={"serial": [_("A device with this serial already exists.")]},
        )
    _save_device(device)
    audit_record(
        tenant=tenant, action="device.created", target=device, actor=actor, data={"serial": serial}
    )
    return device


@transaction.atomic
def device_update(
    *, tenant: Tenant, device: FieldDevice, actor: Actor = None, **values: Any
) -> FieldDevice:
    device = _locked(FieldDevice, pk=device.pk, tenant=tenant)
    changed = _apply(device, DEVICE_FIELDS, values)
    if not changed:
        return device
    _validate(device, exclude=["tenant"])
    if (
        "serial" in changed
        and FieldDevice.objects.filter(tenant=tenant, serial=device.serial)
        .exclude(pk=device.pk)
        .exists()
    ):
        raise InvalidInput(
            _("A device with this serial already exists."),
            errors={"serial": [_("A device with this serial already exists.")]},
        )
    _save_device(device)
    audit_record(
        tenant=tenant,
        action="device.updated",
        target=device,
        actor=actor,
        data=dict(changed),
    )
    return device


def device_delete(*, tenant: Tenant, device: FieldDevice, actor: Actor = None) -> None:
    """Delete a device, its cameras and sessions. Must run inside the caller's transaction:
    licensing's `device_delete_unbinding` unbinds the device's licenses first (R7)."""
    assert transaction.get_connection().in_atomic_block, "device_delete needs a transaction"
    device = _locked(FieldDevice, pk=device.pk, tenant=tenant)
    audit_record(
        tenant=tenant,
        action="device.deleted",
        target=device,
        actor=actor,
        data={"serial": device.serial, "name": device.name},
    )
    device.delete()


@transaction.atomic
def camera_create(
    *,
    tenant: Tenant,
    device: FieldDevice,
    width: int,
    height: int,
    name: str = "",
    enabled: bool = True,
    priority: int = 0,
    actor: Actor = None,
) -> Camera:
    # Lock the device so two concurrent creators cannot both take the last slot; the
    # unique (device, slot) constraint backs this up in the database.
    device = (
        FieldDevice.objects.select_for_update(no_key=True)
        .filter(pk=device.pk, tenant=tenant)
        .first()
    )
    if device is None:
        raise InvalidInput(
            _("Unknown device."), errors={"device": [_("No such device in this tenant.")]}
        )
    taken = set(Camera.objects.filter(device=device).values_list("slot", flat=True))
    free = [s for s in range(1, MAX_CAMERAS_PER_DEVICE + 1) if s not in taken]
    camera = Camera(
        device=device,
        slot=free[0] if free else 0,
        name=name or "",
        width=width,
        height=height,
        enabled=enabled,
        priority=priority,
    )
    _validate(camera, exclude=["device", "slot"])
    if not free:
        raise InvalidInput(
            _("A field device holds at most %(n)d cameras.") % {"n": MAX_CAMERAS_PER_DEVICE},
            code="TOO_MANY_CAMERAS",
            errors={"device": [_("This device already has 8 cameras.")]},
        )
    try:
        with transaction.atomic():
            camera.save()
    except IntegrityError as exc:
        raise Conflict(
            _("Another camera was added at the same time; try again."), code="CONFLICT"
        ) from exc
    audit_record(
        tenant=tenant,
        action="camera.created",
        target=camera,
        actor=actor,
        data={"device": device.pk, "width": width, "height": height},
    )
    return camera


@transaction.atomic
def camera_update(*, tenant: Tenant, camera: Camera, actor: Actor = None, **values: Any) -> Camera:
    camera = _locked(Camera, pk=camera.pk, device__tenant=tenant)
    changed = _apply(camera, CAMERA_FIELDS, values)
    if changed:
        _validate(camera, exclude=["device", "slot"])
        camera.save()
        audit_record(
            tenant=tenant, action="camera.updated", target=camera, actor=actor, data=changed
        )
    return camera


@transaction.atomic
def camera_delete(*, tenant: Tenant, camera: Camera, actor: Actor = None) -> None:
    camera = _locked(Camera, pk=camera.pk, device__tenant=tenant)
    audit_record(
        tenant=tenant,
        action="camera.deleted",
        target=camera,
        actor=actor,
        data={"device": camera.device_id, "width": camera.width, "height": camera.height},
    )
    camera.delete()


@transaction.atomic
def cockpit_create(*, tenant: Tenant, name: str, actor: Actor = None) -> RemoteCockpit:
    cockpit = RemoteCockpit(tenant=tenant, name=(name or "").strip())
    _validate(cockpit, exclude=["tenant"])
    cockpit.save()
    audit_record(
        tenant=tenant, action="cockpit.created", target=cockpit, actor=actor, data={"name": name}
    )
    return cockpit


@transaction.atomic
def cockpit_update(
    *, tenant: Tenant, cockpit: RemoteCockpit, actor: Actor = None, **values: Any
) -> RemoteCockpit:
    cockpit = _locked(RemoteCockpit, pk=cockpit.pk, tenant=tenant)
    if "name" in values and isinstance(values["name"], str):
        values["name"] = values["name"].strip()
    changed = _apply(cockpit, COCKPIT_FIELDS, values)
    if changed:
        _validate(cockpit, exclude=["tenant"])
        cockpit.save()
        audit_record(
            tenant=tenant, action="cockpit.updated", target=cockpit, actor=actor, data=changed
        )
    return cockpit


@transaction.atomic
def cockpit_delete(*, tenant: Tenant, cockpit: RemoteCockpit, actor: Actor = None) -> None:
    cockpit = _locked(RemoteCockpit, pk=cockpit.pk, tenant=tenant)
    audit_record(
        tenant=tenant,
        action="cockpit.deleted",
        target=cockpit,
        actor=actor,
        data={"name": cockpit.name},
    )
    cockpit.delete()


# --- Control leases (R8) -------------------------------------------------------------------


def lease_seconds() -> int:
    return settings.CONTROL_LEASE_SECONDS


def _session_data(session: ControlSession) -> dict:
    return {
        "session": session.pk,
        "device": session.device_id,
        "cockpit": session.cockpit_id,
        "started_at": session.started_at,
        "ended_at": session.ended_at,
        "reason": session.end_reason or None,
    }


def _end(session: ControlSession, *, reason: str, at: dt.datetime) -> None:
    session.ended_at = at
    session.end_reason = reason
    session.save(update_fields=["ended_at", "end_reason"])
    # R15: every way a session ends comes through here (release, lapse, take-over).
    webhook_event_record(
        tenant=session.device.tenant_id, type="control.ended", data=_session_data(session)
    )


def control_token_digest(token: str | None) -> str:
    """The stored form of a cockpit's session token (CONTRACT: X-Control-Token)."""
    return hashlib.sha256((token or "").encode()).hexdigest() if token else ""


def control_token_matches(session: ControlSession, token: str | None) -> bool:
    digest = control_token_digest(token)
    return bool(digest and session.token_digest) and hmac.compare_digest(
        digest, session.token_digest
    )


def control_session_acquire(
    *,
    tenant: Tenant,
    device: FieldDevice,
    cockpit: RemoteCockpit,
    force: bool = False,
    token: str | None = None,
    trusted: bool = False,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> tuple[ControlSession, bool]:
    """Take control of `device` for `cockpit`. Returns (session, created); a new session
    carries its cockpit credential in `session.token`, there only (stored as a digest).

    The same cockpit asking again gets its live session back, the lease extended, when it
    shows that session's `token` or the caller is `trusted` (an admin key); otherwise the
    request is another cockpit's. Must run inside the caller's transaction (licensing checks
    licenses in the same one). Raises Conflict CONTROL_HELD while another cockpit holds a
    live lease, unless `force`.
    """
    assert transaction.get_connection().in_atomic_block, "acquire needs a transaction"
    at = at or timezone.now()
    if cockpit.tenant_id != tenant.pk:
        raise InvalidInput(
            _("Unknown cockpit."), errors={"cockpit": [_("No such cockpit in this tenant.")]}
        )
    # The device row lock serialises acquirers of one device on PostgreSQL; the partial
    # unique constraint is the last word if anything bypasses this path.
    _locked(FieldDevice, pk=device.pk, tenant=tenant)
    holder = (
        ControlSession.objects.select_for_update()
        .filter(device=device, ended_at__isnull=True)
        .first()
    )
    lease_until = at + dt.timedelta(seconds=lease_seconds())
    if holder is not None:
        if holder.lease_expires_at <= at:
            _end(holder, reason=ControlSession.EndReason.LAPSED, at=holder.lease_expires_at)
        elif holder.cockpit_id == cockpit.pk and (trusted or control_token_matches(holder, token)):
            holder.lease_expires_at = lease_until
            holder.save(update_fields=["lease_expires_at"])
            return holder, False
        elif force:
            _end(holder, reason=ControlSession.EndReason.TAKEN_OVER, at=at)
            audit_record(
                tenant=tenant,
                action="control.taken_over",
                target=holder,
                actor=actor,
                data={"device": device.pk, "from": holder.cockpit_id, "to": cockpit.pk},
            )
        else:
            raise Conflict(
                _("Another cockpit controls this device."),
                code="CONTROL_HELD",
                extra={
                    "holder": holder.cockpit_id,
                    "lease_expires_at": holder.lease_expires_at,
                },
            )
    raw_token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            session = ControlSession.objects.create(
                device=device,
                cockpit=cockpit,
                started_at=at,
                lease_expires_at=lease_until,
                token_digest=control_token_digest(raw_token),
            )
    except IntegrityError as exc:
        raise Conflict(_("Another cockpit controls this device."), code="CONTROL_HELD") from exc
    audit_record(
        tenant=tenant,
        action="control.started",
        target=session,
        actor=actor,
        data={"device": device.pk, "cockpit": cockpit.pk},
    )
    webhook_event_record(tenant=tenant, type="control.started", data=_session_data(session))
    session.token = raw_token
    return session, True


def control_session_lock(*, tenant: Tenant, session_id: int) -> ControlSession:
    """Lock one of the tenant's sessions (caller's transaction); NotFound otherwise."""
    session = (
        ControlSession.objects.select_for_update()
        .filter(pk=session_id, device__tenant=tenant)
        .first()
    )
    if session is None:
        raise NotFound(_("Not found."))
    return session


def control_session_extend(*, session: ControlSession, at: dt.datetime | None = None):
    """Extend a live lease by the lease length from `at` (the caller checked it is live)."""
    at = at or timezone.now()
    session.lease_expires_at = at + dt.timedelta(seconds=lease_seconds())
    session.save(update_fields=["lease_expires_at"])
    return session


def control_session_end(
    *,
    tenant: Tenant,
    session: ControlSession,
    reason: str = ControlSession.EndReason.RELEASED,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> ControlSession:
    at = at or timezone.now()
    if session.ended_at is None:
        if session.lease_expires_at <= at:
            reason, at = ControlSession.EndReason.LAPSED, session.lease_expires_at
        _end(session, reason=reason, at=at)
        audit_record(
            tenant=tenant,
            action=f"control.{reason}",
            target=session,
            actor=actor,
            data={"device": session.device_id, "cockpit": session.cockpit_id},
        )
    return session


def control_sessions_end_lapsed(*, at: dt.datetime | None = None) -> int:
    """End every open session whose lease has lapsed (the per-minute clean-up). Set-based;
    safe to run twice at once: a row already ended no longer matches the filter."""
    at = at or timezone.now()
    lapsed = ControlSession.objects.lapsed(at)
    with transaction.atomic():
        # R15: the sessions this statement ends (locked, so a concurrent clean-up that ends
        # them first leaves them out of both the update and the events).
        ended = list(
            lapsed.select_for_update(of=("self",)).values_list(
                "pk",
                "device__tenant_id",
                "device_id",
                "cockpit_id",
                "started_at",
                "lease_expires_at",
            )
        )
        if not ended:
            return 0
        # ended_at is the lapse instant itself, so the record says when control stopped.
        count = ControlSession.objects.filter(
            pk__in=[row[0] for row in ended], ended_at__isnull=True
        ).update(ended_at=F("lease_expires_at"), end_reason=ControlSession.EndReason.LAPSED)
        webhook_events_record(
            events=[
                (
                    tenant_id,
                    "control.ended",
                    {
                        "session": pk,
                        "device": device_id,
                        "cockpit": cockpit_id,
                        "started_at": started_at,
                        "ended_at": lease_expires_at,
                        "reason": ControlSession.EndReason.LAPSED.value,
                    },
                )
                for pk, tenant_id, device_id, cockpit_id, started_at, lease_expires_at in ended
            ]
        )
    return count
