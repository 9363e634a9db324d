"""Merchants, merchant staff, settlement statements and anomaly flags, through the HTTP API."""
import csv
import io
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from app.accounts.models import User
from app.extensions import db
from app.ledger import service as ledger
from app.merchants.models import AnomalyFlag, Merchant
from app.rewards.models import Redemption
from tests.fixtures import PASSWORD, next_phone

API = "/api/v1"


def _redeem(client, clerk, code):
    return client.post(f"{API}/merchant/redemptions", json={"code": code}, headers=clerk.headers)


def _void(client, clerk, redemption_id):
    return client.post(f"{API}/merchant/redemptions/{redemption_id}/void", json={"reason": "退"}, headers=clerk.headers)


# ---------------------------------------------------------------- merchants


def test_a_district_admin_adds_a_merchant_with_its_points_account(client, admin, community):
    reply = client.post(f"{API}/merchants", json={"name": "绿色小店", "community_id": community.id},
                        headers=admin.headers)

    assert reply.status_code == 201
    data = reply.get_json()
    assert data["name"] == "绿色小店" and data["community_id"] == community.id and data["active"] is True
    assert data["daily_redemption_limit"] is None
    assert ledger.account_of("merchant", data["id"]).balance == 0


def test_community_staff_add_merchants_only_to_their_communities(client, staff, community, make_community):
    other = make_community()

    mine = client.post(f"{API}/merchants", json={"name": "小店", "community_id": community.id,
                                                 "daily_redemption_limit": 50}, headers=staff.headers)
    theirs = client.post(f"{API}/merchants", json={"name": "小店", "community_id": other.id}, headers=staff.headers)

    assert mine.status_code == 201 and mine.get_json()["daily_redemption_limit"] == 50
    assert theirs.status_code == 404 and theirs.get_json()["code"] == "not_found"


def test_merchant_input_is_validated_and_roles_checked(client, admin, community, resident, clerk):
    cases = [({"name": "", "community_id": community.id}, "name"),
             ({"name": "店", "community_id": "nope"}, "community_id"),
             ({"name": "店"}, "community_id"),
             ({"name": "店", "community_id": community.id, "daily_redemption_limit": 0}, "daily_redemption_limit"),
             ({"name": "店", "community_id": community.id, "active": False}, "active")]

    for body, field in cases:
        reply = client.post(f"{API}/merchants", json=body, headers=admin.headers)
        assert reply.status_code == 422 and field in reply.get_json()["errors"], body
    for person in (resident, clerk):
        assert client.post(f"{API}/merchants", json={"name": "店", "community_id": community.id},
                           headers=person.headers).status_code == 403


def test_merchants_are_listed_by_scope(client, admin, staff, clerk, merchant, make_merchant, make_community):
    elsewhere = make_merchant(community_id=make_community().id, name="外区")

    seen_by = {name: {m["id"] for m in client.get(f"{API}/merchants", headers=p.headers).get_json()["items"]}
               for name, p in (("admin", admin), ("staff", staff), ("clerk", clerk))}

    assert {merchant.id, elsewhere.id} <= seen_by["admin"]
    assert seen_by["staff"] == {merchant.id} and seen_by["clerk"] == {merchant.id}
    assert client.get(f"{API}/merchants/{elsewhere.id}", headers=staff.headers).status_code == 404
    assert client.get(f"{API}/merchants/{merchant.id}", headers=clerk.headers).get_json()["name"] == merchant.name


def test_a_merchant_is_renamed_limited_and_deactivated_by_its_community_staff(client, staff, merchant, clerk,
                                                                               make_staff, make_community):
    stranger = make_staff("community_staff", community_ids=[make_community().id])

    reply = client.patch(f"{API}/merchants/{merchant.id}",
                         json={"name": "新店名", "daily_redemption_limit": 30, "active": False}, headers=staff.headers)

    assert reply.status_code == 200
    assert db.session.get(Merchant, merchant.id).active is False
    assert reply.get_json()["daily_redemption_limit"] == 30 and reply.get_json()["name"] == "新店名"
    assert client.patch(f"{API}/merchants/{merchant.id}", json={"active": True},
                        headers=stranger.headers).status_code == 404
    assert client.patch(f"{API}/merchants/{merchant.id}", json={"active": True},
                        headers=clerk.headers).status_code == 403
    assert client.patch(f"{API}/merchants/{merchant.id}", json={"daily_redemption_limit": None},
                        headers=staff.headers).get_json()["daily_redemption_limit"] is None


