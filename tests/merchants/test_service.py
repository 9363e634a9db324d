"""Merchant rules called directly: Shanghai days and months, settlement, anomaly flags."""
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import select, update

from app import localtime
from app.errors import NotFound, ValidationFailed
from app.extensions import db
from app.merchants import service
from app.rewards import settlement
from app.merchants.models import AnomalyFlag


def test_months_and_days_follow_shanghai():
    start, end = localtime.month_bounds("2026-12")

    assert start.astimezone(timezone.utc) == datetime(2026, 11, 30, 16, tzinfo=timezone.utc)
    assert end.astimezone(timezone.utc) == datetime(2026, 12, 31, 16, tzinfo=timezone.utc)
    assert localtime.local_date(datetime(2026, 3, 31, 16, 0, tzinfo=timezone.utc)) == date(2026, 4, 1)
    assert localtime.day_bounds(date(2026, 4, 1))[0].astimezone(timezone.utc) == datetime(2026, 3, 31, 16,
                                                                                       tzinfo=timezone.utc)


def test_an_empty_month_settles_to_zero(merchant):
    report = settlement.settlement(merchant.id, "2026-01")

    assert (report["redemptions"], report["net_points"], report["by_reward"], report["by_day"]) == (0, 0, [], [])
    assert settlement.settlement_csv(report).decode("utf-8").splitlines() == [
        "\ufeffday,reward_id,reward_name,redemptions,quantity,redeemed_points,voids,voided_points,net_points",
        "total,,,0,0,0,0,0,0"]


def test_a_flag_is_raised_once_per_household_merchant_and_day_and_then_updated(resident, merchant):
    now = datetime(2026, 5, 1, 2, tzinfo=timezone.utc)

    assert service.flag_if_unusual(resident.household_id, merchant, 3, now) is None
    service.flag_if_unusual(resident.household_id, merchant, 4, now)
    service.flag_if_unusual(resident.household_id, merchant, 6, now)

    flags = db.session.scalars(select(AnomalyFlag)).all()
    assert [(f.day, f.redemptions, f.community_id) for f in flags] == [(date(2026, 5, 1), 6, merchant.community_id)]


def test_community_staff_cannot_add_a_merchant_outside_their_communities(staff, make_community, community):
    with pytest.raises(NotFound):
        service.create_merchant(staff.user, {"name": "店", "community_id": make_community().id})
    with pytest.raises(ValidationFailed):
        service.create_merchant(staff.user, {"name": "店", "community_id": "missing"})
    assert service.create_merchant(staff.user, {"name": " 店 ", "community_id": community.id}).name == "店"


def test_a_count_not_above_the_flags_leaves_it_closed_and_keeps_the_higher_count(resident, merchant, staff):
    now = datetime(2026, 5, 1, 2, tzinfo=timezone.utc)
    flag_id = service.flag_if_unusual(resident.household_id, merchant, 6, now)
    db.session.execute(update(AnomalyFlag).where(AnomalyFlag.id == flag_id).values(
        resolved_at=now, resolved_by=staff.user.id, resolution_note="已核实"))

    assert service.flag_if_unusual(resident.household_id, merchant, 5, now) == flag_id
    flag = db.session.scalar(select(AnomalyFlag).execution_options(populate_existing=True))
    assert (flag.redemptions, flag.resolved_by, flag.resolution_note) == (6, staff.user.id, "已核实")

    service.flag_if_unusual(resident.household_id, merchant, 7, now)
    flag = db.session.scalar(select(AnomalyFlag).execution_options(populate_existing=True))
    assert (flag.redemptions, flag.resolved_at, flag.resolved_by) == (7, None, None)
