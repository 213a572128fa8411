"""R1: the license requirement math. Pure functions, exact Decimal arithmetic, half up."""

from decimal import Decimal

import pytest

from licensing.rules import (
    STANDARD_PIXELS,
    aggregate_pixels,
    exact_ratio,
    licenses_for_pixels,
    requirement,
)


def px(*sizes: tuple[int, int]) -> list[int]:
    return [w * h for w, h in sizes]


def test_r1_purchase_guide_example():
    """1280×720 + 2 × 640×480 → 1,536,000 px → 1.67 → 2 licenses."""
    req = requirement(px((1280, 720), (640, 480), (640, 480)))
    assert req.aggregate_pixels == 1_536_000
    assert req.standard_pixels == STANDARD_PIXELS == 921_600
    assert req.ratio_display == "1.67"
    assert req.licenses == 2


@pytest.mark.parametrize(
    ("sizes", "aggregate", "licenses"),
    [
        # 1,382,400 / 921,600 = 1.5 exactly: half up gives 2.
        ([(1280, 720), (640, 720)], 1_382_400, 2),
        # One 1920×1200 camera: 2.5 exactly → 3, where Python's round() gives 2.
        ([(1920, 1200)], 2_304_000, 3),
        # 3.5 → 4 (round() would give 4 too; both halves are covered).
        ([(1920, 1680)], 3_225_600, 4),
    ],
)
def test_r1_exact_halves_round_up(sizes, aggregate, licenses):
    req = requirement(px(*sizes))
    assert req.aggregate_pixels == aggregate
    assert req.licenses == licenses


def test_r1_banker_rounding_would_be_wrong():
    """The reason for Decimal: Python's round() is banker's rounding."""
    assert round(2_304_000 / 921_600) == 2
    assert licenses_for_pixels(2_304_000) == 3


@pytest.mark.parametrize(
    ("pixels", "licenses"),
    [
        (0, 1),  # no enabled camera: still the minimum of one
        (1, 1),
        (640 * 480, 1),  # 0.33 → 0 → minimum 1
        (460_799, 1),  # just under 0.5
        (460_800, 1),  # 0.5 exactly → 1 (half up, and the minimum anyway)
        (921_600, 1),
        (1_382_399, 1),  # just under 1.5
        (1_382_401, 2),
    ],
)
def test_r1_minimum_and_edges(pixels, licenses):
    assert licenses_for_pixels(pixels) == licenses


def test_r1_empty_camera_list_needs_the_minimum_of_one():
    req = requirement([])
    assert req.aggregate_pixels == 0
    assert req.licenses == 1
    assert req.ratio_display == "0.00"


def test_r1_max_concurrent_streams_takes_the_k_largest():
    sizes = px((640, 480), (1920, 1080), (1280, 720), (320, 240))
    assert aggregate_pixels(sizes, 1) == 1920 * 1080
    assert aggregate_pixels(sizes, 2) == 1920 * 1080 + 1280 * 720
    assert aggregate_pixels(sizes, None) == sum(sizes)
    # k larger than the number of cameras: all of them.
    assert aggregate_pixels(sizes, 8) == sum(sizes)
    req = requirement(sizes, max_concurrent_streams=2)
    assert req.aggregate_pixels == 2_995_200
    assert req.licenses == 3  # 3.25 → 3


def test_r1_display_ratio_rounds_half_up_but_licenses_use_the_exact_ratio():
    """1472×936 → exact 1.495 → shown "1.50", yet 1 license (1.495 rounds to 1)."""
    req = requirement(px((1472, 936)))
    assert req.aggregate_pixels == 1_377_792
    assert req.ratio == Decimal("1.495")
    assert req.ratio_display == "1.50"
    assert req.licenses == 1


def test_r1_repeating_ratio_is_not_rounded_twice():
    # 1,536,000 / 921,600 = 1.6666…: display 1.67, licenses from the exact value.
    assert exact_ratio(1_536_000) > Decimal("1.666666")
    assert requirement([1_536_000]).ratio_display == "1.67"


def test_r1_largest_device_eight_8k_cameras():
    req = requirement([7680 * 4320] * 8)
    assert req.aggregate_pixels == 265_420_800
    assert req.licenses == 288
    assert req.ratio_display == "288.00"


def test_r1_refuses_impossible_input_loudly():
    """Sizes and k are validated upstream; here a bad value is a bug, not "1 license"."""
    with pytest.raises(ValueError):
        requirement([921_600, -1])
    with pytest.raises(ValueError):
        requirement([921_600], max_concurrent_streams=0)
