"""Rewards, redemption codes, redemptions and voids, through the HTTP API."""
import io
import re
from datetime import datetime, timedelta, timezone

import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from app.extensions import db
from app.ledger import service as ledger
from app.ledger.models import LedgerEntry, LotUse
from app.rewards.models import Redemption, RedemptionCode, Reward
from tests.rewards.builders import balance, merchant_balance

API = "/api/v1"


def _redeem(client, clerk, code, **headers):
    return client.post(f"{API}/merchant/redemptions", json={"code": code}, headers={**clerk.headers, **headers})


def _code_row(code_id) -> RedemptionCode:
    return db.session.scalar(select(RedemptionCode).where(RedemptionCode.id == code_id)
                             .execution_options(populate_existing=True))


def _stock(reward_id) -> int:
    return db.session.scalar(select(Reward.stock).where(Reward.id == reward_id))


# ---------------------------------------------------------------- rewards


def test_merchant_staff_publishes_a_reward(client, clerk, merchant):
    body = {"name": "环保袋", "points_cost": 80, "stock": 10, "per_household_limit": 2,
            "valid_from": "2026-01-01T00:00:00+08:00", "valid_until": "2099-01-01T00:00:00+08:00"}

    reply = client.post(f"{API}/merchants/{merchant.id}/rewards", json=body, headers=clerk.headers)

    assert reply.status_code == 201
    data = reply.get_json()
    assert data["name"] == "环保袋" and data["points_cost"] == 80 and data["stock"] == 10
    assert data["per_household_limit"] == 2 and data["district_wide"] is False and data["active"] is True
    assert data["merchant_id"] == merchant.id and data["community_id"] == merchant.community_id
    assert data["valid_from"].startswith("2025-12-31T16:00:00")
    assert db.session.get(Reward, data["id"]).points_cost == 80


def test_community_staff_publishes_a_reward_for_a_merchant_of_its_community(client, staff, merchant):
    reply = client.post(f"{API}/merchants/{merchant.id}/rewards",
                        json={"name": "布袋", "points_cost": 5, "stock": 0, "district_wide": True},
                        headers=staff.headers)

    assert reply.status_code == 201
    assert reply.get_json()["district_wide"] is True and reply.get_json()["per_household_limit"] is None


def test_staff_outside_the_merchant_get_404_and_other_roles_403(client, make_staff, make_community, make_merchant,
                                                                merchant, admin, resident):
    other = make_merchant(name="别家")
    other_clerk = make_staff("merchant_staff", merchant_id=other.id)
    far_staff = make_staff("community_staff", community_ids=[make_community().id])
    body = {"name": "环保袋", "points_cost": 80, "stock": 10}

    replies = [client.post(f"{API}/merchants/{merchant.id}/rewards", json=body, headers=p.headers)
               for p in (other_clerk, far_staff, admin, resident)]

    assert [r.status_code for r in replies] == [404, 404, 403, 403]
    assert [r.get_json()["code"] for r in replies] == ["not_found", "not_found", "forbidden", "forbidden"]


def test_reward_input_is_validated_field_by_field(client, clerk, merchant):
    url = f"{API}/merchants/{merchant.id}/rewards"
    cases = [
        ({"name": "a", "points_cost": 0, "stock": 1}, "points_cost"),
        ({"name": "a", "points_cost": "10", "stock": 1}, "points_cost"),
        ({"name": "a", "points_cost": 1.5, "stock": 1}, "points_cost"),
        ({"name": "a", "points_cost": 10, "stock": -1}, "stock"),
        ({"name": "", "points_cost": 10, "stock": 1}, "name"),
        ({"name": "   ", "points_cost": 10, "stock": 1}, "name"),
        ({"name": "x" * 81, "points_cost": 10, "stock": 1}, "name"),
        ({"name": "a", "points_cost": 10, "stock": 1, "per_household_limit": 0}, "per_household_limit"),
        ({"name": "a", "points_cost": 10, "stock": 1, "valid_from": "2026-01-01T00:00:00"}, "valid_from"),
        ({"name": "a", "points_cost": 10, "stock": 1, "valid_from": "2026-02-01T00:00:00+08:00",
          "valid_until": "2026-01-01T00:00:00+08:00"}, "valid_until"),
        ({"name": "a", "points_cost": 10, "stock": 1, "district_wide": "yes"}, "district_wide"),
        ({"name": "a", "points_cost": 10, "stock": 1, "active": False}, "active"),
    ]

    for body, field in cases:
        reply = client.post(url, json=body, headers=clerk.headers)
        assert reply.status_code == 422, body
        assert field in reply.get_json()["errors"], (body, reply.get_json())
    assert db.session.scalar(select(func.count()).select_from(Reward)) == 0


