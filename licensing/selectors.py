"""Reads owned by licensing. The tenant is the first argument of every selector."""

import datetime as dt
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count, Min, Prefetch, Q, QuerySet
from django.utils import timezone

from console import prepared
from console.api_auth import API_KEY_ROW_COLUMNS, ApiKeyRow, key_lookup_sql
from console.models import Tenant
from devices.models import Camera, FieldDevice
from licensing.models import License
from licensing.rules import Requirement, requirement


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


_ENTITLEMENT_SQL: dict[str, str] = {}


def _entitlement_sql(connection) -> str:
    # Built once per database vendor from the models' own table and column names.
    sql = _ENTITLEMENT_SQL.get(connection.vendor)
    if sql is None:
        q = connection.ops.quote_name
        device, camera, lic = (q(m._meta.db_table) for m in (FieldDevice, Camera, License))
        # The license filter is LicenseQuerySet.valid_at / _valid_q in SQL (R5, R6): not
        # refunded, started, not yet expired. test_api_entitlement checks they agree. Only
        # the models' own table names are interpolated; every value is a parameter.
        sql = f"""
            SELECT d.id, d.max_concurrent_streams,
                   c.id, c.width, c.height, c.enabled, c.priority,
                   l.valid, l.until, l.unserved
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
    ORM, whose query compilation cost more than the database's work here, and prepared
    once per session on PostgreSQL (console.prepared)."""
    conn = connections[DEFAULT_DB_ALIAS]
    at_db = conn.ops.adapt_datetimefield_value(at or timezone.now())
    rows = prepared.fetchall(
        _entitlement_sql(conn),
        [
            tenant.pk,
            device_id,
            str(License.Status.ACTIVE),
            str(License.Status.EXPIRED),
            at_db,
            at_db,
            tenant.pk,
            device_id,
        ],
    )
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
    )


# The same read, and the caller's API key with it: one statement per entitlement call.
_BY_KEY_SQL: dict[str, str] = {}
_K = 1 + API_KEY_ROW_COLUMNS  # after the row kind: the key's columns, then these
_DEVICE_ID, _MAX_STREAMS, _LIC_VALID, _LIC_UNTIL, _LIC_UNSERVED = range(_K, _K + 5)
_CAMERA = _K + 5


def _entitlement_by_key_sql(connection) -> str:
    sql = _BY_KEY_SQL.get(connection.vendor)
    if sql is None:
        q = connection.ops.quote_name
        device, camera, lic = (q(m._meta.db_table) for m in (FieldDevice, Camera, License))
        key_nulls = ", ".join(["NULL"] * API_KEY_ROW_COLUMNS)
        # The first row (kind 0) is the key, its tenant, the device — only if it is that
        # tenant's — and the license counts (the same filter as _entitlement_sql, R5/R6);
        # then one row (kind 1) per camera. The two kinds leave each other's columns NULL,
        # so the only timestamp read is the earliest expiry. No key, no rows. The device id
        # is given to the license count directly, so the plan scans that device's licenses
        # by its index however many licenses the tenant has.
        sql = f"""
            WITH k AS ({key_lookup_sql(connection)}),
            d AS (
                SELECT d.id, d.tenant_id, d.max_concurrent_streams
                FROM {device} d JOIN k ON d.tenant_id = k.tenant_id
                WHERE d.id = %s
            )
            SELECT 0, k.key_id, k.role, k.prefix, k.digest, k.stale, k.tenant_id,
                   k.tenant_status, d.id, d.max_concurrent_streams,
                   l.valid, l.until, l.unserved,
                   NULL, NULL, NULL, NULL, NULL
            FROM k
            LEFT JOIN d ON 1 = 1
            CROSS JOIN (
                SELECT COUNT(*) AS valid,
                       MIN(lic.expires_at) AS until,
                       COALESCE(SUM(CASE WHEN lic.first_served_at IS NULL THEN 1 ELSE 0 END), 0)
                           AS unserved
                FROM {lic} lic
                JOIN d ON lic.device_id = d.id AND lic.tenant_id = d.tenant_id
                WHERE lic.device_id = %s AND lic.status IN (%s, %s)
                  AND lic.starts_at <= %s AND lic.expires_at > %s
            ) l
            UNION ALL
            SELECT 1, {key_nulls}, NULL, NULL, NULL, NULL, NULL,
                   c.id, c.width, c.height, c.enabled, c.priority
            FROM {camera} c JOIN d ON c.device_id = d.id
            ORDER BY 1, {_CAMERA + 1}
        """  # noqa: S608 - model metadata only; every value is a parameter
        _BY_KEY_SQL[connection.vendor] = sql
    return sql


def device_entitlement_inputs_for_key(
    *, digest: str, stale_before: dt.datetime, device_id: int, at: dt.datetime
) -> tuple[ApiKeyRow | None, EntitlementInputs | None]:
    """device_entitlement_inputs for a caller known only by its API key's digest: the
    unrevoked key with that digest (console.api_auth.key_lookup_sql; None: no such key)
    and, when it is one of the key's tenant's, the device as device_entitlement_inputs
    reads it (None: not found). One SQL statement, prepared once per session; the
    caller checks the key with console.api_auth.key_checked before using anything else.
    (No tenant argument, unlike other selectors: the key says which tenant.)"""
    conn = connections[DEFAULT_DB_ALIAS]
    at_db = conn.ops.adapt_datetimefield_value(at)
    rows = prepared.fetchall(
        _entitlement_by_key_sql(conn),
        [
            conn.ops.adapt_datetimefield_value(stale_before),
            digest,
            device_id,
            device_id,
            str(License.Status.ACTIVE),
            str(License.Status.EXPIRED),
            at_db,
            at_db,
        ],
    )
    if not rows:
        return None, None
    head = rows[0]
    key = ApiKeyRow(*head[1:_K])
    key.stale = bool(key.stale)  # SQLite answers 0/1
    if head[_DEVICE_ID] is None:
        return key, None
    c = _CAMERA
    return key, EntitlementInputs(
        pk=head[_DEVICE_ID],
        max_concurrent_streams=head[_MAX_STREAMS],
        cameras=[CameraRow(r[c], r[c + 1], r[c + 2], bool(r[c + 3]), r[c + 4]) for r in rows[1:]],
        lic_valid=head[_LIC_VALID],
        lic_until=_aware(head[_LIC_UNTIL]),
        lic_unserved=int(head[_LIC_UNSERVED]),
    )