def test_merchant_staff_accounts_are_made_for_a_merchant(client, staff, merchant, make_staff, make_community):
    phone = next_phone()
    stranger = make_staff("community_staff", community_ids=[make_community().id])
    body = {"phone": phone, "password": PASSWORD, "display_name": "店员"}

    refused = client.post(f"{API}/merchants/{merchant.id}/staff", json=body, headers=stranger.headers)
    reply = client.post(f"{API}/merchants/{merchant.id}/staff", json=body, headers=staff.headers)

    assert refused.status_code == 404
    assert reply.status_code == 201
    assert reply.get_json()["merchant_id"] == merchant.id and reply.get_json()["roles"] == ["merchant_staff"]
    login = client.post(f"{API}/auth/login", json={"phone": phone, "password": PASSWORD})
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {login.get_json()['access_token']}"})
    assert me.get_json()["merchant_id"] == merchant.id
    taken = client.post(f"{API}/merchants/{merchant.id}/staff", json=body, headers=staff.headers)
    assert taken.status_code == 409 and taken.get_json()["code"] == "phone_taken"
    assert client.post(f"{API}/merchants/{merchant.id}/staff", json={**body, "role": "district_admin"},
                       headers=staff.headers).status_code == 422


def test_admin_staff_route_makes_merchant_staff_once_merchants_exist(client, admin, merchant):
    reply = client.post(f"{API}/admin/staff", json={"phone": next_phone(), "password": PASSWORD,
                                                    "display_name": "店员", "role": "merchant_staff",
                                                    "merchant_id": merchant.id}, headers=admin.headers)

    assert reply.status_code == 201
    assert db.session.get(User, reply.get_json()["id"]).merchant_id == merchant.id


# ---------------------------------------------------------------- settlement


def _redeemed(client, clerk, resident, reward, get_code, quantity=1):
    return _redeem(client, clerk, get_code(resident, reward, quantity=quantity)["code"]).get_json()


def _shift(redemption_id, created_at=None, voided_at=None):
    row = db.session.get(Redemption, redemption_id)
    if created_at is not None:
        row.created_at = created_at
    if voided_at is not None:
        row.voided_at = voided_at
    db.session.commit()


def test_settlement_sums_redemptions_and_voids_per_reward_and_day(client, clerk, resident, make_reward, fund,
                                                                  get_code):
    fund(resident.household_id, 5000)
    bag, card = make_reward(name="环保袋", points_cost=100), make_reward(name="公交卡", points_cost=300)
    a = _redeemed(client, clerk, resident, bag, get_code, quantity=2)
    b = _redeemed(client, clerk, resident, card, get_code)
    c = _redeemed(client, clerk, resident, bag, get_code)
    _void(client, clerk, c["id"])
    # 2026-03-01 00:30 Shanghai is still 2026-02-28 in UTC: it belongs to March.
    _shift(a["id"], created_at=datetime(2026, 2, 28, 16, 30, tzinfo=timezone.utc))
    _shift(b["id"], created_at=datetime(2026, 3, 15, 4, 0, tzinfo=timezone.utc))
    _shift(c["id"], created_at=datetime(2026, 3, 15, 5, 0, tzinfo=timezone.utc),
           voided_at=datetime(2026, 3, 15, 6, 0, tzinfo=timezone.utc))

    reply = client.get(f"{API}/merchant/settlement?month=2026-03", headers=clerk.headers)

    assert reply.status_code == 200
    data = reply.get_json()
    assert data["month"] == "2026-03"
    assert (data["redemptions"], data["redeemed_points"], data["voids"], data["voided_points"],
            data["net_points"]) == (3, 600, 1, 100, 500)
    assert [(r["name"], r["redemptions"], r["quantity"], r["redeemed_points"], r["voided_points"], r["net_points"])
            for r in sorted(data["by_reward"], key=lambda r: r["name"])] == [
        ("公交卡", 1, 1, 300, 0, 300), ("环保袋", 2, 3, 300, 100, 200)]
    assert [(d["day"], d["redeemed_points"], d["voided_points"], d["net_points"]) for d in data["by_day"]] == [
        ("2026-03-01", 200, 0, 200), ("2026-03-15", 400, 100, 300)]
    february = client.get(f"{API}/merchant/settlement?month=2026-02", headers=clerk.headers).get_json()
    assert february["redemptions"] == 0 and february["by_day"] == []


def test_a_void_counts_in_the_month_it_happened(client, clerk, resident, reward, fund, get_code):
    fund(resident.household_id, 500)
    r = _redeemed(client, clerk, resident, reward, get_code)
    _void(client, clerk, r["id"])
    _shift(r["id"], created_at=datetime(2026, 4, 30, 15, 0, tzinfo=timezone.utc),
           voided_at=datetime(2026, 4, 30, 16, 30, tzinfo=timezone.utc))

    april = client.get(f"{API}/merchant/settlement?month=2026-04", headers=clerk.headers).get_json()
    may = client.get(f"{API}/merchant/settlement?month=2026-05", headers=clerk.headers).get_json()

    assert (april["redeemed_points"], april["voided_points"], april["net_points"]) == (100, 0, 100)
    assert (may["redeemed_points"], may["voided_points"], may["net_points"]) == (0, 100, -100)


