"""Urgency marks of the console's pages (R11's count): a valid license expiring within 30
or 7 Asia/Shanghai calendar days is marked wherever it appears, with the days left."""

import datetime as dt

from django import template
from django.utils import timezone
from django.utils.translation import ngettext

from console.timeutils import business_date
from licensing.rules import expiry_date

register = template.Library()

URGENT_DAYS = 7
SOON_DAYS = 30


def days_left(expires_at: dt.datetime, at: dt.datetime | None = None) -> int:
    """Calendar days from today to the expiry date, the first day without service: on the
    last service date one day is left."""
    return (expiry_date(expires_at) - business_date(at or timezone.now())).days


def urgency(days: int | None) -> str:
    if days is None or days < 0:
        return ""
    if days <= URGENT_DAYS:
        return "urgent"
    if days <= SOON_DAYS:
        return "soon"
    return ""


@register.inclusion_tag("licensing/_days_left.html")
def days_mark(days):
    """`{% days_mark row.days_left %}`: "N days left", marked within 30 and 7 days; a dash
    for a license that is not valid (None)."""
    if days is None:
        return {"days": None}
    return {
        "days": days,
        "urgency": urgency(days),
        "label": ngettext("%(n)d day left", "%(n)d days left", days) % {"n": days},
    }
