"""Writes owned by licensing: issuing, binding, renewal, entitlement and the license check
before control. Billing calls these; licensing never calls billing."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from console.models import Tenant
from console.services import Actor, audit_record, audit_record_many
from console.timeutils import add_years, business_date, start_of_business_day
from devices import services as device_services
from devices.models import Camera, ControlSession, FieldDevice, RemoteCockpit
from licensing.models import License
from licensing.requirements import licenses_for_pixels, requirement
from licensing.selectors import devices_with_license_counts

MAX_YEARS = 10


# --- R3 / R4: the one date rule ----------------------------------------------------------


def expiry_after_years(*, from_date: dt.date, years: int) -> dt.datetime:
    """R3/R4: the last service date is `from_date` + `years` (Feb 29 → Feb 28 in a common
    year); the license expires at 00:00 Asia/Shanghai of the day after it.

    Issuing passes the payment's Asia/Shanghai date; renewal passes the current last
    service date, so a renewal moves it on from there, not from today."""
    last_service_date = add_years(from_date, years)
    return start_of_business_day(last_service_date + dt.timedelta(days=1))


def _check_years(years: int) -> None:
    if not isinstance(years, int) or isinstance(years, bool) or not 1 <= years <= MAX_YEARS:
        raise InvalidInput(
            _("Years must be a whole number from 1 to %(max)d.") % {"max": MAX_YEARS},
            errors={"years": [_("Enter a whole number from 1 to %(max)d.") % {"max": MAX_YEARS}]},
        )


def licenses_issue(
    *,
    tenant: Tenant,
    quantity: int,
    years: int,
    paid_at: dt.datetime,
    actor: Actor = None,
    audit_data: dict | None = None,
    batch_size: int = 5000,
) -> list[License]:
    """R3: `quantity` licenses valid from the payment instant through payment date + years.

    Bulk-created (a grant of 100,000 takes seconds). Runs in the caller's transaction when
    there is one (billing issues licenses inside the payment's transaction)."""
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise InvalidInput(
            _("Quantity must be a positive whole number."),
            errors={"quantity": [_("Enter a positive whole number.")]},
        )
    _check_years(years)
    expires_at = expiry_after_years(from_date=business_date(paid_at), years=years)
    with transaction.atomic():
        licenses = License.objects.bulk_create(
            [
                License(
                    tenant=tenant,
                    starts_at=paid_at,
                    expires_at=expires_at,
                    status=License.Status.ACTIVE,
                    created_at=paid_at,
                )
                for _i in range(quantity)
            ],
            batch_size=batch_size,
        )
        audit_record_many(
            tenant=tenant,
            action="license.issued",
            targets=licenses,
            actor=actor,
            data={"years": years, "expires_at": expires_at.isoformat(), **(audit_data or {})},
        )
    return licenses


# --- R7: binding ---------------------------------------------------------------------------


def _lock_tenant(tenant: Tenant) -> None:
    # Binding takes the tenant's row lock first: binders of one tenant queue up instead of
    # racing for the same free licenses (PostgreSQL; SQLite serialises writers anyway).
    Tenant.objects.select_for_update().filter(pk=tenant.pk).exists()


def _device_of(tenant: Tenant, device: FieldDevice | int) -> FieldDevice:
    device_id = device.pk if isinstance(device, FieldDevice) else device
    found = FieldDevice.objects.filter(tenant=tenant, pk=device_id).first()
    if found is None:
        raise InvalidInput(
            _("Unknown device."), errors={"device": [_("No such device in this tenant.")]}
        )
    return found


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
    _lock_tenant(tenant)
    device = _device_of(tenant, device)
    lic = License.objects.select_for_update().filter(pk=license.pk, tenant=tenant).first()
    if lic is None:
        raise NotFound(_("Not found."))
    if lic.status == License.Status.REFUNDED:
        raise Conflict(_("A refunded license cannot be bound."), code="LICENSE_REFUNDED")
    if lic.expires_at <= at:
        raise Conflict(_("An expired license cannot be bound."), code="LICENSE_EXPIRED")
    if lic.device_id == device.pk:
        return lic
    if lic.device_id is not None:
        raise Conflict(
            _("This license is bound to another device; unbind it first."), code="LICENSE_BOUND"
        )
    lic.device = device
    lic.save(update_fields=["device"])
    audit_record(
        tenant=tenant, action="license.bound", target=lic, actor=actor, data={"device": device.pk}
    )
    return lic


@transaction.atomic
def license_unbind(*, tenant: Tenant, license: License, actor: Actor = None) -> License:
    lic = License.objects.select_for_update().filter(pk=license.pk, tenant=tenant).first()
    if lic is None:
        raise NotFound(_("Not found."))
    if lic.device_id is not None:
        old = lic.device_id
        lic.device = None
        lic.save(update_fields=["device"])
        audit_record(
            tenant=tenant, action="license.unbound", target=lic, actor=actor, data={"device": old}
        )
    return lic


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
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 10_000:
        raise InvalidInput(
            _("Count must be a whole number from 1 to 10000."),
            errors={"count": [_("Enter a whole number from 1 to 10000.")]},
        )
    at = at or timezone.now()
    _lock_tenant(tenant)
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
    License.objects.filter(pk__in=[lic.pk for lic in free]).update(device=device)
    for lic in free:
        lic.device = device
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
    FieldDevice.objects.select_for_update().filter(pk=device.pk, tenant=tenant).get()
    bound = list(License.objects.select_for_update().filter(tenant=tenant, device=device))
    if bound:
        License.objects.filter(pk__in=[lic.pk for lic in bound]).update(device=None)
        audit_record_many(
            tenant=tenant,
            action="license.unbound",
            targets=bound,
            actor=actor,
            data={"device": device.pk, "reason": "device_deleted"},
        )
    device_services.device_delete(tenant=tenant, device=device, actor=actor)
    return len(bound)


# --- R4: renewal ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Extension:
    license_id: int
    previous_expires_at: dt.datetime
    new_expires_at: dt.datetime


def licenses_renew(
    *,
    tenant: Tenant,
    license_ids: Sequence[int],
    years: int,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> list[Extension]:
    """R4: move each license's last service date `years` on, from its current last service
    date (not from today), keeping its binding. All or nothing: refused when any of them is
    no longer valid at `at` (the customer buys new licenses instead). Caller's transaction."""
    _check_years(years)
    at = at or timezone.now()
    ids = sorted(set(license_ids))
    if not ids:
        raise InvalidInput(
            _("Name at least one license to renew."),
            errors={"licenses": [_("Name at least one license.")]},
        )
    with transaction.atomic():
        licenses = list(
            License.objects.select_for_update().filter(tenant=tenant, pk__in=ids).order_by("id")
        )
        if len(licenses) != len(ids):
            raise InvalidInput(
                _("Unknown license."), errors={"licenses": [_("No such license in this tenant.")]}
            )
        lapsed = [lic.pk for lic in licenses if not lic.is_valid_at(at)]
        if lapsed:
            raise Conflict(
                _(
                    "Licenses %(ids)s are no longer valid and cannot be renewed; "
                    "buy new licenses instead."
                )
                % {"ids": ", ".join(f"L-{i}" for i in lapsed)},
                code="LICENSE_EXPIRED",
                extra={"licenses": lapsed},
            )
        extensions = []
        for lic in licenses:
            new = expiry_after_years(from_date=lic.last_service_date, years=years)
            extensions.append(Extension(lic.pk, lic.expires_at, new))
            lic.expires_at = new
        License.objects.bulk_update(licenses, ["expires_at"])
        for ext in extensions:
            audit_record(
                tenant=tenant,
                action="license.renewed",
                target=next(lic for lic in licenses if lic.pk == ext.license_id),
                actor=actor,
                data={
                    "years": years,
                    "from": ext.previous_expires_at.isoformat(),
                    "to": ext.new_expires_at.isoformat(),
                },
            )
    return extensions


# --- R6: entitlement -----------------------------------------------------------------------


@dataclass
class Entitlement:
    code: str
    licenses_valid: int
    licenses_required: int
    granted_cameras: list[int] = field(default_factory=list)
    denied_cameras: list[int] = field(default_factory=list)
    valid_until: dt.datetime | None = None


VALID = "VALID"
DEGRADED = "DEGRADED"
NO_VALID_LICENSE = "NO_VALID_LICENSE"


def choose_cameras(
    cameras: Sequence[Camera], *, licenses_valid: int, max_concurrent_streams: int | None
) -> tuple[list[Camera], list[Camera]]:
    """R6: the cameras to keep with `licenses_valid` licenses, and those to deny.

    Take the requested enabled cameras by priority (higher first; equal priority: lower id
    first); keep each whose addition still fits the valid licenses by the R1 formula, skip
    each that does not, and never keep more than max_concurrent_streams."""
    if licenses_valid <= 0:
        return [], list(cameras)
    kept: list[Camera] = []
    denied: list[Camera] = []
    kept_pixels = 0
    for cam in sorted(cameras, key=lambda c: (-c.priority, c.pk)):
        if not cam.enabled or (
            max_concurrent_streams is not None and len(kept) >= max_concurrent_streams
        ):
            denied.append(cam)
        elif licenses_for_pixels(kept_pixels + cam.pixels) <= licenses_valid:
            kept.append(cam)
            kept_pixels += cam.pixels
        else:
            denied.append(cam)
    return kept, denied


def _device_for_decision(tenant: Tenant, device_id: int, at: dt.datetime) -> FieldDevice:
    device = devices_with_license_counts(tenant, at=at).filter(pk=device_id).first()
    if device is None:
        raise NotFound(_("Not found."))
    return device


def _mark_served(device: FieldDevice, at: dt.datetime) -> int:
    """R10: every valid license bound to the device when it served gets first_served_at."""
    return (
        License.objects.filter(device=device, first_served_at__isnull=True)
        .valid_at(at)
        .update(first_served_at=at)
    )


def entitlement_decide(
    *,
    tenant: Tenant,
    device_id: int,
    camera_ids: Sequence[int] | None = None,
    at: dt.datetime | None = None,
) -> Entitlement:
    """R6: may this device push these streams now? The gateways' hot path: in steady state
    (licenses already marked served) two SQL statements, whatever the number of cameras and
    licenses."""
    at = at or timezone.now()
    device = _device_for_decision(tenant, device_id, at)
    cameras = list(device.cameras.all())
    if camera_ids is None:
        requested = [c for c in cameras if c.enabled]
    else:
        by_id = {c.pk: c for c in cameras}
        wanted = list(dict.fromkeys(camera_ids))
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            raise InvalidInput(
                _("Cameras %(ids)s are not this device's cameras.")
                % {"ids": ", ".join(str(i) for i in unknown)},
                errors={"cameras": [_("Unknown camera ids: %(ids)s.") % {"ids": unknown}]},
            )
        requested = [by_id[i] for i in wanted]
    k = device.max_concurrent_streams
    required = requirement([c.pixels for c in requested if c.enabled], k).licenses
    valid = device.lic_valid
    granted, denied = choose_cameras(requested, licenses_valid=valid, max_concurrent_streams=k)
    if valid <= 0:
        code = NO_VALID_LICENSE
    elif denied:
        code = DEGRADED
    else:
        code = VALID
    if granted and device.lic_unserved:
        _mark_served(device, at)
    return Entitlement(
        code=code,
        licenses_valid=valid,
        licenses_required=required,
        granted_cameras=[c.pk for c in granted],
        denied_cameras=[c.pk for c in denied],
        valid_until=device.lic_until if valid else None,
    )


# --- R8: the license check before control --------------------------------------------------


def _require_valid_license(tenant: Tenant, device: FieldDevice, at: dt.datetime) -> None:
    if not License.objects.filter(tenant=tenant, device=device).valid_at(at).exists():
        raise Forbidden(
            _("This device has no valid license, so it cannot be controlled."),
            code="NO_VALID_LICENSE",
        )


@transaction.atomic
def control_acquire(
    *,
    tenant: Tenant,
    device: FieldDevice,
    cockpit_id: int,
    force: bool = False,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> tuple[ControlSession, bool]:
    """R8: take control of a device that has at least one valid license."""
    at = at or timezone.now()
    cockpit = RemoteCockpit.objects.filter(tenant=tenant, pk=cockpit_id).first()
    if cockpit is None:
        raise InvalidInput(
            _("Unknown cockpit."), errors={"cockpit": [_("No such cockpit in this tenant.")]}
        )
    # Lock the device before reading its licenses, so a concurrent unbind cannot slip between
    # the check and the grant.
    FieldDevice.objects.select_for_update().filter(pk=device.pk, tenant=tenant).get()
    _require_valid_license(tenant, device, at)
    session, created = device_services.control_session_acquire(
        tenant=tenant, device=device, cockpit=cockpit, force=force, at=at, actor=actor
    )
    _mark_served(device, at)
    return session, created


def control_heartbeat(
    *, tenant: Tenant, session_id: int, at: dt.datetime | None = None
) -> ControlSession:
    """R8: extend a live lease. A lapsed or ended session is gone (SESSION_ENDED); a device
    that lost its last valid license ends the session (NO_VALID_LICENSE).

    The end is committed before the error is raised, so the refusal is final."""
    at = at or timezone.now()
    with transaction.atomic():
        session = device_services.control_session_lock(tenant=tenant, session_id=session_id)
        if session.ended_at is not None or session.lease_expires_at <= at:
            device_services.control_session_end(tenant=tenant, session=session, at=at)
            error: Exception = Gone(_("This control session has ended."), code="SESSION_ENDED")
        elif (
            not License.objects.filter(tenant=tenant, device_id=session.device_id)
            .valid_at(at)
            .exists()
        ):
            device_services.control_session_end(
                tenant=tenant,
                session=session,
                reason=ControlSession.EndReason.NO_VALID_LICENSE,
                at=at,
            )
            error = Forbidden(
                _("This device has lost its last valid license; the control session has ended."),
                code="NO_VALID_LICENSE",
            )
        else:
            device_services.control_session_extend(session=session, at=at)
            _mark_served(session.device, at)
            return session
    raise error


def control_release(
    *, tenant: Tenant, session_id: int, at: dt.datetime | None = None, actor: Actor = None
) -> ControlSession:
    with transaction.atomic():
        session = device_services.control_session_lock(tenant=tenant, session_id=session_id)
        return device_services.control_session_end(
            tenant=tenant, session=session, at=at, actor=actor
        )