def test_patch_changes_a_reward_and_deactivation_hides_it(client, clerk, reward, resident):
    reply = client.patch(f"{API}/rewards/{reward.id}", json={"stock": 7, "points_cost": 120, "name": "新名字"},
                         headers=clerk.headers)
    assert reply.status_code == 200
    assert (reply.get_json()["stock"], reply.get_json()["points_cost"], reply.get_json()["name"]) == (7, 120, "新名字")

    off = client.patch(f"{API}/rewards/{reward.id}", json={"active": False}, headers=clerk.headers)

    assert off.status_code == 200 and off.get_json()["active"] is False
    listed = client.get(f"{API}/rewards", headers=resident.headers).get_json()["items"]
    assert reward.id not in [r["id"] for r in listed]
    assert _stock(reward.id) == 7


def test_patch_refuses_an_empty_or_inconsistent_change_and_strangers(client, clerk, reward, make_staff,
                                                                      make_community):
    stranger = make_staff("community_staff", community_ids=[make_community().id])

    empty = client.patch(f"{API}/rewards/{reward.id}", json={}, headers=clerk.headers)
    window = client.patch(f"{API}/rewards/{reward.id}", json={"valid_from": "2030-01-01T00:00:00+00:00",
                                                              "valid_until": "2029-01-01T00:00:00+00:00"},
                          headers=clerk.headers)
    foreign = client.patch(f"{API}/rewards/{reward.id}", json={"stock": 1}, headers=stranger.headers)
    unknown = client.patch(f"{API}/rewards/nope", json={"stock": 1}, headers=clerk.headers)

    assert empty.status_code == 422
    assert window.status_code == 422 and "valid_until" in window.get_json()["errors"]
    assert foreign.status_code == 404 and unknown.status_code == 404


def test_patch_checks_the_window_against_the_stored_bound(client, clerk, make_reward):
    reward = make_reward(valid_until=datetime(2030, 1, 1, tzinfo=timezone.utc))

    reply = client.patch(f"{API}/rewards/{reward.id}", json={"valid_from": "2031-01-01T00:00:00+00:00"},
                         headers=clerk.headers)

    assert reply.status_code == 422 and "valid_until" in reply.get_json()["errors"]


def test_residents_see_their_communitys_rewards_and_district_wide_ones(
        client, resident, merchant, make_merchant, make_community, make_reward):
    elsewhere = make_merchant(community_id=make_community().id, name="外区店")
    closed = make_merchant(name="关门店")
    closed.active = False
    db.session.commit()
    now = datetime.now(timezone.utc)
    mine = make_reward(name="本社区")
    wide = make_reward(of=elsewhere, name="全区", district_wide=True)
    make_reward(of=elsewhere, name="外社区")
    make_reward(name="未开始", valid_from=now + timedelta(days=1))
    make_reward(name="已结束", valid_until=now - timedelta(seconds=1))
    make_reward(of=closed, name="店已停")
    inactive = make_reward(name="下架")
    inactive.active = False
    db.session.commit()

    reply = client.get(f"{API}/rewards", headers=resident.headers)

    assert reply.status_code == 200
    assert {r["name"] for r in reply.get_json()["items"]} == {"本社区", "全区"}
    assert {r["id"] for r in reply.get_json()["items"]} == {mine.id, wide.id}


def test_reward_lists_page_newest_first(client, resident, make_reward):
    made = [make_reward(name=f"r{i}").id for i in range(3)]

    first = client.get(f"{API}/rewards?limit=2", headers=resident.headers).get_json()
    second = client.get(f"{API}/rewards?limit=2&cursor={first['next_cursor']}", headers=resident.headers).get_json()

    assert [r["id"] for r in first["items"] + second["items"]] == made[::-1]
    assert second["next_cursor"] is None
    assert client.get(f"{API}/rewards?limit=101", headers=resident.headers).status_code == 422


