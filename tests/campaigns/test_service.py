"""Campaign rules called directly: parts, budgets, caps, order, windows, lifecycle, check-ins, reversal."""
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.activities import review
from app.campaigns import leaderboard
from app.campaigns import service as campaigns
from app.campaigns.models import Campaign, CampaignAward
from app.columns import utcnow
from app.errors import InvalidState, NotFound, ValidationFailed
from app.extensions import db
from app.ledger import service as ledger
from app.ledger.models import LedgerEntry
from tests.activities.conftest import SHANGHAI, today_local
from tests.campaigns.conftest import budget_left, issuance_total, parts_paid, wallet


def receipt(action) -> dict:
    return json.loads(action.receipt)


# ---------------------------------------------------------------- the part of an action


@pytest.mark.parametrize("multiplier, bonus, quantity, base, part", [
    ("1.25", 3, "0.37", 37, 12),    # floor(37 × 0.25 = 9.25) + 3
    ("1", 5, "1", 100, 5),          # bonus only
    ("2", 0, "0.333", 33, 33),      # double
    ("1.333", 0, "0.1", 10, 3),     # floor(3.33)
    ("1.5", 2, "0.001", 0, 2),      # no base points: the bonus alone
])
def test_part_is_the_floor_of_base_times_multiplier_minus_one_plus_bonus(make_campaign, resident, earn,
                                                                           multiplier, bonus, quantity, base, part):
    campaign = make_campaign(multiplier=multiplier, bonus_points=bonus, budget_points=1000)

    action = earn(resident, quantity)

    assert (action.base_points, action.campaign_points, action.points) == (base, part, base + part)
    assert wallet(resident.household_id) == base + part
    assert budget_left(campaign.id) == 1000 - part
    assert receipt(action)["campaigns"] == [{
        "campaign_id": campaign.id, "name": campaign.name, "multiplier": str(Decimal(multiplier).normalize()),
        "bonus_points": bonus, "uncut_points": part, "points": part, "cut": None}]
    assert receipt(action)["campaign_points"] == part and receipt(action)["points"] == base + part
    assert ledger.verify() == []


def test_an_action_of_another_type_variant_or_community_gets_no_part(make_campaign, resident, make_resident,
                                                                     make_community, earn):
    make_campaign(action_types=["recycling:paper"])
    elsewhere = make_resident(community_id=make_community().id)

    glass = earn(resident, variant="glass")
    outside = earn(elsewhere)

    assert glass.campaign_points == 0 and receipt(glass)["campaigns"] == []
    assert outside.campaign_points == 0


def test_a_type_without_variant_matches_every_variant(make_campaign, resident, earn):
    make_campaign(action_types=["recycling"], multiplier="2")

    glass = earn(resident, "1", variant="glass")

    assert glass.campaign_points == glass.base_points == 31


def test_budget_exhausted_mid_action_pays_what_is_left_then_nothing(make_campaign, resident, earn):
    campaign = make_campaign(budget_points=20)  # each action: base 30, part 15

    first, second, third = earn(resident, "0.3"), earn(resident, "0.3"), earn(resident, "0.3")

    assert [a.campaign_points for a in (first, second, third)] == [15, 5, 0]
    assert [a.base_points for a in (first, second, third)] == [30, 30, 30]
    assert [receipt(a)["campaigns"][0]["cut"] for a in (first, second, third)] == [None, "budget", "budget"]
    assert receipt(second)["campaigns"][0]["uncut_points"] == 15
    assert budget_left(campaign.id) == 0
    assert wallet(resident.household_id) == 90 + 20
    assert ledger.verify() == []


def test_household_cap_cuts_the_part_for_that_household_only(make_campaign, resident, make_resident, earn):
    campaign = make_campaign(per_household_cap=20)
    neighbour = make_resident()

    parts = [earn(resident, "0.3").campaign_points for _ in range(3)]
    theirs = earn(neighbour, "0.3")

    assert parts == [15, 5, 0]
    assert theirs.campaign_points == 15
    assert budget_left(campaign.id) == 10_000 - 35


