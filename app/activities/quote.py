"""The valuation arithmetic, as pure functions: no database, no clock, no Flask.

An approval (`service._approve`), the review queue's "points if approved" and the
wallet allowances all use these, so a preview can never disagree with the
receipt that an approval writes.
"""
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import NamedTuple, Sequence
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
MILLI = Decimal("0.001")


class Valuation(NamedTuple):
    """What a quantity is worth under one factor row and the caps still left."""

    credited_milli: int
    credited: Decimal  # credited_quantity, 3 decimals
    cap_applied: str | None  # "daily" | "monthly" | None: the cap that cut the quantity
    cap_remaining: dict[str, Decimal]  # cap name → what is left after this quantity
    reduction_g: int
    base_points: int


def milli(value: Decimal) -> int:
    """A quantity in thousandths of a unit, floored."""
    return int((value * 1000).to_integral_value(rounding=ROUND_FLOOR))


def cap_periods(occurred_at: datetime, daily_cap: Decimal | None,
                monthly_cap: Decimal | None) -> list[tuple[str, int, str]]:
    """(period key, cap in thousandths, "daily"|"monthly") for the caps a row has, in lock order.

    Period keys are Asia/Shanghai days ("D:2026-05-01") and months ("M:2026-05").
    """
    local = occurred_at.astimezone(SHANGHAI)
    periods = []
    if daily_cap is not None:
        periods.append((f"D:{local.date().isoformat()}", milli(daily_cap), "daily"))
    if monthly_cap is not None:
        periods.append((f"M:{local.strftime('%Y-%m')}", milli(monthly_cap), "monthly"))
    return periods


def value_quantity(quantity: Decimal, *, kgco2e_per_unit: Decimal, points_per_unit: Decimal,
                   caps: Sequence[tuple[str, int, int]]) -> Valuation:
    """Value `quantity` under a factor row, cut to what each cap (name, cap, used; thousandths) still allows.

    credited = min(quantity, what every cap leaves); grams and points are floored per action.
    """
    credited_milli, binding = milli(quantity), None
    for name, cap, used in caps:
        left = max(cap - used, 0)
        if left < credited_milli:
            credited_milli, binding = left, name
    with localcontext() as exact:
        exact.prec = 60  # wide enough that no product is ever rounded before the floor
        credited = (Decimal(credited_milli) / 1000).quantize(MILLI)
        reduction_g = int((credited * kgco2e_per_unit * 1000).to_integral_value(rounding=ROUND_FLOOR))
        base_points = int((credited * points_per_unit).to_integral_value(rounding=ROUND_FLOOR))
        remaining = {name: Decimal(cap - used - credited_milli) / 1000 for name, cap, used in caps}
    return Valuation(credited_milli, credited, binding, remaining, reduction_g, base_points)


def cap_left(cap_milli: int | None, used_milli: int) -> Decimal | None:
    """What a cap still allows (never below 0), or None for no cap."""
    if cap_milli is None:
        return None
    return (Decimal(max(cap_milli - used_milli, 0)) / 1000).quantize(MILLI)