def test_merchant_staff_list_all_their_rewards_only(client, clerk, make_reward, make_merchant, resident):
    off = make_reward(name="下架")
    off.active = False
    db.session.commit()
    make_reward(of=make_merchant(name="别家"), name="别家的")

    reply = client.get(f"{API}/merchant/rewards", headers=clerk.headers)

    assert reply.status_code == 200
    assert [r["name"] for r in reply.get_json()["items"]] == ["下架"]
    assert client.get(f"{API}/merchant/rewards", headers=resident.headers).status_code == 403


# ---------------------------------------------------------------- codes


def test_a_code_is_twenty_digits_that_expire_and_reserve_nothing(client, resident, reward, fund):
    fund(resident.household_id, 500)
    before = datetime.now(timezone.utc)

    reply = client.post(f"{API}/redemption-codes", json={"reward_id": reward.id, "quantity": 2},
                        headers=resident.headers)

    assert reply.status_code == 201
    data = reply.get_json()
    assert re.fullmatch(r"[0-9]{20}", data["code"])
    assert data["points_cost"] == 200 and data["quantity"] == 2 and data["reward_id"] == reward.id
    expires = datetime.fromisoformat(data["expires_at"])
    assert before + timedelta(seconds=119) <= expires <= datetime.now(timezone.utc) + timedelta(seconds=121)
    assert data["qr_png_url"] == f"{API}/redemption-codes/{data['id']}/qr.png"
    assert data["qr_svg_url"] == f"{API}/redemption-codes/{data['id']}/qr.svg"
    row = _code_row(data["id"])
    assert row.state == "live" and data["code"] not in (row.code_hash, row.code_encrypted)
    assert balance(resident.household_id) == 500 and _stock(reward.id) == 50


def test_code_lifetime_is_configurable(app, client, resident, reward, fund, monkeypatch):
    fund(resident.household_id, 500)
    monkeypatch.setitem(app.config, "REDEMPTION_CODE_TTL_SECONDS", 600)

    data = client.post(f"{API}/redemption-codes", json={"reward_id": reward.id}, headers=resident.headers).get_json()

    assert datetime.fromisoformat(data["expires_at"]) > datetime.now(timezone.utc) + timedelta(seconds=590)


def test_two_codes_differ(resident, reward, fund, get_code):
    fund(resident.household_id, 500)

    assert get_code(resident, reward)["code"] != get_code(resident, reward)["code"]


def test_code_creation_refuses_what_would_certainly_fail(client, resident, make_reward, fund, clerk, get_code):
    fund(resident.household_id, 150)
    cheap = make_reward(points_cost=100, stock=1, per_household_limit=1)
    url = f"{API}/redemption-codes"

    too_dear = client.post(url, json={"reward_id": cheap.id, "quantity": 2}, headers=resident.headers)
    assert too_dear.status_code == 409 and too_dear.get_json()["code"] == "out_of_stock"
    rich = make_reward(points_cost=200, stock=5)
    poor = client.post(url, json={"reward_id": rich.id}, headers=resident.headers)
    assert poor.status_code == 409 and poor.get_json()["code"] == "insufficient_points"
    assert _redeem(client, clerk, get_code(resident, cheap)["code"]).status_code == 201
    cheap.stock = 5
    db.session.commit()
    limited = client.post(url, json={"reward_id": cheap.id}, headers=resident.headers)
    assert limited.status_code == 409 and limited.get_json()["code"] == "limit_reached"


def test_code_for_an_unavailable_reward_is_refused(client, resident, make_reward, fund):
    fund(resident.household_id, 500)
    later = make_reward(valid_from=datetime.now(timezone.utc) + timedelta(hours=1))

    reply = client.post(f"{API}/redemption-codes", json={"reward_id": later.id}, headers=resident.headers)

    assert reply.status_code == 409 and reply.get_json()["code"] == "reward_unavailable"


def test_a_reward_of_another_community_is_404_unless_district_wide(client, resident, make_merchant, make_community,
                                                                  make_reward, fund):
    fund(resident.household_id, 500)
    far = make_merchant(community_id=make_community().id, name="外区店")
    local_only = make_reward(of=far)
    wide = make_reward(of=far, district_wide=True)

    hidden = client.post(f"{API}/redemption-codes", json={"reward_id": local_only.id}, headers=resident.headers)
    missing = client.post(f"{API}/redemption-codes", json={"reward_id": "nope"}, headers=resident.headers)
    shown = client.post(f"{API}/redemption-codes", json={"reward_id": wide.id}, headers=resident.headers)

    assert hidden.status_code == 404 and missing.status_code == 404
    assert shown.status_code == 201


