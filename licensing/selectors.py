"""Reads owned by licensing. The tenant is the first argument of every selector."""

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Min, Prefetch, Q, QuerySet
from django.utils import timezone

from console.models import Tenant
from devices.models import Camera, FieldDevice
from licensing.models import License
from licensing.requirements import Requirement, requirement


def _valid_q(at: dt.datetime, prefix: str = "") -> Q:
    """License validity at `at` as a Q, optionally through a relation (R5, R6)."""
    return Q(
        **{
            f"{prefix}status__in": [License.Status.ACTIVE, License.Status.EXPIRED],
            f"{prefix}starts_at__lte": at,
            f"{prefix}expires_at__gt": at,
        }
    )


def license_list(
    tenant: Tenant,
    *,
    status: str | None = None,
    device_id: int | None = None,
    at: dt.datetime | None = None,
) -> QuerySet[License]:
    qs = License.objects.filter(tenant=tenant)
    if status:
        qs = qs.with_status_at(status, at or timezone.now())
    if device_id is not None:
        qs = qs.filter(device_id=device_id)
    return qs.order_by("expires_at", "id")


def license_get(tenant: Tenant, license_id: int) -> License | None:
    return License.objects.filter(tenant=tenant, pk=license_id).first()


def device_valid_licenses(
    tenant: Tenant, device: FieldDevice, *, at: dt.datetime | None = None
) -> QuerySet[License]:
    return License.objects.filter(tenant=tenant, device=device).valid_at(at or timezone.now())


def devices_with_license_counts(
    tenant: Tenant, *, at: dt.datetime | None = None
) -> QuerySet[FieldDevice]:
    """The tenant's devices, each annotated with `lic_valid` (valid licenses now),
    `lic_until` (the earliest expiry among them) and `lic_unserved` (valid ones not yet
    marked served), with their cameras prefetched: two SQL statements for any number of
    devices, cameras and licenses."""
    at = at or timezone.now()
    valid = _valid_q(at, "licenses__")
    return (
        FieldDevice.objects.filter(tenant=tenant)
        .annotate(
            lic_valid=Count("licenses", filter=valid),
            lic_until=Min("licenses__expires_at", filter=valid),
            lic_unserved=Count(
                "licenses", filter=valid & Q(licenses__first_served_at__isnull=True)
            ),
        )
        .prefetch_related(Prefetch("cameras", queryset=Camera.objects.order_by("id")))
    )


def device_requirement(device: FieldDevice) -> Requirement:
    """R1 for a device: its enabled cameras, honouring max_concurrent_streams."""
    cameras = device.cameras.all()
    return requirement([c.pixels for c in cameras if c.enabled], device.max_concurrent_streams)


def device_license_status(*, required: int, valid: int) -> str:
    if valid <= 0:
        return "unlicensed"
    if valid < required:
        return "under_licensed"
    return "licensed"


@dataclass(frozen=True)
class DeviceLicensing:
    aggregate_pixels: int
    licenses_required: int
    licenses_valid: int
    status: str


def device_licensing(device: FieldDevice, *, licenses_valid: int) -> DeviceLicensing:
    req = device_requirement(device)
    return DeviceLicensing(
        aggregate_pixels=req.aggregate_pixels,
        licenses_required=req.licenses,
        licenses_valid=licenses_valid,
        status=device_license_status(required=req.licenses, valid=licenses_valid),
    )