def test_overlapping_campaigns_apply_in_starts_at_then_id_order_each_to_the_base(make_campaign, resident, earn):
    now = utcnow()
    later = make_campaign(name="B later start", multiplier="1", bonus_points=7, starts_at=now - timedelta(days=1))
    earlier = make_campaign(name="A earlier start", multiplier="1.5", starts_at=now - timedelta(days=3))
    same_start = [make_campaign(name=f"tie {i}", multiplier="1", bonus_points=1, starts_at=now - timedelta(days=2))
                  for i in range(2)]

    action = earn(resident, "0.5")  # base 50

    names = [part["name"] for part in receipt(action)["campaigns"]]
    ties = sorted(same_start, key=lambda c: c.id)
    assert names == ["A earlier start", ties[0].name, ties[1].name, "B later start"]
    assert [p["points"] for p in receipt(action)["campaigns"]] == [25, 1, 1, 7]  # none compounds
    assert action.points == 50 + 34
    assert budget_left(earlier.id) == 10_000 - 25 and budget_left(later.id) == 10_000 - 7


def test_window_is_inclusive_at_starts_at_and_exclusive_at_ends_at_in_shanghai(make_campaign, resident, earn):
    day = today_local() - timedelta(days=1)
    midnight = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)  # 16:00 UTC the day before
    ends_at = (utcnow() + timedelta(minutes=3)).replace(microsecond=0)
    make_campaign(starts_at=midnight, ends_at=ends_at, bonus_points=1, multiplier="1")

    at_start = earn(resident, "0.1", occurred_at=midnight)
    before_start = earn(resident, "0.1", occurred_at=midnight - timedelta(seconds=1))
    at_start_utc = earn(resident, "0.1", occurred_at=midnight.astimezone(timezone.utc))
    before_end = earn(resident, "0.1", occurred_at=ends_at - timedelta(seconds=1))
    at_end = earn(resident, "0.1", occurred_at=ends_at)

    assert [a.campaign_points for a in (at_start, before_start, at_start_utc, before_end, at_end)] == [1, 0, 1, 1, 0]


def test_an_action_approved_after_the_end_time_gets_no_part(make_campaign, resident, earn, monkeypatch):
    campaign = make_campaign(ends_at=utcnow() + timedelta(minutes=2))
    monkeypatch.setattr(campaigns, "utcnow", lambda: utcnow() + timedelta(minutes=3))

    action = earn(resident)  # occurred an hour ago, inside the window

    assert action.campaign_points == 0
    assert budget_left(campaign.id) == 10_000


def test_a_campaign_ended_before_the_approval_pays_nothing(make_campaign, resident, staff, earn):
    campaign = make_campaign()
    campaigns.end_campaign(campaign.id, staff.user)
    db.session.commit()

    assert earn(resident).campaign_points == 0


# ---------------------------------------------------------------- lifecycle and money


def test_activation_moves_the_budget_from_issuance_and_end_returns_the_rest(make_campaign, resident, staff, earn):
    before = issuance_total()
    campaign = make_campaign(activate=False, budget_points=500)
    assert budget_left(campaign.id) == 0 and issuance_total() == before

    campaigns.activate_campaign(campaign.id, staff.user)
    db.session.commit()
    assert budget_left(campaign.id) == 500 and issuance_total() == before - 500

    earn(resident, "0.3")  # base 30 from issuance, part 15 from the budget
    campaigns.end_campaign(campaign.id, staff.user)
    db.session.commit()

    assert campaign.status == "ended" and campaign.ended_at is not None
    assert budget_left(campaign.id) == 0
    assert issuance_total() == before - 30 - 15
    kinds = {e.kind for e in db.session.scalars(select(LedgerEntry).where(LedgerEntry.ref_id == campaign.id))}
    assert kinds == {"campaign_funding", "campaign_return"}
    assert ledger.verify() == []


@pytest.mark.parametrize("step, status", [
    ("activate", "active"), ("activate", "ended"), ("end", "draft"), ("end", "ended"), ("update", "active"),
])
def test_a_wrong_transition_is_invalid_state(make_campaign, staff, step, status):
    campaign = make_campaign(activate=status != "draft")
    if status == "ended":
        campaigns.end_campaign(campaign.id, staff.user)
        db.session.commit()
    calls = {"activate": lambda: campaigns.activate_campaign(campaign.id, staff.user),
             "end": lambda: campaigns.end_campaign(campaign.id, staff.user),
             "update": lambda: campaigns.update_campaign(campaign.id, staff.user, {"name": "x"})}

    with pytest.raises(InvalidState):
        calls[step]()