def test_a_household_holds_at_most_ten_live_codes(client, resident, reward, fund, get_code):
    fund(resident.household_id, 500)
    codes = [get_code(resident, reward) for _ in range(10)]

    eleventh = client.post(f"{API}/redemption-codes", json={"reward_id": reward.id}, headers=resident.headers)

    assert eleventh.status_code == 409 and eleventh.get_json()["code"] == "too_many_live_codes"
    _code_row(codes[0]["id"]).expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    db.session.commit()
    assert client.post(f"{API}/redemption-codes", json={"reward_id": reward.id},
                       headers=resident.headers).status_code == 201


def test_code_input_is_validated(client, resident, reward):
    url = f"{API}/redemption-codes"
    for body, field in (({"reward_id": reward.id, "quantity": 0}, "quantity"),
                        ({"reward_id": reward.id, "quantity": 11}, "quantity"),
                        ({"reward_id": reward.id, "quantity": "1"}, "quantity"),
                        ({}, "reward_id"),
                        ({"reward_id": reward.id, "points_cost": 1}, "points_cost")):
        reply = client.post(url, json=body, headers=resident.headers)
        assert reply.status_code == 422 and field in reply.get_json()["errors"], body


def test_code_creation_is_rate_limited_per_household(app, client, resident, reward, fund, monkeypatch,
                                                     make_resident):
    fund(resident.household_id, 500)
    monkeypatch.setitem(app.config, "REDEMPTION_CODE_LIMIT", "2/minute")
    body = {"reward_id": reward.id}

    replies = [client.post(f"{API}/redemption-codes", json=body, headers=resident.headers) for _ in range(3)]
    neighbour = make_resident()
    fund(neighbour.household_id, 500)
    other = client.post(f"{API}/redemption-codes", json=body, headers=neighbour.headers)

    assert [r.status_code for r in replies] == [201, 201, 429]
    assert replies[2].get_json()["code"] == "rate_limited" and "Retry-After" in replies[2].headers
    assert other.status_code == 201


def test_qr_png_decodes_to_exactly_the_digits(client, resident, reward, fund, get_code):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)

    reply = client.get(code["qr_png_url"], headers=resident.headers)

    assert reply.status_code == 200 and reply.mimetype == "image/png"
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(reply.data)))
    assert [r.text for r in results] == [code["code"]]
    assert results[0].format == zxingcpp.BarcodeFormat.QRCode


def _rasterise(svg: bytes, scale: int = 10) -> Image.Image:
    """Paint the unit squares of a qrcode path SVG ("M4,4H5V5H4z…") onto a white image."""
    size = int(re.search(rb'viewBox="0 0 ([0-9]+) ([0-9]+)"', svg).group(1))
    image = Image.new("L", (size * scale, size * scale), 255)
    for x, y in re.findall(rb"M([0-9]+),([0-9]+)H", svg):
        image.paste(0, (int(x) * scale, int(y) * scale, (int(x) + 1) * scale, (int(y) + 1) * scale))
    return image


def test_qr_svg_decodes_to_exactly_the_digits(client, resident, reward, fund, get_code):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)

    reply = client.get(code["qr_svg_url"], headers=resident.headers)

    assert reply.status_code == 200 and reply.mimetype == "image/svg+xml"
    assert reply.data.startswith(b"<svg")
    assert [r.text for r in zxingcpp.read_barcodes(_rasterise(reply.data))] == [code["code"]]


def test_only_the_household_that_made_a_code_gets_its_images(client, resident, reward, fund, get_code,
                                                             make_resident, clerk):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)
    member = make_resident(invite_code=resident.user.household.invite_code)
    neighbour = make_resident()

    assert client.get(code["qr_png_url"], headers=member.headers).status_code == 200
    assert client.get(code["qr_svg_url"], headers=neighbour.headers).status_code == 404
    assert client.get(code["qr_png_url"], headers=neighbour.headers).get_json()["code"] == "not_found"
    assert client.get(code["qr_png_url"], headers=clerk.headers).status_code == 403
    assert client.get(code["qr_png_url"]).status_code == 401


# ---------------------------------------------------------------- redemption


