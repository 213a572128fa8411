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


# --- the console's lists and dashboard at fleet size (10,000 devices) -------------------------
#
# Each page reads a constant number of statements whatever the fleet: the lists filter, sort
# and count in the database and compute R1 in Python only for the 50 rows of a page; the
# dashboard aggregates in the database.

DEVICE_SORTS = {
    "serial": ("serial", "id"),
    "-serial": ("-serial", "-id"),
    "name": ("name", "serial", "id"),
    "-name": ("-name", "-serial", "-id"),
    "created": ("created_at", "id"),
    "-created": ("-created_at", "-id"),
}
DEVICE_STATUSES = (rules.LICENSED, rules.UNDER_LICENSED, rules.UNLICENSED)

_STATUS_SQL: dict[str, str] = {}


def _status_sql() -> str:
    """R1 against R6 for every device of a tenant, set-based: one pass over its cameras
    (their pixels ranked per device: the k largest when the device sets
    k = max_concurrent_streams, as rules.aggregate_pixels, through
    rules.licenses_for_pixels_sql) and one over its valid licenses (rules.valid_q in SQL,
    as in _entitlement_sql), joined to its devices with rules.device_license_status_sql.
    Rows (device id, status); parameters: `_status_params`.

    Written out because the ORM cannot sum the top k of a window. Hash joins over the
    tenant's rows answer 10,000 devices in tens of milliseconds, where a correlated
    subquery per device took hundreds; only devices that set k are ranked (a sort), the
    others are summed. test_list_status checks it against the rules."""
    sql = _STATUS_SQL.get(connection.vendor)
    if sql is None:
        q = connection.ops.quote_name
        device, camera, lic = (q(m._meta.db_table) for m in (FieldDevice, Camera, License))
        enabled = "c.enabled" if connection.vendor == "postgresql" else "c.enabled = 1"
        required = rules.licenses_for_pixels_sql("u.px")
        none_required = rules.licenses_for_pixels_sql("0")
        status = rules.device_license_status_sql(
            required_sql=f"COALESCE(r.required, {none_required})",
            valid_sql="COALESCE(v.valid, 0)",
        )
        sql = f"""SELECT d.id AS id, {status} AS status
            FROM {device} d
            LEFT JOIN (
                SELECT u.device_id, {required} AS required FROM (
                    SELECT c.device_id, SUM(CAST(c.width AS BIGINT) * c.height) AS px
                    FROM {camera} c JOIN {device} k ON k.id = c.device_id
                    WHERE k.tenant_id = %s AND {enabled} AND k.max_concurrent_streams IS NULL
                    GROUP BY c.device_id
                    UNION ALL
                    SELECT t.device_id, SUM(t.px) FROM (
                        SELECT c.device_id, k.max_concurrent_streams AS k,
                               CAST(c.width AS BIGINT) * c.height AS px,
                               ROW_NUMBER() OVER (PARTITION BY c.device_id
                                                  ORDER BY c.width * c.height DESC, c.id) AS rn
                        FROM {camera} c JOIN {device} k ON k.id = c.device_id
                        WHERE k.tenant_id = %s AND {enabled}
                          AND k.max_concurrent_streams IS NOT NULL
                    ) t
                    WHERE t.rn <= t.k
                    GROUP BY t.device_id
                ) u
            ) r ON r.device_id = d.id
            LEFT JOIN (
                SELECT l.device_id, COUNT(*) AS valid FROM {lic} l
                WHERE l.tenant_id = %s AND l.device_id IS NOT NULL AND l.status IN (%s, %s)
                  AND l.starts_at <= %s AND l.expires_at > %s
                GROUP BY l.device_id
            ) v ON v.device_id = d.id
            WHERE d.tenant_id = %s"""  # noqa: S608
        _STATUS_SQL[connection.vendor] = sql
    return sql


