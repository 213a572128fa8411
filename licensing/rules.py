"""The licensing rules, each in one place (docs/rules.md): R1 requirement, R3/R4 dates, R5
validity, R6 camera choice and service level.

Pure functions on plain values: no database access, no model instances needed. Services,
selectors, jobs, pages and the API call these; none of them restates a rule. Where the
database must apply a rule itself (a queryset filter, the heartbeat's conditional UPDATE),
the filter is built here too (`valid_q`) or tested against the function here.
"""

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import lru_cache
from typing import Protocol

from django.db.models import Q
from django.utils.translation import gettext as _

from console.errors import InvalidInput
from console.limits import MAX_CAMERAS_PER_DEVICE, MAX_PIXELS, MAX_SIDE  # noqa: F401 - R1 bounds
from console.timeutils import add_years, business_date, start_of_business_day

# --- R1: how many licenses a field device needs ---------------------------------------------

STANDARD_PIXELS = 1280 * 720  # one license covers one 720p stream's worth of pixels


@dataclass(frozen=True)
class Requirement:
    aggregate_pixels: int
    ratio: Decimal  # exact ratio, for computing
    licenses: int

    @property
    def ratio_display(self) -> str:
        """The ratio with two decimals, rounded half up: for display only (1.495 → "1.50")."""
        return str(self.ratio.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))

    @property
    def standard_pixels(self) -> int:
        return STANDARD_PIXELS


def aggregate_pixels(pixels: Iterable[int], max_concurrent_streams: int | None = None) -> int:
    """R1: the sum of the k largest streams when the device sets k = max_concurrent_streams,
    else of all."""
    values = sorted((int(p) for p in pixels), reverse=True)
    # Callers validate sizes and k (models, serializers); a negative size or k < 1 here is a
    # bug upstream, and silently answering "1 license" would hide it.
    if values and values[-1] < 0:
        raise ValueError("pixel counts cannot be negative")
    if max_concurrent_streams is not None:
        if max_concurrent_streams < 1:
            raise ValueError("max_concurrent_streams must be at least 1")
        values = values[:max_concurrent_streams]
    return sum(values)


def exact_ratio(aggregate: int) -> Decimal:
    # Integers up to 8 × 33,177,600 divided by 921,600: 60 significant digits is far more
    # than the quotient can need before it terminates or repeats past the rounding digit.
    with localcontext() as ctx:
        ctx.prec = 60
        return Decimal(aggregate) / Decimal(STANDARD_PIXELS)


@lru_cache(maxsize=4096)
def licenses_for_pixels(aggregate: int) -> int:
    """R1: max(1, round_half_up(aggregate / 1280×720)) on the exact ratio, as a Decimal with
    ROUND_HALF_UP (1.5 → 2, 2.5 → 3; Python's round() would give 2 for 2.5).

    Memoized: a pure function of one integer, asked once per requested camera (R6)."""
    rounded = exact_ratio(aggregate).to_integral_value(rounding=ROUND_HALF_UP)
    return max(1, int(rounded))


def licenses_for_pixels_sql(aggregate_sql: str) -> str:
    """`licenses_for_pixels` as a SQL expression over an integer SQL expression, for pages
    that filter or count devices by status in the database (10,000 devices).

    Integers only, so nothing is rounded twice: for a ≥ 0, round_half_up(a / S) is
    floor((2a + S) / 2S), and SQLite and PostgreSQL both truncate an integer division.
    test_list_status checks it against licenses_for_pixels at every rounding edge."""
    # CAST: PostgreSQL's SUM of integers is a numeric, whose division would not truncate.
    doubled = f"(2 * CAST(({aggregate_sql}) AS BIGINT) + {STANDARD_PIXELS})"
    rounded = f"({doubled} / {2 * STANDARD_PIXELS})"
    return f"(CASE WHEN {rounded} < 1 THEN 1 ELSE {rounded} END)"


