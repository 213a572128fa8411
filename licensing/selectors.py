"""Reads owned by licensing. The tenant is the first argument of every selector."""

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Min, Prefetch, Q, QuerySet
from django.utils import timezone

from console.models import Tenant
from devices.models import Camera, FieldDevice
from licensing import rules
from licensing.models import License
from licensing.rules import Requirement, requirement


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
    valid = rules.valid_q(at, "licenses__")
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


device_license_status = rules.device_license_status


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


# --- the entitlement hot path (R6) -----------------------------------------------------------


@dataclass(slots=True)
class CameraRow:
    """A camera as the entitlement decision sees it (R1, R6): a plain row, not a model
    instance, because building eight of those per call showed in the hot path's profile."""

    pk: int
    width: int
    height: int
    enabled: bool
    priority: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class EntitlementInputs:
    """What the entitlement decision reads about one device: its cameras (in id order) and
    its valid licenses now — how many, the earliest expiry, how many not yet served."""

    pk: int
    max_concurrent_streams: int | None
    cameras: list[CameraRow]
    lic_valid: int
    lic_until: dt.datetime | None
    lic_unserved: int
    serial: str = ""


_ENTITLEMENT_SQL: dict[str, str] = {}


def _entitlement_sql() -> str:
    # Built once per database vendor from the models' own table and column names.
    sql = _ENTITLEMENT_SQL.get(connection.vendor)
    if sql is None:
        q = connection.ops.quote_name
        device, camera, lic = (q(m._meta.db_table) for m in (FieldDevice, Camera, License))
        # The license filter is rules.valid_q in SQL (R5, R6): not
        # refunded, started, not yet expired. test_api_entitlement checks they agree. Only
        # the models' own table names are interpolated; every value is a parameter.
        sql = f"""
            SELECT d.id, d.max_concurrent_streams,
                   c.id, c.width, c.height, c.enabled, c.priority,
                   l.valid, l.until, l.unserved, d.serial
            FROM {device} d
            CROSS JOIN (
                SELECT COUNT(*) AS valid,
                       MIN(expires_at) AS until,
                       COALESCE(SUM(CASE WHEN first_served_at IS NULL THEN 1 ELSE 0 END), 0)
                           AS unserved
                FROM {lic}
                WHERE tenant_id = %s AND device_id = %s AND status IN (%s, %s)
                  AND starts_at <= %s AND expires_at > %s
            ) l
            LEFT JOIN {camera} c ON c.device_id = d.id
            WHERE d.tenant_id = %s AND d.id = %s
            ORDER BY c.id
        """  # noqa: S608
        _ENTITLEMENT_SQL[connection.vendor] = sql
    return sql


def _aware(value) -> dt.datetime | None:
    # An aggregate has no declared type, so SQLite returns MIN(expires_at) as text (UTC).
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)


def device_entitlement_inputs(
    tenant: Tenant, device_id: int, *, at: dt.datetime | None = None
) -> EntitlementInputs | None:
    """The tenant's device with its cameras and valid-license counts, in one SQL statement,
    or None. The gateways' hot path: the statement is written out rather than built by the
    ORM, whose query compilation cost more than the database's work here."""
    at_db = connection.ops.adapt_datetimefield_value(at or timezone.now())
    params = [
        tenant.pk,
        device_id,
        rules.ACTIVE,
        rules.EXPIRED,
        at_db,
        at_db,
        tenant.pk,
        device_id,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_entitlement_sql(), params)
        rows = cursor.fetchall()
    if not rows:
        return None
    first = rows[0]
    cameras = [
        CameraRow(cam_id, width, height, bool(enabled), priority)
        for _d, _k, cam_id, width, height, enabled, priority, *_l in rows
        if cam_id is not None
    ]
    return EntitlementInputs(
        pk=first[0],
        max_concurrent_streams=first[1],
        cameras=cameras,
        lic_valid=first[7],
        lic_until=_aware(first[8]),
        lic_unserved=int(first[9]),
        serial=first[10],
    )
