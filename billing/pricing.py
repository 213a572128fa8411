"""R2: prices and totals. Money is Decimal with two places, never float."""

from decimal import ROUND_HALF_UP, Decimal

from billing.models import CENTS, MONEY_DIGITS, MONEY_PLACES
from console.models import Tenant


def money(value: Decimal | int | str) -> Decimal:
    """A Decimal with exactly two places, rounded half up (R2: never float)."""
    if isinstance(value, float):
        raise TypeError("Money is never a float.")
    return Decimal(value).quantize(CENTS, rounding=ROUND_HALF_UP)


def unit_price_for(tenant: Tenant) -> Decimal:
    """R2: the tenant's contract price. It was fixed when the tenant was created (its
    confirmation's price, else LICENSE_LIST_PRICE then), so a later change of the setting
    reprices nobody."""
    return money(tenant.contract_unit_price)


def order_total(*, unit_price: Decimal, quantity: int, years: int) -> Decimal:
    """R2: licenses × unit price × years. A two-place price times whole numbers has two
    places already; refusing anything else makes sure a rounding step never hides a mistake."""
    exact = Decimal(unit_price) * quantity * years
    total = money(exact)
    if total != exact:
        raise ValueError(f"A price with more than two decimals cannot be billed: {unit_price}.")
    return total


# The largest amount a money column holds (max_digits=14, decimal_places=2).
MAX_AMOUNT = Decimal(10 ** (MONEY_DIGITS - MONEY_PLACES)) - CENTS