def test_a_scan_debits_the_household_credits_the_merchant_and_takes_stock(client, resident, reward, clerk, merchant,
                                                                          fund, get_code):
    fund(resident.household_id, 500)
    code = get_code(resident, reward, quantity=2)

    reply = _redeem(client, clerk, code["code"])

    assert reply.status_code == 201
    data = reply.get_json()
    assert data["status"] == "completed" and data["reward_id"] == reward.id
    assert data["quantity"] == 2 and data["points"] == 200 and data["created_at"]
    assert balance(resident.household_id) == 300 and merchant_balance(merchant.id) == 200
    assert _stock(reward.id) == 48
    row = _code_row(code["id"])
    assert row.state == "used" and row.redemption_id == data["id"]
    assert ledger.verify() == []
    wallet = client.get(f"{API}/wallet", headers=resident.headers).get_json()
    assert wallet["lifetime_redeemed"] == 200 and wallet["balance"] == 300


def test_the_same_merchant_scanning_again_gets_the_same_redemption(client, resident, reward, clerk, fund, get_code,
                                                                   make_staff, merchant):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)
    colleague = make_staff("merchant_staff", merchant_id=merchant.id)

    first = _redeem(client, clerk, code["code"])
    again = _redeem(client, colleague, code["code"])

    assert first.status_code == 201 and again.status_code == 200
    assert again.get_json() == first.get_json()
    assert balance(resident.household_id) == 400
    assert db.session.scalar(select(func.count()).select_from(Redemption)) == 1


def test_an_unknown_code_is_404_code_not_found(client, clerk):
    for code in ("12345678901234567890", "abc", "1234", " "):
        reply = _redeem(client, clerk, code)
        assert reply.status_code == 404 and reply.get_json()["code"] == "code_not_found", code


def test_typed_digits_may_carry_spaces(client, resident, reward, clerk, fund, get_code):
    fund(resident.household_id, 500)
    digits = get_code(resident, reward)["code"]

    reply = _redeem(client, clerk, " ".join(digits[i:i + 4] for i in range(0, 20, 4)))

    assert reply.status_code == 201


def test_another_merchant_gets_wrong_merchant_and_the_code_stays_usable(client, resident, reward, clerk, fund,
                                                                        get_code, make_merchant, make_staff):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)
    rival = make_staff("merchant_staff", merchant_id=make_merchant(name="隔壁").id)

    wrong = _redeem(client, rival, code["code"])

    assert wrong.status_code == 409 and wrong.get_json()["code"] == "wrong_merchant"
    assert _code_row(code["id"]).state == "live" and balance(resident.household_id) == 500
    assert _redeem(client, clerk, code["code"]).status_code == 201
    after = _redeem(client, rival, code["code"])
    assert after.status_code == 409 and after.get_json()["code"] == "wrong_merchant"


def test_an_expired_code_is_refused_and_burned(app, client, resident, reward, clerk, fund, get_code, monkeypatch,
                                              make_merchant, make_staff):
    fund(resident.household_id, 500)
    monkeypatch.setitem(app.config, "REDEMPTION_CODE_TTL_SECONDS", 0)
    code = get_code(resident, reward)
    rival = make_staff("merchant_staff", merchant_id=make_merchant(name="隔壁").id)

    first = _redeem(client, clerk, code["code"])
    again = _redeem(client, clerk, code["code"])

    assert first.status_code == 409 and first.get_json()["code"] == "code_expired"
    assert again.status_code == 409 and again.get_json()["code"] == "code_expired"
    assert _redeem(client, rival, code["code"]).get_json()["code"] == "wrong_merchant"
    row = _code_row(code["id"])
    assert row.state == "burned" and row.refusal_code == "code_expired"
    assert balance(resident.household_id) == 500 and _stock(reward.id) == 50


def test_points_spent_after_the_code_was_made_refuse_and_burn_it(client, resident, make_reward, clerk, fund,
                                                                 get_code):
    fund(resident.household_id, 150)
    reward = make_reward(points_cost=100)
    first, second = get_code(resident, reward), get_code(resident, reward)

    assert _redeem(client, clerk, first["code"]).status_code == 201
    refused = _redeem(client, clerk, second["code"])
    replay = _redeem(client, clerk, second["code"])

    assert refused.status_code == 409 and refused.get_json()["code"] == "insufficient_points"
    assert replay.status_code == 409 and replay.get_json()["code"] == "insufficient_points"
    assert _code_row(second["id"]).state == "burned"
    assert balance(resident.household_id) == 50 and _stock(reward.id) == 49
    fund(resident.household_id, 500)
    assert _redeem(client, clerk, second["code"]).get_json()["code"] == "insufficient_points"


