"""Business time (R3, R12): storage is UTC, business dates are Asia/Shanghai calendar dates.

Every "now" in the product comes from `django.utils.timezone.now()` or a parameter, never
from the database server, so tests can move time with time-machine.
"""

import datetime as dt
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


def business_date(instant: dt.datetime) -> dt.date:
    """The Asia/Shanghai calendar date of an aware instant."""
    return instant.astimezone(BUSINESS_TZ).date()


def start_of_business_day(day: dt.date) -> dt.datetime:
    """00:00 Asia/Shanghai of `day`, as an aware datetime."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=BUSINESS_TZ)


def add_years(day: dt.date, years: int) -> dt.date:
    """`day` moved `years` calendar years on; Feb 29 becomes Feb 28 in a common year (R3)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)
