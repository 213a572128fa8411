"""R1: how many licenses a field device needs. Pure functions, exact arithmetic.

`licenses_required = max(1, round_half_up(aggregate / (1280 × 720)))` on the *exact* ratio.
Python's round() is banker's rounding (round(2.5) == 2) and is wrong here, so the ratio is
a Decimal rounded with ROUND_HALF_UP.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import lru_cache

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
    """Sum of the k largest streams when the device sets k = max_concurrent_streams, else all."""
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

    Memoized: a pure function of one integer, and the entitlement hot path asks it once per
    requested camera (R6), mostly for the same few sums."""
    rounded = exact_ratio(aggregate).to_integral_value(rounding=ROUND_HALF_UP)
    return max(1, int(rounded))


def requirement(pixels: Iterable[int], max_concurrent_streams: int | None = None) -> Requirement:
    aggregate = aggregate_pixels(pixels, max_concurrent_streams)
    return Requirement(
        aggregate_pixels=aggregate,
        ratio=exact_ratio(aggregate),
        licenses=licenses_for_pixels(aggregate),
    )