def test_stock_gone_after_the_code_was_made_refuses_and_burns_it(client, resident, make_reward, clerk, fund,
                                                                 get_code, make_resident):
    reward = make_reward(stock=1)
    neighbour = make_resident()
    fund(resident.household_id, 500)
    fund(neighbour.household_id, 500)
    mine, theirs = get_code(resident, reward), get_code(neighbour, reward)

    assert _redeem(client, clerk, theirs["code"]).status_code == 201
    refused = _redeem(client, clerk, mine["code"])

    assert refused.status_code == 409 and refused.get_json()["code"] == "out_of_stock"
    assert _code_row(mine["id"]).state == "burned"
    assert balance(resident.household_id) == 500 and _stock(reward.id) == 0


def test_the_per_household_limit_counts_units_at_redemption(client, resident, make_reward, clerk, fund, get_code):
    fund(resident.household_id, 1000)
    reward = make_reward(points_cost=10, per_household_limit=3)
    two, two_more = get_code(resident, reward, quantity=2), get_code(resident, reward, quantity=2)

    assert _redeem(client, clerk, two["code"]).status_code == 201
    refused = _redeem(client, clerk, two_more["code"])

    assert refused.status_code == 409 and refused.get_json()["code"] == "limit_reached"
    assert balance(resident.household_id) == 980 and _stock(reward.id) == 48


def test_a_voided_redemption_no_longer_counts_against_the_limit(client, resident, make_reward, clerk, fund,
                                                               get_code):
    fund(resident.household_id, 1000)
    reward = make_reward(points_cost=10, per_household_limit=1)
    first = _redeem(client, clerk, get_code(resident, reward)["code"]).get_json()
    client.post(f"{API}/merchant/redemptions/{first['id']}/void", json={"reason": "扫错了"}, headers=clerk.headers)

    again = _redeem(client, clerk, get_code(resident, reward)["code"])

    assert again.status_code == 201


def test_a_reward_withdrawn_after_the_code_was_made_refuses_it(client, resident, reward, clerk, fund, get_code):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)
    client.patch(f"{API}/rewards/{reward.id}", json={"active": False}, headers=clerk.headers)

    refused = _redeem(client, clerk, code["code"])

    assert refused.status_code == 409 and refused.get_json()["code"] == "reward_unavailable"
    assert _code_row(code["id"]).state == "burned" and balance(resident.household_id) == 500


def test_the_code_keeps_the_price_it_was_made_at(client, resident, reward, clerk, fund, get_code):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)
    client.patch(f"{API}/rewards/{reward.id}", json={"points_cost": 400}, headers=clerk.headers)

    reply = _redeem(client, clerk, code["code"])

    assert reply.get_json()["points"] == 100 and balance(resident.household_id) == 400


def test_the_merchant_daily_limit_refuses_and_burns(client, resident, reward, clerk, fund, get_code, merchant, staff):
    fund(resident.household_id, 1000)
    client.patch(f"{API}/merchants/{merchant.id}", json={"daily_redemption_limit": 2}, headers=staff.headers)
    codes = [get_code(resident, reward) for _ in range(3)]

    replies = [_redeem(client, clerk, c["code"]) for c in codes]

    assert [r.status_code for r in replies] == [201, 201, 409]
    assert replies[2].get_json()["code"] == "merchant_daily_limit"
    assert _code_row(codes[2]["id"]).state == "burned"
    assert balance(resident.household_id) == 800 and _stock(reward.id) == 48


def test_a_deactivated_merchant_cannot_redeem(client, resident, reward, clerk, fund, get_code, merchant, admin):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)
    client.patch(f"{API}/merchants/{merchant.id}", json={"active": False}, headers=admin.headers)

    refused = _redeem(client, clerk, code["code"])

    assert refused.status_code == 409 and refused.get_json()["code"] == "reward_unavailable"


def test_a_redemption_replayed_by_idempotency_key_is_stored_once(client, resident, reward, clerk, fund, get_code):
    fund(resident.household_id, 500)
    code = get_code(resident, reward)
    key = {"Idempotency-Key": "scan-1"}

    first = _redeem(client, clerk, code["code"], **key)
    second = _redeem(client, clerk, code["code"], **key)

    assert first.status_code == 201 and second.status_code == 201
    assert second.headers["Idempotent-Replayed"] == "true" and second.get_json() == first.get_json()
    assert balance(resident.household_id) == 400


