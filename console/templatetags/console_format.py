"""Number formats of the console's pages: pixel counts and money (R2: two decimals)."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

register = template.Library()


@register.filter
def pixels(value) -> str:
    """1536000 → "1,536,000" (the purchase guide's notation, in both languages)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return ""


@register.filter
def money(value) -> str:
    """A Decimal with exactly two places, rounded half up; never through float (R2)."""
    if value is None or value == "":
        return ""
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError):
        return ""