def test_a_draft_can_be_edited_and_its_window_is_checked(make_campaign, staff):
    campaign = make_campaign(activate=False)

    campaigns.update_campaign(campaign.id, staff.user, {"name": "新名字", "action_types": ["recycling", "walking"],
                                                        "multiplier": Decimal("2")})
    with pytest.raises(ValidationFailed) as refused:
        campaigns.update_campaign(campaign.id, staff.user, {"ends_at": campaign.starts_at})

    assert campaign.name == "新名字" and campaign.multiplier == 2
    assert [t.label for t in campaign.action_types] == ["recycling", "walking"]
    assert "ends_at" in refused.value.extra["errors"]


def test_a_campaign_past_its_end_is_ended_when_touched_and_by_close_ended(app, make_campaign, staff, monkeypatch):
    touched = make_campaign(ends_at=utcnow() + timedelta(minutes=5), budget_points=300)
    swept = make_campaign(ends_at=utcnow() + timedelta(minutes=5), budget_points=200)
    monkeypatch.setattr(campaigns, "utcnow", lambda: utcnow() + timedelta(minutes=6))

    row, code, refusal = campaigns.create_checkin_code(touched.id, staff.user, 10, 60)
    db.session.commit()
    first = app.test_cli_runner().invoke(args=["campaigns", "close-ended"])
    second = app.test_cli_runner().invoke(args=["campaigns", "close-ended"])

    assert row is None and refusal.code == "invalid_state"
    assert db.session.get(Campaign, touched.id).status == "ended"
    assert "closed 1 campaign" in first.output and "closed 0 campaign" in second.output
    assert db.session.get(Campaign, swept.id).status == "ended"
    assert budget_left(touched.id) == budget_left(swept.id) == 0
    assert ledger.verify() == []


# ---------------------------------------------------------------- scope


def test_staff_can_only_create_in_their_own_communities(make_campaign, make_community, make_staff, factor_set):
    other = make_community()
    outsider = make_staff(community_ids=[other.id])

    with pytest.raises(ValidationFailed) as refused:
        make_campaign(by=outsider)

    assert list(refused.value.extra["errors"]) == ["community_ids.0"]


def test_staff_must_hold_every_community_of_a_campaign(make_campaign, make_community, make_staff, community):
    second = make_community()
    both = make_staff(community_ids=[community.id, second.id])
    campaign = make_campaign(by=both, community_ids=[community.id, second.id])
    only_one = make_staff(community_ids=[community.id])

    with pytest.raises(NotFound):
        campaigns.end_campaign(campaign.id, only_one.user)
    assert campaigns.campaign_for(both.user, campaign.id) is campaign


def test_unknown_action_types_are_refused_naming_the_index(make_campaign):
    with pytest.raises(ValidationFailed) as refused:
        make_campaign(action_types=["recycling:paper", "recycling:gold", "teleporting"])

    assert sorted(refused.value.extra["errors"]) == ["action_types.1", "action_types.2"]


# ---------------------------------------------------------------- reversal


def test_reversal_returns_the_part_to_the_budget(make_campaign, resident, staff, earn):
    campaign = make_campaign(per_household_cap=15)
    action = earn(resident, "0.3")

    review.reverse_action(action.id, staff.user, "wrong bin")
    db.session.commit()
    again = earn(resident, "0.3")  # the cap is free again

    assert budget_left(campaign.id) == 10_000 - 15
    assert again.campaign_points == 15
    assert wallet(resident.household_id) == 45
    assert parts_paid(campaign.id) == 15
    assert ledger.verify() == []


def test_reversal_of_a_part_of_an_ended_campaign_goes_on_to_issuance(make_campaign, resident, staff, earn):
    before = issuance_total()
    campaign = make_campaign(budget_points=100)
    action = earn(resident, "0.3")
    campaigns.end_campaign(campaign.id, staff.user)
    db.session.commit()

    review.reverse_action(action.id, staff.user, "duplicate")
    db.session.commit()

    assert budget_left(campaign.id) == 0
    assert wallet(resident.household_id) == 0
    assert issuance_total() == before
    assert ledger.verify() == []


