"""0010_campaign_holdings fills each household's holding of a campaign from the awards already written."""
import flask_migrate
import pytest
from sqlalchemy import inspect

from app.activities import review
from app.campaigns import service as campaigns
from app.extensions import db
from tests.campaigns.conftest import earn, make_campaign  # noqa: F401  fixtures

BEFORE = "0009_household_reductions"


@pytest.mark.committing
def test_upgrade_fills_holdings_from_the_awards_so_caps_hold_across_it(make_campaign, resident, make_resident,  # noqa: F811
                                                                        staff, earn):  # noqa: F811
    campaign = make_campaign(per_household_cap=20)
    neighbour = make_resident()
    earn(resident, "0.3")  # part 15
    _, code, _ = campaigns.create_checkin_code(campaign.id, staff.user, 50, 60)
    campaigns.check_in(resident.user, code)  # not capped, so not held
    reversed_one = earn(neighbour, "0.3")
    review.reverse_action(reversed_one.id, staff.user, "wrong bin")
    households = [resident.household_id, neighbour.household_id]
    db.session.commit()  # and no transaction left open: SQLite's DDL needs the database to itself

    try:
        flask_migrate.downgrade(revision=BEFORE)
        assert "campaign_holdings" not in inspect(db.engine).get_table_names()  # the upgrade must rebuild them
    finally:
        flask_migrate.upgrade()

    assert campaigns.held_points([campaign.id], households) == {(campaign.id, resident.household_id): 15}
    assert earn(resident, "0.3").campaign_points == 5  # cut to the cap the awards before the upgrade left
    assert earn(neighbour, "0.3").campaign_points == 15