def requirement(pixels: Iterable[int], max_concurrent_streams: int | None = None) -> Requirement:
    aggregate = aggregate_pixels(pixels, max_concurrent_streams)
    return Requirement(
        aggregate_pixels=aggregate,
        ratio=exact_ratio(aggregate),
        licenses=licenses_for_pixels(aggregate),
    )


# --- R3 / R4: the one date rule ---------------------------------------------------------------

MAX_YEARS = 10  # years in one purchase or renewal


def expiry_after_years(*, from_date: dt.date, years: int) -> dt.datetime:
    """R3/R4: the last service date is `from_date` + `years` (Feb 29 → Feb 28 in a common
    year); the license expires at 00:00 Asia/Shanghai of the day after it.

    Issuing passes the payment's Asia/Shanghai date; renewal passes the current last
    service date, so a renewal moves it on from there, not from today."""
    last_service_date = add_years(from_date, years)
    return start_of_business_day(last_service_date + dt.timedelta(days=1))


def last_service_date(expires_at: dt.datetime) -> dt.date:
    """R3: the last Asia/Shanghai date covered; expires_at is 00:00 CST of the next day."""
    return business_date(expires_at) - dt.timedelta(days=1)


def expiry_date(expires_at: dt.datetime) -> dt.date:
    """R11: the first Asia/Shanghai date without service."""
    return business_date(expires_at)


def whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_years(years) -> None:
    """R2/R4: a purchase or renewal is for 1 to MAX_YEARS whole years."""
    if not whole_number(years) or not 1 <= years <= MAX_YEARS:
        raise InvalidInput(
            _("Years must be a whole number from 1 to %(max)d.") % {"max": MAX_YEARS},
            errors={"years": [_("Enter a whole number from 1 to %(max)d.") % {"max": MAX_YEARS}]},
        )


# --- R5: validity, computed from expires_at on every read -----------------------------------

ACTIVE = "active"
EXPIRED = "expired"
REFUNDED = "refunded"
# Every stored status but refunded: the stored "expired" only records the nightly job's run.
NOT_REFUNDED = (ACTIVE, EXPIRED)


def is_valid(*, status: str, starts_at: dt.datetime, expires_at: dt.datetime, at) -> bool:
    """R5/R6: paid (started), unexpired and unrefunded at `at`."""
    return status != REFUNDED and starts_at <= at < expires_at


def status_at(*, status: str, expires_at: dt.datetime, at: dt.datetime) -> str:
    """R5: the status the API shows, computed at read time, never from the job's flag."""
    if status == REFUNDED:
        return REFUNDED
    return EXPIRED if expires_at <= at else ACTIVE


def valid_q(at: dt.datetime, prefix: str = "") -> Q:
    """`is_valid` as a filter, optionally through a relation (e.g. "licenses__")."""
    return Q(
        **{
            f"{prefix}status__in": NOT_REFUNDED,
            f"{prefix}starts_at__lte": at,
            f"{prefix}expires_at__gt": at,
        }
    )


def status_q(status: str, at: dt.datetime) -> Q:
    """`status_at(...) == status` as a filter: the API's ?status= means what it shows."""
    if status == REFUNDED:
        return Q(status=REFUNDED)
    if status == EXPIRED:
        return Q(status__in=NOT_REFUNDED, expires_at__lte=at)
    return Q(status__in=NOT_REFUNDED, expires_at__gt=at)


# --- R6: which cameras a device may push, and its service level ------------------------------

VALID = "VALID"
DEGRADED = "DEGRADED"
NO_VALID_LICENSE = "NO_VALID_LICENSE"

# Why a requested camera is denied (the entitlement call's denied_reasons).
DISABLED = "DISABLED"
CONCURRENCY_LIMIT = "CONCURRENCY_LIMIT"
NOT_ENOUGH_LICENSES = "NOT_ENOUGH_LICENSES"

# A device's status as the device list and API show it (R1 against its valid licenses).
LICENSED = "licensed"
UNDER_LICENSED = "under_licensed"
UNLICENSED = "unlicensed"