def test_reversal_of_spent_points_gives_the_budget_what_the_wallet_holds(make_campaign, resident, staff, earn):
    campaign = make_campaign()
    action = earn(resident, "0.3")  # 30 + 15
    ledger.transfer(ledger.account_of("household", resident.household_id), ledger.account_of("merchant", "shop"),
                    40, kind="redemption", ref_type="test", ref_id="r")

    review.reverse_action(action.id, staff.user, "fraud")
    db.session.commit()

    account = ledger.account_of("household", resident.household_id)
    assert (account.balance, account.clawback) == (0, 40)
    assert budget_left(campaign.id) == 10_000 - 15 + 5
    assert parts_paid(campaign.id) == 0  # the household's campaign points are gone whole
    assert ledger.verify() == []


# ---------------------------------------------------------------- check-ins


def test_check_in_pays_once_per_household_and_code(make_campaign, resident, make_resident, staff):
    campaign = make_campaign(budget_points=100)
    row, code, _ = campaigns.create_checkin_code(campaign.id, staff.user, 30, 60)
    member = make_resident(invite_code=resident.user.household.invite_code)

    checkin, _ = campaigns.check_in(resident.user, code.lower())
    with pytest.raises(campaigns.AlreadyCheckedIn):
        campaigns.check_in(member.user, "-".join(code[i:i + 4] for i in range(0, 16, 4)))

    assert checkin.points == 30 and wallet(resident.household_id) == 30
    assert budget_left(campaign.id) == 70


def test_check_in_the_budget_cannot_pay_whole_is_budget_exhausted(make_campaign, resident, make_resident, staff):
    campaign = make_campaign(budget_points=50)
    _, code, _ = campaigns.create_checkin_code(campaign.id, staff.user, 30, 60)
    campaigns.check_in(make_resident().user, code)

    with pytest.raises(campaigns.BudgetExhausted):
        campaigns.check_in(resident.user, code)

    assert budget_left(campaign.id) == 20 and wallet(resident.household_id) == 0


def test_check_in_refusals(make_campaign, resident, make_resident, make_community, staff, monkeypatch):
    campaign = make_campaign()
    _, code, _ = campaigns.create_checkin_code(campaign.id, staff.user, 10, 1)
    outsider = make_resident(community_id=make_community().id)

    with pytest.raises(campaigns.CodeNotFound):
        campaigns.check_in(outsider.user, code)
    with pytest.raises(campaigns.CodeNotFound):
        campaigns.check_in(resident.user, "0" * 16)
    monkeypatch.setattr(campaigns, "utcnow", lambda: utcnow() + timedelta(minutes=2))
    with pytest.raises(campaigns.CodeExpired):
        campaigns.check_in(resident.user, code)


def test_check_in_points_do_not_count_towards_the_household_cap(make_campaign, resident, staff, earn):
    campaign = make_campaign(per_household_cap=15)
    _, code, _ = campaigns.create_checkin_code(campaign.id, staff.user, 50, 60)
    campaigns.check_in(resident.user, code)

    assert earn(resident, "0.3").campaign_points == 15


# ---------------------------------------------------------------- stats and leaderboard


def test_stats_count_participants_actions_grams_and_points(make_campaign, resident, make_resident, staff, earn):
    campaign = make_campaign(budget_points=1000)
    other = make_resident()
    kept, reversed_one = earn(resident, "0.3"), earn(resident, "0.2")
    earn(other, "0.1")
    _, code, _ = campaigns.create_checkin_code(campaign.id, staff.user, 20, 60)
    campaigns.check_in(make_resident().user, code)
    review.reverse_action(reversed_one.id, staff.user, "dup")
    db.session.commit()

    stats = campaigns.stats(campaign)

    assert stats == {"participants": 3, "actions": 2, "reduction_g": kept.reduction_g + 100,
                     "points_awarded": 15 + 5 + 20, "budget_remaining": 1000 - 40, "checkins": 1}


