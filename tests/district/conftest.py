"""Builders for district tests: approved actions on chosen days, a recount from raw actions, parks."""
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.accounts.models import Community
from app.activities import service as activities
from app.activities.models import Action
from app.columns import utcnow
from app.district import parks as parks_service
from app.localtime import SHANGHAI, local_date as local_day
from app.extensions import db
from tests.rewards.builders import *  # noqa: F401,F403  merchant, clerk, fund

API = "/api/v1"
MEASURES = ("actions", "households", "reduction_g", "verified_reduction_g", "points")


@pytest.fixture(autouse=True)
def _long_memory(monkeypatch):
    """Actions may be recorded up to 200 days back here, so periods cross several months."""
    monkeypatch.setattr(activities, "MAX_AGE", timedelta(days=200))


def at(days_ago: int, hour: int = 12) -> datetime:
    """Noon (or `hour`) Asia/Shanghai, `days_ago` days before today; today before noon, 4 minutes from now.

    (The API takes times up to 5 minutes ahead, and "now + 4 min" before noon is always still today.)
    """
    day = local_day(utcnow()) - timedelta(days=days_ago)
    moment = datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)
    return min(moment, utcnow() + timedelta(minutes=4))


@pytest.fixture
def approve(factor_set):
    """An action recorded by staff (approved at once; verified for verifiable rows), or a self-approved walk."""

    def make(person, days_ago=1, *, action_type="recycling", variant="paper", quantity="1.5", unit="kg",
             verified=True, hour=12, commit=True):
        source = "staff" if verified else "self_reported"
        if not verified:
            action_type, variant, unit = "walking", None, "km"
        action = activities.record_action(
            household_id=person.household_id, resident_id=person.id, action_type=action_type, variant=variant,
            quantity=Decimal(quantity), unit=unit, occurred_at=at(days_ago, hour), source=source,
            actor_id=person.id)
        assert action.status == "approved"
        if commit:
            db.session.commit()
        return action

    return make


@pytest.fixture
def households(make_resident, community):
    """`n` residents, each with a household, in `community_id` (default: the fixture community)."""

    def make(n, community_id=None):
        return [make_resident(community_id=community_id or community.id) for _ in range(n)]

    return make


def recount(period_from, period_to, group_by) -> dict:
    """Cells straight from the actions table: key labels → measures (households distinct)."""
    cells = defaultdict(lambda: {"actions": 0, "households": set(), "reduction_g": 0, "verified_reduction_g": 0,
                                 "points": 0})
    communities = {c.id: c for c in db.session.scalars(select(Community))}
    for action in db.session.scalars(select(Action).where(Action.status == "approved")):
        day = local_day(action.occurred_at)
        if not period_from <= day <= period_to:
            continue
        community = communities[action.community_id]
        labels = {"street": community.street.name, "community": community.name, "action_type": action.action_type,
                  "month": day.strftime("%Y-%m")}
        cell = cells[tuple(labels[k] for k in group_by)]
        cell["actions"] += 1
        cell["households"].add(action.household_id)
        cell["reduction_g"] += action.reduction_g
        cell["verified_reduction_g"] += action.reduction_g if action.verified else 0
        cell["points"] += action.points
    return {key: {**value, "households": len(value["households"])} for key, value in cells.items()}


def totals(rows) -> dict:
    return {m: sum(r[m] for r in rows) for m in MEASURES if m != "households"}


@pytest.fixture
def park():
    made = parks_service.create_park(f"测试园区-{utcnow().timestamp()}")
    db.session.commit()
    return made


@pytest.fixture
def make_park():
    counter = iter(range(10_000))

    def make(name=None):
        made = parks_service.create_park(name or f"园区{next(counter)}-{utcnow().timestamp()}")
        db.session.commit()
        return made

    return make


@pytest.fixture
def park_manager(make_staff, park):
    return make_staff("park_manager", park_id=park.id)


def issue(client, admin, community_id, period_from, period_to, **headers):
    return client.post(f"{API}/reduction-batches", json={"community_id": community_id,
                                                        "period_from": str(period_from), "period_to": str(period_to)},
                       headers={**admin.headers, **headers})


def today():
    return local_day(utcnow())


def year_start():
    return today().replace(month=1, day=1)
