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


def test_many_rows_are_added_into_a_table_of_totals_in_one_statement(app, is_postgres):
    """add_rows: a new key is inserted, an existing key gets the sums added; several rows on
    PostgreSQL are one upsert (a batch's hundreds of month rows), on SQLite one executemany."""
    from sqlalchemy import event, select

    from app.dialect import add_rows
    from app.district.models import HouseholdMonth
    from app.extensions import db

    keys, sums = ("month", "community_id", "action_type", "household_id"), ("actions", "reduction_g",
                                                                             "verified_reduction_g")

    def row(household, actions, grams):
        return {"month": "2026-12", "community_id": "c1", "action_type": "recycling", "household_id": household,
                "actions": actions, "reduction_g": grams, "verified_reduction_g": grams // 2}

    add_rows(db.session, HouseholdMonth.__table__, keys, sums, [row("h1", 1, 800)])
    statements = []
    record = lambda conn, cursor, statement, *rest: statements.append(statement)  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        add_rows(db.session, HouseholdMonth.__table__, keys, sums, [row("h1", 2, 1_600), row("h2", 1, 820)])
    finally:
        event.remove(db.engine, "before_cursor_execute", record)

    stored = {h: (a, g, v) for h, a, g, v in db.session.execute(
        select(HouseholdMonth.household_id, HouseholdMonth.actions, HouseholdMonth.reduction_g,
               HouseholdMonth.verified_reduction_g).order_by(HouseholdMonth.household_id))}
    assert stored == {"h1": (3, 2_400, 1_200), "h2": (1, 820, 410)}
    assert len(statements) == 1
    assert ("json_to_recordset" in statements[0]) == is_postgres
    db.session.rollback()
