"""dialect._json_rows: the JSON a batch's rows travel in to json_to_recordset, value by value."""
import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from app.dialect import _json_rows

SHANGHAI = timezone(timedelta(hours=8))


def test_rows_travel_as_naive_utc_times_exact_decimals_and_plain_text():
    at = datetime(2026, 12, 3, 8, 30, 15, 250_000, tzinfo=SHANGHAI)
    rows = [{"at": at, "quantity": Decimal("1.500"), "day": date(2026, 12, 3), "name": "绿色账户", "note": None,
             "points": 2**62},
            {"at": at + timedelta(microseconds=1), "quantity": Decimal("0.001"), "day": date(2027, 1, 1),
             "name": "x\"y", "note": "", "points": -5}]

    text = _json_rows(rows)

    assert json.loads(text) == [
        {"at": "2026-12-03T00:30:15.250000", "quantity": "1.500", "day": "2026-12-03", "name": "绿色账户",
         "note": None, "points": 2**62},
        {"at": "2026-12-03T00:30:15.250001", "quantity": "0.001", "day": "2027-01-01", "name": "x\"y",
         "note": "", "points": -5}]
    assert "绿色账户" in text  # written as itself, not escaped


def test_a_value_json_cannot_carry_is_refused_not_guessed():
    with pytest.raises(TypeError):
        _json_rows([{"amount": 1.5j}])