def test_a_refusal_stored_under_an_idempotency_key_keeps_the_burn(app, client, resident, reward, clerk, fund,
                                                                  get_code, monkeypatch):
    fund(resident.household_id, 500)
    monkeypatch.setitem(app.config, "REDEMPTION_CODE_TTL_SECONDS", 0)
    code = get_code(resident, reward)

    first = _redeem(client, clerk, code["code"], **{"Idempotency-Key": "k"})
    second = _redeem(client, clerk, code["code"], **{"Idempotency-Key": "k"})

    assert first.status_code == second.status_code == 409
    assert second.headers["Idempotent-Replayed"] == "true"
    assert _code_row(code["id"]).state == "burned"


def test_only_merchant_staff_redeem(client, resident, staff, admin):
    for person in (resident, staff, admin):
        assert _redeem(client, person, "1" * 20).status_code == 403


def test_the_redemption_spends_the_lots_that_expire_first(client, resident, reward, clerk, fund, get_code):
    soon = datetime.now(timezone.utc) + timedelta(days=10)
    later = datetime.now(timezone.utc) + timedelta(days=400)
    fund(resident.household_id, 80, expires_at=later)
    fund(resident.household_id, 60, expires_at=soon)

    data = _redeem(client, clerk, get_code(resident, reward)["code"]).get_json()

    transfer_id = db.session.get(Redemption, data["id"]).transfer_id
    uses = db.session.execute(select(LotUse.amount).where(LotUse.transfer_id == transfer_id)
                              .order_by(LotUse.amount.desc())).scalars().all()
    assert uses == [60, 40]
    assert client.get(f"{API}/wallet", headers=resident.headers).get_json()["expiring_30d"] == 0


# ---------------------------------------------------------------- listing and voids


def test_merchant_staff_list_their_redemptions(client, resident, reward, clerk, fund, get_code, make_merchant,
                                               make_staff):
    fund(resident.household_id, 500)
    ids = [_redeem(client, clerk, get_code(resident, reward)["code"]).get_json()["id"] for _ in range(2)]
    client.post(f"{API}/merchant/redemptions/{ids[0]}/void", json={"reason": "退货"}, headers=clerk.headers)
    rival = make_staff("merchant_staff", merchant_id=make_merchant(name="隔壁").id)

    everything = client.get(f"{API}/merchant/redemptions", headers=clerk.headers).get_json()["items"]
    voided = client.get(f"{API}/merchant/redemptions?status=voided", headers=clerk.headers).get_json()["items"]
    theirs = client.get(f"{API}/merchant/redemptions", headers=rival.headers).get_json()["items"]

    assert [r["id"] for r in everything] == ids[::-1]
    assert [r["id"] for r in voided] == [ids[0]] and voided[0]["void_reason"] == "退货"
    assert theirs == []
    assert client.get(f"{API}/merchant/redemptions?status=odd", headers=clerk.headers).status_code == 422


def test_a_void_restores_points_stock_and_the_same_lots(client, resident, reward, clerk, merchant, fund, get_code):
    fund(resident.household_id, 500)
    data = _redeem(client, clerk, get_code(resident, reward, quantity=3)["code"]).get_json()

    reply = client.post(f"{API}/merchant/redemptions/{data['id']}/void", json={"reason": "顾客退货"},
                        headers=clerk.headers)

    assert reply.status_code == 200
    body = reply.get_json()
    assert body["status"] == "voided" and body["id"] == data["id"] and body["void_reason"] == "顾客退货"
    assert balance(resident.household_id) == 500 and merchant_balance(merchant.id) == 0
    assert _stock(reward.id) == 50
    redemption = db.session.get(Redemption, data["id"])
    restored = db.session.scalars(select(LotUse).where(LotUse.transfer_id == redemption.void_transfer_id)).all()
    spent = db.session.scalars(select(LotUse).where(LotUse.transfer_id == redemption.transfer_id)).all()
    assert {(u.lot_id, -u.amount) for u in restored} == {(u.lot_id, u.amount) for u in spent}
    kinds = db.session.scalars(select(LedgerEntry.kind).where(LedgerEntry.ref_id == data["id"])).all()
    assert sorted(kinds) == ["redemption", "redemption", "redemption_void", "redemption_void"]
    assert ledger.verify() == []