def test_leaderboard_ranks_by_points_then_household_id_with_masked_names(make_campaign, make_resident, staff, earn):
    campaign = make_campaign()
    people = [make_resident() for _ in range(4)]
    for person, quantity in zip(people, ("0.2", "0.4", "0.2", "0")):
        if quantity != "0":
            earn(person, quantity)

    board = leaderboard.ranking(campaign.id, 10, people[2].household_id, source="sql")

    tied = sorted([people[0].household_id, people[2].household_id])
    assert [(e.household_id, e.points) for e in board.entries] == [
        (people[1].household_id, 20), (tied[0], 10), (tied[1], 10)]
    assert [e.rank for e in board.entries] == [1, 2, 3]
    assert all(e.name_masked == "测**" for e in board.entries)
    assert board.my_rank == 2 + tied.index(people[2].household_id) and board.my_points == 10
    nobody = leaderboard.ranking(campaign.id, 10, people[3].household_id, source="sql")
    assert (nobody.my_rank, nobody.my_points) == (None, 0)


needs_redis = pytest.mark.skipif("not __import__('tests.conftest').conftest.REDIS_URL",
                                 reason="needs TEST_REDIS_URL (the PostgreSQL + Redis run)")


def _answer(board):
    return [(e.rank, e.household_id, e.points, e.name_masked) for e in board.entries], board.my_rank, board.my_points


@needs_redis
def test_redis_leaderboard_equals_sql_also_after_a_flush_and_a_reversal(app, make_campaign, make_resident, staff,
                                                                       earn):
    campaign = make_campaign()
    people = [make_resident() for _ in range(6)]
    actions = [earn(person, q) for person, q in zip(people, ("0.2", "0.4", "0.2", "0.6", "0.1", "0.4"))]
    _, code, _ = campaigns.create_checkin_code(campaign.id, staff.user, 5, 60)
    campaigns.check_in(people[4].user, code)
    db.session.commit()
    me = people[2].household_id
    redis = leaderboard.client()

    assert _answer(leaderboard.ranking(campaign.id, 4, me, source="redis")) == \
        _answer(leaderboard.ranking(campaign.id, 4, me, source="sql"))
    redis.delete(*leaderboard.keys(campaign.id))  # Redis lost the campaign's keys (FLUSHDB, restart)
    assert redis.exists(leaderboard.keys(campaign.id)[0]) == 0
    assert _answer(leaderboard.ranking(campaign.id, 10, me, source="redis")) == \
        _answer(leaderboard.ranking(campaign.id, 10, me, source="sql"))
    review.reverse_action(actions[3].id, staff.user, "wrong")  # the leader drops out
    db.session.commit()
    leaderboard.sync_job(campaign.id)  # what the after-commit job does
    redis_answer = _answer(leaderboard.ranking(campaign.id, 10, me, source="redis"))
    assert redis_answer == _answer(leaderboard.ranking(campaign.id, 10, me, source="sql"))
    assert people[3].household_id not in [row[1] for row in redis_answer[0]]
    assert int(redis.get(leaderboard.keys(campaign.id)[1])) == db.session.scalar(
        select(CampaignAward.seq).where(CampaignAward.campaign_id == campaign.id)
        .order_by(CampaignAward.seq.desc()).limit(1))


@needs_redis
def test_a_stale_or_ahead_redis_set_is_caught_up_or_rebuilt(make_campaign, make_resident, earn):
    campaign = make_campaign()
    first, second = make_resident(), make_resident()
    earn(first, "0.2")
    redis = leaderboard.client()
    leaderboard.sync(redis, campaign.id)
    earn(second, "0.4")  # committed, no job run: Redis is one award behind

    behind = leaderboard.ranking(campaign.id, 10, source="redis")
    redis.set(leaderboard.keys(campaign.id)[1], 999)  # ahead of the database: rebuilt
    ahead = leaderboard.ranking(campaign.id, 10, source="redis")

    expected = [(second.household_id, 20), (first.household_id, 10)]
    assert [(e.household_id, e.points) for e in behind.entries] == expected
    assert [(e.household_id, e.points) for e in ahead.entries] == expected


def test_a_failing_redis_is_answered_from_sql(make_campaign, resident, earn, monkeypatch):
    from redis.exceptions import ConnectionError as RedisDown

    class Down:
        def get(self, *args, **kwargs):
            raise RedisDown("down")

        register_script = pipeline = get

    campaign = make_campaign()
    earn(resident, "0.2")
    monkeypatch.setattr(leaderboard, "client", lambda: Down())

    board = leaderboard.ranking(campaign.id, 5, resident.household_id)

    assert board.source == "sql"
    assert [(e.household_id, e.points) for e in board.entries] == [(resident.household_id, 10)]
    assert (board.my_rank, board.my_points) == (1, 10)
