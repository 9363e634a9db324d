"""Campaign parts on device records: a batch of several households and campaigns, approved on arrival."""
from sqlalchemy import select

from app.activities.models import Action
from app.extensions import db
from app.ledger import service as ledger
from tests.campaigns.conftest import budget_left, wallet
from tests.integrations.conftest import card_of, device, make_integration, push, record  # noqa: F401  fixtures


def test_a_device_batch_pays_each_matching_campaign_within_its_budget(client, device, make_campaign,  # noqa: F811
                                                                      make_resident, make_community, make_staff):
    other_community = make_community()
    other_staff = make_staff(community_ids=[other_community.id])
    paper = make_campaign(budget_points=120)                                  # part 50 per kg of paper
    cardboard = make_campaign(action_types=["recycling:cardboard"], multiplier="1", bonus_points=9)
    elsewhere = make_campaign(by=other_staff, community_ids=[other_community.id], multiplier="2")
    here, there = make_resident(), make_resident(community_id=other_community.id)
    records = [record("r-1", card_of(here), quantity="1"), record("r-2", card_of(there), quantity="1"),
               record("r-3", card_of(here), variant="cardboard", quantity="1"),
               record("r-4", card_of(here), quantity="1"), record("r-5", card_of(here), quantity="1")]

    reply = push(client, device, {"records": records})

    assert reply.status_code == 200, reply.get_json()
    assert [r["status"] for r in reply.get_json()["results"]] == ["created"] * 5
    actions = {a.external_id: a for a in db.session.scalars(select(Action))}
    assert [actions[f"r-{i}"].campaign_points for i in (1, 4, 5)] == [50, 50, 20]  # the budget runs out
    assert actions["r-3"].campaign_points == 9 and actions["r-2"].campaign_points == 100
    assert budget_left(paper.id) == 0 and budget_left(cardboard.id) == 10_000 - 9
    assert budget_left(elsewhere.id) == 10_000 - 100
    assert wallet(here.household_id) == 400 + 120 + 9 and wallet(there.household_id) == 200
    assert ledger.verify() == []