def test_settlement_downloads_as_csv_with_a_bom(client, clerk, resident, make_reward, fund, get_code):
    fund(resident.household_id, 500)
    reward = make_reward(name="=HYPERLINK(\"x\")", points_cost=100)
    r = _redeemed(client, clerk, resident, reward, get_code)
    _shift(r["id"], created_at=datetime(2026, 5, 2, 1, 0, tzinfo=timezone.utc))

    by_param = client.get(f"{API}/merchant/settlement?month=2026-05&format=csv", headers=clerk.headers)
    by_accept = client.get(f"{API}/merchant/settlement?month=2026-05",
                           headers={**clerk.headers, "Accept": "text/csv"})

    assert by_param.status_code == 200 and by_param.mimetype == "text/csv"
    assert "attachment" in by_param.headers["Content-Disposition"]
    assert by_param.data.startswith("\ufeff".encode()) and by_accept.data == by_param.data
    rows = list(csv.reader(io.StringIO(by_param.data.decode("utf-8-sig"))))
    assert rows[0] == ["day", "reward_id", "reward_name", "redemptions", "quantity", "redeemed_points", "voids",
                       "voided_points", "net_points"]
    assert rows[1] == ["2026-05-02", reward.id, "'=HYPERLINK(\"x\")", "1", "1", "100", "0", "0", "100"]
    assert rows[2] == ["total", "", "", "1", "1", "100", "0", "0", "100"]


def test_settlement_is_for_merchant_staff_and_checks_the_month(client, clerk, staff, make_staff, make_merchant,
                                                               resident, reward, fund, get_code):
    fund(resident.household_id, 500)
    _redeemed(client, clerk, resident, reward, get_code)
    rival = make_staff("merchant_staff", merchant_id=make_merchant(name="隔壁").id)

    for month in ("2026-13", "2026-1", "26-01", "x", "0000-01", "9999-12"):
        assert client.get(f"{API}/merchant/settlement?month={month}", headers=clerk.headers).status_code == 422
    assert client.get(f"{API}/merchant/settlement?format=pdf", headers=clerk.headers).status_code == 422
    assert client.get(f"{API}/merchant/settlement", headers=staff.headers).status_code == 403
    current = client.get(f"{API}/merchant/settlement", headers=clerk.headers).get_json()
    assert current["redemptions"] == 1
    assert client.get(f"{API}/merchant/settlement", headers=rival.headers).get_json()["redemptions"] == 0


# ---------------------------------------------------------------- anomaly flags


def test_a_household_redeeming_often_at_one_merchant_is_flagged_never_refused(
        client, clerk, resident, reward, fund, get_code, staff, admin, make_staff, make_community, merchant):
    fund(resident.household_id, 5000)
    stranger = make_staff("community_staff", community_ids=[make_community().id])

    replies = [_redeem(client, clerk, get_code(resident, reward)["code"]) for _ in range(5)]

    assert [r.status_code for r in replies] == [201] * 5
    flags = db.session.scalars(select(AnomalyFlag)).all()
    assert len(flags) == 1 and flags[0].redemptions == 5 and flags[0].household_id == resident.household_id
    listed = client.get(f"{API}/merchant-anomalies", headers=staff.headers).get_json()["items"]
    assert [(f["merchant_id"], f["redemptions"], f["kind"]) for f in listed] == [(merchant.id, 5, "household_burst")]
    assert listed[0]["merchant_name"] == merchant.name
    assert len(client.get(f"{API}/merchant-anomalies", headers=admin.headers).get_json()["items"]) == 1
    assert client.get(f"{API}/merchant-anomalies", headers=stranger.headers).get_json()["items"] == []
    assert client.get(f"{API}/merchant-anomalies", headers=clerk.headers).status_code == 403


def test_three_redemptions_a_day_raise_no_flag_and_the_threshold_is_configurable(
        app, client, clerk, resident, reward, fund, get_code, monkeypatch):
    fund(resident.household_id, 5000)
    for _ in range(3):
        _redeem(client, clerk, get_code(resident, reward)["code"])
    assert db.session.scalars(select(AnomalyFlag)).all() == []

    monkeypatch.setitem(app.config, "ANOMALY_REDEMPTIONS_PER_DAY", 1)
    _redeem(client, clerk, get_code(resident, reward)["code"])

    assert [f.redemptions for f in db.session.scalars(select(AnomalyFlag))] == [4]


def test_redemptions_on_another_shanghai_day_do_not_count(client, clerk, resident, reward, fund, get_code):
    fund(resident.household_id, 5000)
    for _ in range(3):
        r = _redeem(client, clerk, get_code(resident, reward)["code"]).get_json()
        _shift(r["id"], created_at=datetime.now(timezone.utc) - timedelta(days=2))

    for _ in range(3):
        _redeem(client, clerk, get_code(resident, reward)["code"])

    assert db.session.scalars(select(AnomalyFlag)).all() == []
