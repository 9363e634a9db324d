"""Redemptions and voids racing on real threads and connections: exactly-once under concurrency."""
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.columns import utcnow
from app.extensions import db
from app.ledger import service as ledger
from app.ledger.expiry import expire_points
from app.ledger.models import LedgerEntry
from app.rewards.models import Redemption, Reward
from tests.rewards.builders import balance, merchant_balance
from tests.fixtures import race

API = "/api/v1"
pytestmark = pytest.mark.committing


def _count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_twenty_codes_against_a_balance_for_three_redeem_exactly_three(app, monkeypatch, resident, make_reward,
                                                                      clerk, merchant, fund, get_code):
    monkeypatch.setitem(app.config, "REDEMPTION_CODES_LIVE_MAX", 20)
    reward = make_reward(points_cost=100, stock=100)
    fund(resident.household_id, 350)
    codes = [get_code(resident, reward)["code"] for _ in range(20)]

    replies = race(app, [(f"{API}/merchant/redemptions", {"code": c}, clerk.headers) for c in codes])

    statuses = Counter((status, body.get("code") if status != 201 else None) for status, body in replies)
    assert statuses == {(201, None): 3, (409, "insufficient_points"): 17}
    assert balance(resident.household_id) == 50 and merchant_balance(merchant.id) == 300
    assert _count(Redemption) == 3
    assert db.session.scalar(select(Reward.stock).where(Reward.id == reward.id)) == 97
    assert ledger.verify() == []


def test_ten_scans_of_one_code_make_one_redemption(app, resident, reward, clerk, merchant, fund, get_code):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)["code"]

    replies = race(app, [(f"{API}/merchant/redemptions", {"code": code}, clerk.headers)] * 10)

    assert sorted(status for status, _ in replies) == [200] * 9 + [201]
    assert len({body["id"] for _, body in replies}) == 1
    assert _count(Redemption) == 1
    assert balance(resident.household_id) == 400 and merchant_balance(merchant.id) == 100
    assert ledger.verify() == []


def test_ten_households_racing_for_the_last_unit_get_one(app, make_resident, make_reward, clerk, fund, get_code):
    reward = make_reward(points_cost=100, stock=1)
    people = [make_resident() for _ in range(10)]
    for person in people:
        fund(person.household_id, 100)
    codes = [get_code(person, reward)["code"] for person in people]

    replies = race(app, [(f"{API}/merchant/redemptions", {"code": c}, clerk.headers) for c in codes])

    assert Counter((s, b.get("code") if s != 201 else None) for s, b in replies) == {
        (201, None): 1, (409, "out_of_stock"): 9}
    assert db.session.scalar(select(Reward.stock).where(Reward.id == reward.id)) == 0
    assert sorted(balance(p.household_id) for p in people) == [0] + [100] * 9
    assert ledger.verify() == []


def test_a_void_racing_a_second_void_voids_once(app, resident, reward, clerk, merchant, fund, get_code, client):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)["code"]
    redemption = client.post(f"{API}/merchant/redemptions", json={"code": code}, headers=clerk.headers).get_json()
    url = f"{API}/merchant/redemptions/{redemption['id']}/void"

    replies = race(app, [(url, {"reason": "重复扫码"}, clerk.headers)] * 2)

    assert sorted((s, b.get("code") if s != 200 else b["status"]) for s, b in replies) == [
        (200, "voided"), (409, "already_voided")]
    assert balance(resident.household_id) == 500 and merchant_balance(merchant.id) == 0
    assert db.session.scalar(select(Reward.stock).where(Reward.id == reward.id)) == 50
    assert ledger.verify() == []


def test_redemptions_voids_and_code_requests_interleaved_keep_the_ledger_sound(app, make_resident, make_reward,
                                                                              clerk, fund, get_code, client):
    reward = make_reward(points_cost=10, stock=1000)
    people = [make_resident() for _ in range(4)]
    for person in people:
        fund(person.household_id, 100)
    done = [client.post(f"{API}/merchant/redemptions", json={"code": get_code(p, reward)["code"]},
                        headers=clerk.headers).get_json()["id"] for p in people]
    codes = [get_code(p, reward)["code"] for p in people for _ in range(2)]

    requests = [(f"{API}/merchant/redemptions", {"code": c}, clerk.headers) for c in codes]
    requests += [(f"{API}/merchant/redemptions/{r}/void", {"reason": "退"}, clerk.headers) for r in done]
    requests += [(f"{API}/redemption-codes", {"reward_id": reward.id}, p.headers) for p in people]
    replies = race(app, requests)

    assert all(status in (200, 201) for status, _ in replies), replies
    assert sorted(balance(p.household_id) for p in people) == [80] * 4
    assert ledger.verify() == []


def test_expiry_racing_redemptions_of_the_same_household_keeps_every_lot_exact(app, monkeypatch, resident,
                                                                               make_reward, clerk, fund, get_code):
    monkeypatch.setitem(app.config, "REDEMPTION_CODES_LIVE_MAX", 20)
    reward = make_reward(points_cost=30, stock=100)
    for minutes in (1, 2, 3):
        fund(resident.household_id, 40, expires_at=utcnow() + timedelta(minutes=minutes))
    fund(resident.household_id, 100, expires_at=utcnow() + timedelta(days=300))
    codes = [get_code(resident, reward)["code"] for _ in range(6)]
    db.session.rollback()
    barrier, outcomes = threading.Barrier(len(codes) + 1), []

    def redeem(code):
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            reply = client.post(f"{API}/merchant/redemptions", json={"code": code}, headers=clerk.headers)
            outcomes.append((reply.status_code, reply.get_json().get("code")))
            db.session.remove()

    def expire():
        with app.app_context():
            barrier.wait()
            outcomes.append(("expired", expire_points(now=utcnow() + timedelta(minutes=10))))
            db.session.remove()

    threads = [threading.Thread(target=redeem, args=(c,)) for c in codes] + [threading.Thread(target=expire)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    redeemed = sum(1 for o in outcomes if o[0] == 201)
    assert all(o[0] in (201, "expired") or o == (409, "insufficient_points") for o in outcomes), outcomes
    assert len(outcomes) == 7
    expired_points = -sum(e.amount for e in db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.kind == "expiry", LedgerEntry.amount < 0)))
    assert balance(resident.household_id) == 220 - 30 * redeemed - expired_points
    assert ledger.verify() == []
