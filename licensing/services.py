"""Writes owned by licensing: issuing, binding, renewal, entitlement and the license check
before control. Billing calls these; licensing never calls billing."""

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import Conflict, Forbidden, Gone, InvalidInput, NotFound
from console.models import Tenant
from console.services import Actor, audit_record, audit_record_ids, audit_record_many
from console.timeutils import add_years, business_date, start_of_business_day
from devices import services as device_services
from devices.models import Camera, ControlSession, FieldDevice, RemoteCockpit
from licensing.models import License
from licensing.rules import aggregate_pixels, licenses_for_pixels
from licensing.selectors import EntitlementInputs, device_entitlement_inputs

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
        # One audit event per thousand licenses, listing their ids: a row per license cost
        # as much as issuing it (half of a 100,000-license grant's time).
        audit_record_ids(
            tenant=tenant,
            action="license.issued",
            ids=[lic.pk for lic in licenses],
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
    # Locked, so a concurrent device_delete_unbinding (which locks the device first) either
    # sees this binding or makes this call fail with "unknown device" — never a license
    # bound to a deleted device.
    found = FieldDevice.objects.select_for_update().filter(tenant=tenant, pk=device_id).first()
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
    # The device lock comes first: binders lock the device too, so no license can be bound
    # to it between the read below and the delete.
    if not FieldDevice.objects.select_for_update().filter(pk=device.pk, tenant=tenant).exists():
        raise NotFound(_("Not found."))
    # Locked in id order, the order renewal uses, so the two cannot deadlock.
    bound = list(
        License.objects.select_for_update().filter(tenant=tenant, device=device).order_by("id")
    )
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
        # Tenant first, as binding does: renewals and binders of one tenant queue up instead
        # of locking the same licenses in different orders (expiry vs id) and deadlocking.
        _lock_tenant(tenant)
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
        # Licenses from one order share an expiry, so grouping by (from, to) turns one
        # audit insert per license into one bulk insert per distinct expiry.
        by_change: dict[tuple[dt.datetime, dt.datetime], list[License]] = defaultdict(list)
        for lic in licenses:
            new = expiry_after_years(from_date=lic.last_service_date, years=years)
            extensions.append(Extension(lic.pk, lic.expires_at, new))
            by_change[(lic.expires_at, new)].append(lic)
            lic.expires_at = new
        License.objects.bulk_update(licenses, ["expires_at"], batch_size=2000)
        for (previous, new), group in by_change.items():
            audit_record_many(
                tenant=tenant,
                action="license.renewed",
                targets=group,
                actor=actor,
                data={"years": years, "from": previous.isoformat(), "to": new.isoformat()},
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


def _device_for_decision(tenant: Tenant, device_id: int, at: dt.datetime) -> EntitlementInputs:
    device = device_entitlement_inputs(tenant, device_id, at=at)
    if device is None:
        raise NotFound(_("Not found."))
    return device


def _mark_served(device: FieldDevice | EntitlementInputs, at: dt.datetime) -> int:
    """R10: every valid license bound to the device when it served gets first_served_at."""
    return (
        License.objects.filter(device_id=device.pk, first_served_at__isnull=True)
        .valid_at(at)
        .update(first_served_at=at)
    )


def entitlement_decide(
    *,
    tenant: Tenant,
    device_id: int,
    camera_ids: Sequence[int] | None = None,
    at: dt.datetime | None = None,
    inputs: EntitlementInputs | None = None,
) -> Entitlement:
    """R6: may this device push these streams now? The gateways' hot path: in steady state
    (licenses already marked served) one SQL statement, whatever the number of cameras and
    licenses — none when the caller read `inputs` already (the tenant's device `device_id`
    as selectors.device_entitlement_inputs* read it at `at`)."""
    at = at or timezone.now()
    device = inputs if inputs is not None else _device_for_decision(tenant, device_id, at)
    cameras = device.cameras
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
    # R1 for the requested cameras: requirement(...).licenses, without the Decimal ratio.
    required = licenses_for_pixels(aggregate_pixels([c.pixels for c in requested if c.enabled], k))
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
    if not FieldDevice.objects.select_for_update().filter(pk=device.pk, tenant=tenant).exists():
        raise NotFound(_("Not found."))
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


# --- R10: refunds (called by billing; licensing never calls billing) -----------------------


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
    return licenses


def licenses_revert_renewal(
    *,
    tenant: Tenant,
    extensions: Sequence[Extension],
    actor: Actor = None,
    audit_data: dict | None = None,
) -> list[License]:
    """R10: take a renewal's extension back: each license's expires_at returns to its value
    before that renewal. Refused (all or nothing) when a license no longer ends where that
    renewal left it — a later renewal moved it, and reverting would undo that one too.
    Caller's transaction."""
    by_id = {ext.license_id: ext for ext in extensions}
    with transaction.atomic():
        licenses = list(
            License.objects.select_for_update()
            .filter(tenant=tenant, pk__in=sorted(by_id))
            .order_by("id")
        )
        if len(licenses) != len(by_id):
            raise InvalidInput(
                _("Unknown license."), errors={"licenses": [_("No such license in this tenant.")]}
            )
        moved = [lic.pk for lic in licenses if lic.expires_at != by_id[lic.pk].new_expires_at]
        if moved:
            raise Conflict(
                _("Licenses %(ids)s have been renewed again since; refund the later renewal first.")
                % {"ids": ", ".join(f"L-{i}" for i in moved)},
                code="LICENSE_RENEWED_AGAIN",
                extra={"licenses": moved},
            )
        groups: dict[tuple[dt.datetime, dt.datetime], list[License]] = {}
        for lic in licenses:
            ext = by_id[lic.pk]
            lic.expires_at = ext.previous_expires_at
            groups.setdefault((ext.new_expires_at, ext.previous_expires_at), []).append(lic)
        for (was, now_), group in groups.items():
            # One UPDATE per distinct expiry: bulk_update's CASE per row grows quadratically
            # on PostgreSQL for thousands of licenses.
            License.objects.filter(pk__in=[lic.pk for lic in group]).update(expires_at=now_)
            audit_record_many(
                tenant=tenant,
                action="license.renewal_reverted",
                targets=group,
                actor=actor,
                data={"from": was.isoformat(), "to": now_.isoformat(), **(audit_data or {})},
            )
    return licenses
