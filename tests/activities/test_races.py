"""Credits of one household racing on real threads and connections: no lost cap update, exact balances."""
from collections import Counter
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.activities.models import Action, CapUsage
from app.extensions import db
from app.ledger import service as ledger
from tests.fixtures import race

API = "/api/v1"
pytestmark = pytest.mark.committing


def _walk(km: str) -> dict:
    from app.columns import utcnow

    return {"action_type": "walking", "quantity": km, "unit": "km", "occurred_at": utcnow().isoformat()}


def test_twelve_concurrent_walks_of_one_household_credit_exactly_the_daily_cap(app, factor_set, resident,
                                                                              make_resident):
    partner = make_resident(invite_code=_invite(resident))
    people = [resident, partner] * 6

    replies = race(app, [(f"{API}/actions", _walk("1.5"), person.headers) for person in people])

    assert Counter(status for status, _ in replies) == {201: 12}, replies
    credited = sorted(Decimal(body["credited_quantity"]) for _, body in replies)
    # 10 km a day: six walks whole, one cut to 1 km, five credited nothing; whichever order they ran in.
    assert credited == [Decimal("0")] * 5 + [Decimal("1")] + [Decimal("1.5")] * 6
    assert db.session.scalar(select(func.sum(CapUsage.used_milli))
                             .where(CapUsage.household_id == resident.household_id)) == 10_000
    points = db.session.scalar(select(func.sum(Action.points)).where(Action.household_id == resident.household_id))
    assert points == 6 * 7 + 4  # floor(1.5 × 4.87) each, floor(1 × 4.87) for the cut one
    db.session.expire_all()
    assert ledger.account_of("household", resident.household_id).balance == points
    assert ledger.verify() == []


def _invite(person) -> str:
    from app.accounts.models import Household

    return db.session.get(Household, person.household_id).invite_code
