"""Campaign budgets and check-ins under real concurrency: threads, connections and commits."""
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.activities import service as activities
from app.campaigns import leaderboard
from app.campaigns import service as campaigns
from app.campaigns.models import CampaignAward, Checkin
from app.columns import utcnow
from app.extensions import db
from app.ledger import service as ledger
from tests.activities.conftest import ago
from tests.campaigns.conftest import API, budget_left, wallet
from tests.conftest import REDIS_URL
from tests.fixtures import race

pytestmark = pytest.mark.committing
FIGURES = {}  # printed with -s: the race figures of the last run


def _campaign(staff, community, **fields):
    data = {"name": "并发预算", "community_ids": [community.id], "action_types": ["recycling:paper"],
            "starts_at": utcnow() - timedelta(days=1), "ends_at": utcnow() + timedelta(days=1),
            "multiplier": Decimal("1.5"), "bonus_points": 0, "budget_points": 500, **fields}
    campaign = campaigns.create_campaign(staff.user, data)
    campaigns.activate_campaign(campaign.id, staff.user)
    db.session.commit()
    return campaign.id


@pytest.mark.postgres_only
def test_fifty_households_earning_at_once_spend_the_budget_to_exactly_zero(app, is_postgres, factor_set, staff,
                                                                           community, make_resident):
    if not is_postgres:
        pytest.skip("postgres_only: row locks across real connections (SQLite serialises every writer)")
    campaign_id = _campaign(staff, community, budget_points=500)  # 1 kg paper: base 100, part 50 → covers 10
    people = [make_resident() for _ in range(50)]
    action_ids = []
    for person in people:
        action = activities.record_action(
            household_id=person.household_id, resident_id=person.id, action_type="recycling", variant="paper",
            quantity=Decimal("1"), unit="kg", occurred_at=ago(hours=1), source="self_reported", actor_id=person.id)
        action_ids.append(action.id)
    db.session.commit()

    started = time.perf_counter()
    replies = race(app, [(f"{API}/review/actions/{a}/approve", None, staff.headers) for a in action_ids])
    seconds = time.perf_counter() - started

    db.session.expire_all()
    assert Counter(status for status, _ in replies) == {200: 50}, replies
    parts = Counter(body["campaign_points"] for _, body in replies)
    assert parts == {50: 10, 0: 40}
    assert all(body["base_points"] == 100 for _, body in replies)
    assert budget_left(campaign_id) == 0
    paid = db.session.scalar(select(func.sum(CampaignAward.points)).where(CampaignAward.campaign_id == campaign_id))
    assert paid == 500
    assert sum(wallet(p.household_id) for p in people) == 50 * 100 + 500
    assert ledger.verify() == []
    if REDIS_URL:
        redis_board = leaderboard.ranking(campaign_id, 100, source="redis")
        sql_board = leaderboard.ranking(campaign_id, 100, source="sql")
        assert [(e.household_id, e.points) for e in redis_board.entries] == \
            [(e.household_id, e.points) for e in sql_board.entries]
        assert len(sql_board.entries) == 10
    FIGURES["fifty_households"] = dict(approvals=dict(Counter(s for s, _ in replies)), parts=dict(parts),
                                       budget_left=budget_left(campaign_id), paid=paid, seconds=round(seconds, 2))
    print("\nrace figures:", FIGURES["fifty_households"])


def test_ten_check_ins_of_one_household_pay_once(app, factor_set, staff, community, resident):
    campaign_id = _campaign(staff, community, budget_points=1000)
    _, code, _ = campaigns.create_checkin_code(campaign_id, staff.user, 30, 30)
    db.session.commit()

    started = time.perf_counter()
    replies = race(app, [(f"{API}/checkins", {"code": code}, resident.headers)] * 10)
    seconds = time.perf_counter() - started

    statuses = Counter((status, body.get("code") if status != 201 else None) for status, body in replies)
    assert statuses == {(201, None): 1, (409, "already_checked_in"): 9}, replies
    assert wallet(resident.household_id) == 30 and budget_left(campaign_id) == 970
    assert db.session.scalar(select(func.count()).select_from(Checkin)) == 1
    assert ledger.verify() == []
    FIGURES["check_in_once"] = dict(statuses={f"{s} {c or ''}".strip(): n for (s, c), n in statuses.items()},
                                    seconds=round(seconds, 2))
    print("\nrace figures:", FIGURES["check_in_once"])


def test_twenty_households_checking_in_on_a_budget_for_five(app, factor_set, staff, community, make_resident):
    campaign_id = _campaign(staff, community, budget_points=100)
    _, code, _ = campaigns.create_checkin_code(campaign_id, staff.user, 20, 30)
    db.session.commit()
    people = [make_resident() for _ in range(20)]

    started = time.perf_counter()
    replies = race(app, [(f"{API}/checkins", {"code": code}, p.headers) for p in people])
    seconds = time.perf_counter() - started

    statuses = Counter((status, body.get("code") if status != 201 else None) for status, body in replies)
    assert statuses == {(201, None): 5, (409, "budget_exhausted"): 15}, replies
    assert budget_left(campaign_id) == 0
    assert sorted(wallet(p.household_id) for p in people) == [0] * 15 + [20] * 5
    assert ledger.verify() == []
    FIGURES["check_in_budget"] = dict(statuses={f"{s} {c or ''}".strip(): n for (s, c), n in statuses.items()},
                                      seconds=round(seconds, 2))
    print("\nrace figures:", FIGURES["check_in_budget"])


def test_ending_a_campaign_while_approvals_run_keeps_every_point(app, factor_set, staff, community, make_resident):
    campaign_id = _campaign(staff, community, budget_points=10_000)
    people = [make_resident() for _ in range(12)]
    action_ids = [activities.record_action(
        household_id=p.household_id, resident_id=p.id, action_type="recycling", variant="paper",
        quantity=Decimal("1"), unit="kg", occurred_at=ago(hours=1), source="self_reported", actor_id=p.id).id
        for p in people]
    db.session.commit()
    before = db.session.scalar(select(func.sum(CampaignAward.points)))

    requests = [(f"{API}/review/actions/{a}/approve", None, staff.headers) for a in action_ids]
    requests.insert(6, (f"{API}/campaigns/{campaign_id}/end", None, staff.headers))
    replies = race(app, requests)

    assert all(status == 200 for status, _ in replies), replies
    paid = db.session.scalar(select(func.coalesce(func.sum(CampaignAward.points), 0))
                             .where(CampaignAward.campaign_id == campaign_id))
    assert before is None and paid % 50 == 0
    assert budget_left(campaign_id) == 0  # whatever the approvals did not take went back at the end
    assert sum(wallet(p.household_id) for p in people) == 12 * 100 + paid
    assert ledger.verify() == []
