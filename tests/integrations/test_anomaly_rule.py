"""The anomaly rule on its own: above the whole daily cap, or more than 5 x the median of the last
(up to 20) approved quantities, given at least 5 of them. Pure: no database."""
from decimal import Decimal

import pytest

from app.integrations.records import is_anomalous

D = Decimal


@pytest.mark.parametrize("quantity, history, anomalous", [
    (D("5"), [D("1")] * 5, False),  # exactly 5 x the median is not more than it
    (D("5.001"), [D("1")] * 5, True),
    (D("40"), [D("1"), D("10"), D("10"), D("10"), D("10")], False),  # past 5 x the smallest, within 5 x the median
    (D("51"), [D("1"), D("10"), D("10"), D("10"), D("10")], True),
    (D("27.5"), [D("1"), D("1"), D("1"), D("10"), D("10"), D("10")], False),  # even count: median (1 + 10) / 2
    (D("27.501"), [D("1"), D("1"), D("1"), D("10"), D("10"), D("10")], True),
    (D("1000"), [D("1")] * 4, False),  # fewer than 5 approvals: no rule
])
def test_a_quantity_is_anomalous_past_five_times_the_median_of_its_history(quantity, history, anomalous):
    assert is_anomalous(quantity, None, history) is anomalous


def test_a_quantity_above_the_whole_daily_cap_is_anomalous_whatever_the_history():
    assert is_anomalous(D("30.001"), D("30"), []) is True
    assert is_anomalous(D("30"), D("30"), [D("30")] * 20) is False