def _status_params(tenant: Tenant, at: dt.datetime) -> list:
    at_db = connection.ops.adapt_datetimefield_value(at)
    return [tenant.pk, tenant.pk, tenant.pk, rules.ACTIVE, rules.EXPIRED, at_db, at_db, tenant.pk]


def device_statuses(tenant: Tenant, *, at: dt.datetime | None = None) -> dict[int, str]:
    """Every device's status by id (for tests and small tenants; pages filter or count)."""
    with connection.cursor() as cursor:
        cursor.execute(_status_sql(), _status_params(tenant, at or timezone.now()))
        return dict(cursor.fetchall())


def _valid_counts(device_ids: list[int], at: dt.datetime) -> dict[int, int]:
    rows = (
        License.objects.filter(device_id__in=device_ids)
        .filter(rules.valid_q(at))
        .order_by()
        .values("device_id")
        .annotate(n=Count("id"))
    )
    return {row["device_id"]: row["n"] for row in rows}


def device_search(
    tenant: Tenant,
    *,
    q: str = "",
    status: str = "",
    sort: str = "serial",
    at: dt.datetime | None = None,
) -> QuerySet[FieldDevice]:
    """The device list: search serial or name, filter by status (in the database, set-based),
    sort. Plain device rows: a page gets its cameras and valid-license counts with
    `devices_with_licensing`, so R1 is shown from rules.requirement, not from the SQL."""
    from django.db.models.expressions import RawSQL

    at = at or timezone.now()
    qs = FieldDevice.objects.filter(tenant=tenant)
    q = q.strip()
    if q:
        qs = qs.filter(Q(serial__icontains=q) | Q(name__icontains=q))
    if status in DEVICE_STATUSES:
        # Only the models' own table names are in _status_sql; values are parameters.
        matching = RawSQL(  # noqa: S611
            f"SELECT s.id FROM ({_status_sql()}) s WHERE s.status = %s",  # noqa: S608
            [*_status_params(tenant, at), status],
        )
        qs = qs.filter(pk__in=matching)
    return qs.order_by(*DEVICE_SORTS.get(sort, DEVICE_SORTS["serial"]))


def devices_with_licensing(
    devices, *, at: dt.datetime | None = None
) -> list[tuple[FieldDevice, DeviceLicensing]]:
    """A page of devices with their cameras and R1 against their valid licenses: two
    statements for the page, whatever its place in the fleet (no OFFSET over subqueries)."""
    from django.db.models import prefetch_related_objects

    at = at or timezone.now()
    devices = list(devices)
    prefetch_related_objects(devices, Prefetch("cameras", queryset=Camera.objects.order_by("id")))
    counts = _valid_counts([d.pk for d in devices], at) if devices else {}
    return [
        (device, device_licensing(device, licenses_valid=counts.get(device.pk, 0)))
        for device in devices
    ]


def device_status_counts(tenant: Tenant, *, at: dt.datetime | None = None) -> dict[str, int]:
    """Devices by status, one GROUP BY statement."""
    counts = dict.fromkeys(DEVICE_STATUSES, 0)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT s.status, COUNT(*) FROM ({_status_sql()}) s GROUP BY s.status",  # noqa: S608
            _status_params(tenant, at or timezone.now()),
        )
        for status, n in cursor.fetchall():
            counts[status] = n
    return counts


LICENSE_SORTS = {
    "expires": ("expires_at", "id"),
    "-expires": ("-expires_at", "-id"),
    "id": ("id",),
    "-id": ("-id",),
}
EXPIRY_WINDOWS = (7, 30, 90)


def expiring_before(days: int, at: dt.datetime) -> dt.datetime:
    """The instant before which a license expires within `days` Asia/Shanghai calendar days
    (R11's count: days to the expiry date, so "within 7" includes an expiry date 7 days on)."""
    from console.timeutils import business_date, start_of_business_day

    return start_of_business_day(business_date(at) + dt.timedelta(days=days + 1))


