"""Rollups kept by approvals and reversals equal a full recount from the actions, for every grouping."""
from datetime import timedelta
from itertools import combinations

import flask_migrate
import pytest
from sqlalchemy import func, select

from app.activities import review, service as activities
from app.activities.models import Action
from app.district import rollups
from app.district.exports import GROUP_KEYS, Cells
from app.district.models import DailyRollup, HouseholdMonth
from app.extensions import db
from tests.district.conftest import recount, today

GROUPINGS = [list(c) for n in range(1, 5) for c in combinations(GROUP_KEYS, n)]


@pytest.fixture
def history(households, make_community, approve, community, make_staff):
    """Actions over ~70 days in two communities, verified and not, some reversed."""
    other = make_community()
    here, there = households(4), households(3, community_id=other.id)
    made = []
    for index, person in enumerate(here + there):
        for days_ago in (0, 3, 33, 40 + index, 65):
            made.append(approve(person, days_ago, quantity=f"{1 + index}.25"))
        made.append(approve(person, 10 + index, verified=False, quantity="2.5"))
        made.append(approve(person, 35, action_type="recycling", variant="aluminium", quantity="0.5"))
    staff = make_staff(community_ids=[community.id, other.id])
    for action in made[::7]:
        review.reverse_action(action.id, staff.user, "称重错误")
    db.session.commit()
    return made


def _cells(period_from, period_to, group_by):
    cells = Cells(period_from, period_to, group_by)
    return {tuple(labels): measures for _, labels, measures in cells.rows()}


@pytest.mark.parametrize("span", [(0, 80), (2, 40), (0, 0), (34, 34)])
def test_rollup_cells_equal_a_recount_from_the_actions_for_every_grouping(history, span):
    period_from, period_to = today() - timedelta(days=span[1]), today() - timedelta(days=span[0])

    for group_by in GROUPINGS:
        assert _cells(period_from, period_to, group_by) == recount(period_from, period_to, group_by), group_by


def test_a_rebuild_from_the_actions_gives_the_rollups_the_hooks_kept(history):
    kept = sorted(tuple(r) for r in db.session.execute(select(DailyRollup.__table__).where(DailyRollup.actions > 0)))
    months = sorted(tuple(r) for r in db.session.execute(
        select(HouseholdMonth.__table__).where(HouseholdMonth.actions > 0)))

    rollups.rebuild()

    assert sorted(tuple(r) for r in db.session.execute(select(DailyRollup.__table__))) == kept
    assert sorted(tuple(r) for r in db.session.execute(select(HouseholdMonth.__table__))) == months


def test_an_approval_rolled_back_in_a_savepoint_leaves_the_rollups_alone(resident, approve):
    approve(resident, 1)
    before = db.session.scalar(select(func.sum(DailyRollup.actions)))

    savepoint = db.session.begin_nested()
    approve(resident, 1, commit=False)
    savepoint.rollback()
    db.session.commit()

    assert db.session.scalar(select(func.sum(DailyRollup.actions))) == before == 1


def test_an_approval_and_its_reversal_in_one_transaction_cancel_out(resident, approve, staff):
    action = approve(resident, 1, commit=False)
    review.reverse_action(action.id, staff.user, "录错")
    db.session.commit()

    assert db.session.scalar(select(func.coalesce(func.sum(DailyRollup.actions), 0))) == 0
    assert db.session.scalar(select(func.coalesce(func.sum(HouseholdMonth.actions), 0))) == 0


def _approved_reductions(household_id):
    total, verified = db.session.execute(
        select(func.coalesce(func.sum(Action.reduction_g), 0),
               func.coalesce(func.sum(Action.reduction_g).filter(Action.verified.is_(True)), 0))
        .where(Action.household_id == household_id, Action.status == "approved")).one()
    return {"reduction_g_total": total, "verified_reduction_g_total": verified}


def test_each_wallets_reductions_are_its_approved_actions_verified_or_not_reversals_left_out(history):
    household_ids = {action.household_id for action in history}

    for household_id in household_ids:
        expected = _approved_reductions(household_id)
        assert rollups.household_reductions(household_id) == expected
        assert 0 < expected["verified_reduction_g_total"] < expected["reduction_g_total"]


@pytest.mark.committing
def test_the_upgrade_fills_the_household_months_reductions_from_the_approved_actions(history):
    household_ids = sorted({action.household_id for action in history})
    kept = {h: rollups.household_reductions(h) for h in household_ids}
    db.session.remove()
    try:
        flask_migrate.downgrade(revision="0008_account_totals")
    finally:
        flask_migrate.upgrade()

    assert {h: rollups.household_reductions(h) for h in household_ids} == kept
    assert kept == {h: _approved_reductions(h) for h in household_ids}