class CameraLike(Protocol):
    pk: int
    enabled: bool
    priority: int

    @property
    def pixels(self) -> int: ...


def by_priority(cameras: Iterable[CameraLike]) -> list:
    """R6's order: higher priority first; equal priority, lower camera id first."""
    return sorted(cameras, key=lambda c: (-c.priority, c.pk))


def pushed_cameras(cameras: Iterable[CameraLike], max_concurrent_streams: int | None) -> list:
    """What a device pushes at once when the gateway names no cameras: its enabled cameras
    by priority, at most max_concurrent_streams of them. R1 judges a device on its k largest
    cameras (the worst case), so a device that is licensed always gets all of these."""
    enabled = [c for c in by_priority(cameras) if c.enabled]
    return enabled if max_concurrent_streams is None else enabled[:max_concurrent_streams]


@dataclass(frozen=True)
class CameraChoice:
    kept: list
    denied: list
    reasons: dict[int, str]  # camera id → DISABLED | CONCURRENCY_LIMIT | NOT_ENOUGH_LICENSES


def choose_cameras(
    cameras: Sequence[CameraLike], *, licenses_valid: int, max_concurrent_streams: int | None
) -> CameraChoice:
    """R6: the cameras to keep with `licenses_valid` licenses, and those to deny with why.

    Take the requested enabled cameras by priority (higher first; equal priority: lower id
    first); keep each whose addition still fits the valid licenses by the R1 formula, skip
    each that does not, and never keep more than max_concurrent_streams."""
    kept: list = []
    denied: list = []
    reasons: dict[int, str] = {}
    kept_pixels = 0
    for cam in by_priority(cameras):
        if not cam.enabled:
            reason = DISABLED
        elif max_concurrent_streams is not None and len(kept) >= max_concurrent_streams:
            reason = CONCURRENCY_LIMIT
        elif licenses_valid > 0 and licenses_for_pixels(kept_pixels + cam.pixels) <= licenses_valid:
            kept.append(cam)
            kept_pixels += cam.pixels
            continue
        else:
            reason = NOT_ENOUGH_LICENSES
        denied.append(cam)
        reasons[cam.pk] = reason
    return CameraChoice(kept=kept, denied=denied, reasons=reasons)


def service_code(*, licenses_valid: int, denied: Sequence) -> str:
    """R6: NO_VALID_LICENSE exactly when no license is valid; DEGRADED when any requested
    camera is denied (possibly all of them); VALID otherwise."""
    if licenses_valid <= 0:
        return NO_VALID_LICENSE
    return DEGRADED if denied else VALID


def device_service(
    cameras: Sequence[CameraLike], *, licenses_valid: int, max_concurrent_streams: int | None
) -> tuple[str, CameraChoice]:
    """R6 for what the device pushes when no cameras are named (`pushed_cameras`): its
    service code and camera choice. The reminders and service-change events use this."""
    choice = choose_cameras(
        pushed_cameras(cameras, max_concurrent_streams),
        licenses_valid=licenses_valid,
        max_concurrent_streams=max_concurrent_streams,
    )
    return service_code(licenses_valid=licenses_valid, denied=choice.denied), choice


def device_license_status_sql(*, required_sql: str, valid_sql: str) -> str:
    """`device_license_status` as a SQL expression over two integer SQL expressions: the
    device list filters and the dashboard counts devices by status with it."""
    return (
        f"(CASE WHEN ({valid_sql}) <= 0 THEN '{UNLICENSED}' "
        f"WHEN ({valid_sql}) < ({required_sql}) THEN '{UNDER_LICENSED}' "
        f"ELSE '{LICENSED}' END)"
    )


def device_license_status(*, required: int, valid: int) -> str:
    """R1 against R6: licensed when the valid licenses cover the requirement."""
    if valid <= 0:
        return UNLICENSED
    if valid < required:
        return UNDER_LICENSED
    return LICENSED
