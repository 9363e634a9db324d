"""recorded_at: a record made in the past (the demo's history) is checked against its own moment."""
from datetime import timedelta
from decimal import Decimal

import pytest

from app.activities import service as activities
from app.columns import utcnow
from app.errors import ValidationFailed
from app.extensions import db


def record(person, staff, occurred_at, recorded_at=None):
    return activities.record_action(
        household_id=person.household_id, resident_id=person.id, action_type="recycling", variant="paper",
        quantity=Decimal("2"), unit="kg", occurred_at=occurred_at, source="staff", actor_id=staff.id,
        recorded_at=recorded_at)


def test_an_action_60_days_old_recorded_the_day_after_it_is_kept_with_that_moment(factor_set, resident, staff):
    occurred = utcnow() - timedelta(days=60)

    action = record(resident, staff, occurred, recorded_at=occurred + timedelta(days=1))
    db.session.commit()

    assert action.status == "approved" and action.reduction_g == 2_000 and action.points == 200
    assert action.created_at == occurred + timedelta(days=1)


def test_without_recorded_at_the_server_clock_still_refuses_an_action_older_than_30_days(factor_set, resident,
                                                                                         staff):
    with pytest.raises(ValidationFailed) as refused:
        record(resident, staff, utcnow() - timedelta(days=31))

    assert refused.value.extra["errors"] == {"occurred_at": ["Must be within the last 30 days."]}


def test_recorded_at_still_refuses_what_was_old_or_ahead_at_that_moment(factor_set, resident, staff):
    moment = utcnow() - timedelta(days=90)

    with pytest.raises(ValidationFailed) as old:
        record(resident, staff, moment - timedelta(days=31), recorded_at=moment)
    with pytest.raises(ValidationFailed) as ahead:
        record(resident, staff, moment + timedelta(minutes=10), recorded_at=moment)

    assert list(old.value.extra["errors"]) == ["occurred_at"]
    assert ahead.value.extra["errors"] == {"occurred_at": ["Must not be more than 5 minutes ahead of the server clock."]}
