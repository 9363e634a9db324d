"""Builders for action tests: times in Asia/Shanghai, action bodies, a custom factor set."""
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.activities import factors, service as activities
from app.columns import utcnow
from app.extensions import db

SHANGHAI = ZoneInfo("Asia/Shanghai")


def ago(**delta) -> datetime:
    return utcnow() - timedelta(**delta)


def local(day, hour: int = 12, minute: int = 0) -> datetime:
    """An aware time on an Asia/Shanghai calendar day."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def today_local():
    return utcnow().astimezone(SHANGHAI).date()


def action_body(**overrides) -> dict:
    body = {"action_type": "recycling", "variant": "paper", "quantity": "2.5", "unit": "kg",
            "occurred_at": ago(hours=1).isoformat()}
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


def row(**overrides) -> dict:
    """A factor row as the JSON API takes it."""
    data = {"action_type": "tree_care", "variant": "watering", "unit": "kg", "kgco2e_per_unit": "1.5",
            "points_per_unit": "10", "daily_cap": "5", "monthly_cap": "8",
            "sources": ["resident", "staff", "device", "import"], "self_approvable": False, "verifiable": True,
            "evidence": "estimate", "source": "Test methodology"}
    data.update(overrides)
    return data


@pytest.fixture
def make_factor_set():
    """Create and publish a factor set from JSON-style rows (committed as a savepoint)."""

    def make(code: str, effective_from, rows: list[dict], publish: bool = True):
        from app.activities.schemas import FactorSetIn

        data = FactorSetIn().load({"code": code, "effective_from": effective_from.isoformat(), "rows": rows})
        created = factors.create_factor_set(data)
        if publish:
            factors.publish_factor_set(code)
        db.session.commit()
        return created

    return make


@pytest.fixture
def record():
    """record_action with defaults for a household member."""

    def make(person, **overrides):
        fields = dict(household_id=person.household_id, resident_id=person.id, action_type="recycling",
                      variant="paper", quantity=Decimal("2.5"), unit="kg", occurred_at=ago(hours=1),
                      source="self_reported", actor_id=person.id)
        fields.update(overrides)
        if isinstance(fields["quantity"], str):
            fields["quantity"] = Decimal(fields["quantity"])
        action = activities.record_action(**fields)
        db.session.commit()
        return action

    return make