def license_search(
    tenant: Tenant,
    *,
    q: str = "",
    status: str | None = None,
    device: str = "",
    device_id: int | None = None,
    expiring_within: int | None = None,
    sort: str = "expires",
    at: dt.datetime | None = None,
) -> QuerySet[License]:
    """The license list: a license id ("L-12" or "12"), status at read time (R5), a device
    (serial, or "none" for unbound), valid licenses expiring within N days, a sort."""
    at = at or timezone.now()
    qs = License.objects.filter(tenant=tenant)
    q = q.strip().upper().removeprefix("L-")
    if q:
        qs = qs.filter(pk=int(q)) if q.isdigit() else qs.none()
    if status:
        qs = qs.with_status_at(status, at)
    if device == "none":
        qs = qs.filter(device__isnull=True)
    elif device:
        qs = qs.filter(device__serial=device.strip().lower())
    if device_id is not None:
        qs = qs.filter(device_id=device_id)
    if expiring_within:
        qs = qs.valid_at(at).filter(expires_at__lt=expiring_before(expiring_within, at))
    return qs.select_related("device").order_by(*LICENSE_SORTS.get(sort, LICENSE_SORTS["expires"]))


@dataclass(frozen=True)
class LicenseStats:
    valid: int
    bound: int
    unbound: int
    expiring_30: int
    expiring_7: int
    expired: int


def license_stats(tenant: Tenant, *, at: dt.datetime | None = None) -> LicenseStats:
    """The dashboard's license figures in one statement, with the license API's meanings:
    valid now (R5), of those bound and unbound, expiring within 30 and 7 days, expired."""
    at = at or timezone.now()
    valid = rules.valid_q(at)
    row = License.objects.filter(tenant=tenant).aggregate(
        valid=Count("id", filter=valid),
        bound=Count("id", filter=valid & Q(device__isnull=False)),
        expiring_30=Count("id", filter=valid & Q(expires_at__lt=expiring_before(30, at))),
        expiring_7=Count("id", filter=valid & Q(expires_at__lt=expiring_before(7, at))),
        expired=Count("id", filter=rules.status_q(rules.EXPIRED, at)),
    )
    return LicenseStats(
        valid=row["valid"],
        bound=row["bound"],
        unbound=row["valid"] - row["bound"],
        expiring_30=row["expiring_30"],
        expiring_7=row["expiring_7"],
        expired=row["expired"],
    )


def license_expiry_timeline(
    tenant: Tenant, *, months: int = 12, at: dt.datetime | None = None
) -> list[tuple[dt.date, int]]:
    """Valid licenses by the Asia/Shanghai month of their expiry date, for this month and
    the next `months - 1`: [(first day of month, count)], months without expiries as 0."""
    from django.db.models.functions import TruncMonth

    from console.timeutils import BUSINESS_TZ, business_date, start_of_business_day

    at = at or timezone.now()
    today = business_date(at)
    firsts = []
    year, month = today.year, today.month
    for _i in range(months + 1):
        firsts.append(dt.date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    rows = (
        License.objects.filter(tenant=tenant)
        .filter(rules.valid_q(at), expires_at__lt=start_of_business_day(firsts[-1]))
        .annotate(month=TruncMonth("expires_at", tzinfo=BUSINESS_TZ))
        .order_by()
        .values("month")
        .annotate(n=Count("id"))
    )
    by_month = {}
    for row in rows:
        month_value = row["month"]
        if isinstance(month_value, dt.datetime):
            month_value = month_value.astimezone(BUSINESS_TZ).date()
        by_month[month_value.replace(day=1)] = row["n"]
    return [(first, by_month.get(first, 0)) for first in firsts[:-1]]


def licenses_expiring_soonest(
    tenant: Tenant, *, limit: int = 5, at: dt.datetime | None = None
) -> list[License]:
    at = at or timezone.now()
    return list(
        License.objects.filter(tenant=tenant)
        .valid_at(at)
        .select_related("device")
        .order_by("expires_at", "id")[:limit]
    )