def test_a_second_void_is_already_voided(client, resident, reward, clerk, fund, get_code):
    fund(resident.household_id, 500)
    data = _redeem(client, clerk, get_code(resident, reward)["code"]).get_json()
    url = f"{API}/merchant/redemptions/{data['id']}/void"

    client.post(url, json={"reason": "错"}, headers=clerk.headers)
    again = client.post(url, json={"reason": "错"}, headers=clerk.headers)

    assert again.status_code == 409 and again.get_json()["code"] == "already_voided"
    assert balance(resident.household_id) == 500


def test_a_void_after_the_window_is_refused(app, client, resident, reward, clerk, fund, get_code, monkeypatch):
    fund(resident.household_id, 500)
    data = _redeem(client, clerk, get_code(resident, reward)["code"]).get_json()
    monkeypatch.setitem(app.config, "VOID_WINDOW_SECONDS", 0)

    reply = client.post(f"{API}/merchant/redemptions/{data['id']}/void", json={"reason": "晚了"},
                        headers=clerk.headers)

    assert reply.status_code == 409 and reply.get_json()["code"] == "void_window_closed"
    assert balance(resident.household_id) == 400


def test_a_void_within_the_default_day_passes_and_after_it_fails(client, resident, reward, clerk, fund, get_code):
    fund(resident.household_id, 500)
    ids = [_redeem(client, clerk, get_code(resident, reward)["code"]).get_json()["id"] for _ in range(2)]
    for redemption_id, age in zip(ids, (timedelta(hours=23, minutes=59), timedelta(hours=24, minutes=1))):
        row = db.session.get(Redemption, redemption_id)
        row.created_at = datetime.now(timezone.utc) - age
    db.session.commit()

    inside = client.post(f"{API}/merchant/redemptions/{ids[0]}/void", json={"reason": "a"}, headers=clerk.headers)
    outside = client.post(f"{API}/merchant/redemptions/{ids[1]}/void", json={"reason": "a"}, headers=clerk.headers)

    assert inside.status_code == 200
    assert outside.status_code == 409 and outside.get_json()["code"] == "void_window_closed"


def test_only_staff_of_that_merchant_void_and_a_reason_is_required(client, resident, reward, clerk, fund, get_code,
                                                                   make_merchant, make_staff):
    fund(resident.household_id, 500)
    data = _redeem(client, clerk, get_code(resident, reward)["code"]).get_json()
    rival = make_staff("merchant_staff", merchant_id=make_merchant(name="隔壁").id)
    url = f"{API}/merchant/redemptions/{data['id']}/void"

    assert client.post(url, json={"reason": "x"}, headers=rival.headers).status_code == 404
    assert client.post(url, json={"reason": "x"}, headers=resident.headers).status_code == 403
    assert client.post(url, json={}, headers=clerk.headers).status_code == 422
    assert client.post(url, json={"reason": "  "}, headers=clerk.headers).status_code == 422
    assert client.post(f"{API}/merchant/redemptions/nope/void", json={"reason": "x"},
                       headers=clerk.headers).status_code == 404
    assert balance(resident.household_id) == 400


def test_the_openapi_document_lists_the_reward_routes(client):
    paths = client.get(f"{API}/openapi.json").get_json()["paths"]

    for path in ("/api/v1/redemption-codes", "/api/v1/merchant/redemptions", "/api/v1/rewards/{reward_id}",
                 "/api/v1/redemption-codes/{code_id}/qr.png", "/api/v1/merchant/redemptions/{redemption_id}/void"):
        assert path in paths


def test_an_idempotent_code_request_replays_the_digits_without_storing_them(client, resident, reward, fund):
    from app.idempotency import IdempotencyRecord

    fund(resident.household_id, 500)
    headers = {**resident.headers, "Idempotency-Key": "code-1"}

    first = client.post(f"{API}/redemption-codes", json={"reward_id": reward.id}, headers=headers)
    retry = client.post(f"{API}/redemption-codes", json={"reward_id": reward.id}, headers=headers)

    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    digits = first.get_json()["code"]
    assert re.fullmatch(r"[0-9]{20}", digits)
    assert all(digits.encode() not in record.body for record in db.session.scalars(select(IdempotencyRecord)))
