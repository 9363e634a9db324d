"""A household's codes and redemptions, and the cashier's preview of a code, through the HTTP API."""
from datetime import timedelta

from sqlalchemy import select, update

from app.columns import utcnow
from app.extensions import db
from app.rewards.models import RedemptionCode, Reward
from tests.rewards.builders import balance

API = "/api/v1"


def _redeem(client, clerk, code):
    return client.post(f"{API}/merchant/redemptions", json={"code": code}, headers=clerk.headers)


def _expire(code_id):
    db.session.execute(update(RedemptionCode).where(RedemptionCode.id == code_id)
                       .values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()


def _codes(client, person, **params):
    reply = client.get(f"{API}/redemption-codes", query_string=params, headers=person.headers)
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def _preview(client, clerk, code):
    return client.get(f"{API}/merchant/codes/{code}", headers=clerk.headers)


# ---------------------------------------------------------------- my codes


def test_my_codes_newest_first_live_used_expired_and_burned(client, resident, clerk, make_reward, fund, get_code):
    fund(resident.household_id, 1000)
    bag, kettle = make_reward(name="环保袋"), make_reward(name="电水壶", points_cost=900)
    used = get_code(resident, bag)
    expired = get_code(resident, bag)
    burned = get_code(resident, kettle)
    live = get_code(resident, bag, quantity=2)
    _redeem(client, clerk, used["code"])
    _expire(expired["id"])
    db.session.execute(update(Reward).where(Reward.id == kettle.id).values(stock=0))
    db.session.commit()
    assert _redeem(client, clerk, burned["code"]).get_json()["code"] == "out_of_stock"

    items = _codes(client, resident)["items"]

    assert [(i["id"], i["status"]) for i in items] == [
        (live["id"], "live"), (burned["id"], "burned"), (expired["id"], "expired"), (used["id"], "used")]
    assert items[0]["code"] == live["code"] and items[0]["qr_png_url"].endswith("/qr.png")
    assert items[0]["reward_name"] == "环保袋" and items[0]["quantity"] == 2 and items[0]["points_cost"] == 200
    assert [i["code"] for i in items[1:]] == [None, None, None]
    assert [i["qr_png_url"] for i in items[1:]] == [None, None, None]
    assert items[1]["refusal"] == "out_of_stock" and items[1]["reward_name"] == "电水壶"
    assert items[3]["redemption_id"] is not None


def test_no_digits_of_a_code_that_is_no_longer_live_anywhere_in_the_reply(client, resident, clerk, reward, fund,
                                                                          get_code):
    fund(resident.household_id, 1000)
    used, expired = get_code(resident, reward), get_code(resident, reward)
    _redeem(client, clerk, used["code"])
    _expire(expired["id"])

    text = client.get(f"{API}/redemption-codes", headers=resident.headers).get_data(as_text=True)

    assert used["code"] not in text and expired["code"] not in text


def test_a_code_refused_as_expired_at_the_till_reads_expired(client, resident, clerk, reward, fund, get_code):
    fund(resident.household_id, 1000)
    code = get_code(resident, reward)
    _expire(code["id"])
    assert _redeem(client, clerk, code["code"]).get_json()["code"] == "code_expired"

    item = _codes(client, resident)["items"][0]

    assert item["status"] == "expired" and item["refusal"] == "code_expired" and item["code"] is None


def test_my_codes_page_and_filter_by_status(client, resident, clerk, reward, fund, get_code):
    fund(resident.household_id, 1000)
    made = [get_code(resident, reward)["id"] for _ in range(3)]
    _expire(made[0])

    first = _codes(client, resident, limit=2)
    rest = _codes(client, resident, limit=2, cursor=first["next_cursor"])
    live = _codes(client, resident, status="live")["items"]
    expired = _codes(client, resident, status="expired")["items"]

    assert [i["id"] for i in first["items"] + rest["items"]] == made[::-1]
    assert rest["next_cursor"] is None
    assert [i["id"] for i in live] == made[:0:-1] and [i["id"] for i in expired] == [made[0]]
    assert client.get(f"{API}/redemption-codes?status=lost", headers=resident.headers).status_code == 422
    assert client.get(f"{API}/redemption-codes?limit=101", headers=resident.headers).status_code == 422


def test_codes_are_the_households_own_and_for_residents_only(client, resident, make_resident, clerk, reward, fund,
                                                            get_code):
    fund(resident.household_id, 1000)
    get_code(resident, reward)
    partner = make_resident(invite_code=resident.user.household.invite_code)

    assert len(_codes(client, partner)["items"]) == 1
    assert _codes(client, make_resident())["items"] == []
    assert client.get(f"{API}/redemption-codes", headers=clerk.headers).status_code == 403


# ---------------------------------------------------------------- my redemptions


def test_my_redemptions_show_reward_merchant_points_and_voids(client, resident, clerk, merchant, make_reward, fund,
                                                             get_code):
    fund(resident.household_id, 1000)
    bag, cup = make_reward(name="环保袋", points_cost=50), make_reward(name="竹杯", points_cost=120)
    first = _redeem(client, clerk, get_code(resident, bag, quantity=2)["code"]).get_json()
    second = _redeem(client, clerk, get_code(resident, cup)["code"]).get_json()
    client.post(f"{API}/merchant/redemptions/{first['id']}/void", json={"reason": "顾客退回"}, headers=clerk.headers)

    reply = client.get(f"{API}/redemptions", headers=resident.headers)

    assert reply.status_code == 200
    items = reply.get_json()["items"]
    assert [(i["id"], i["reward_name"], i["quantity"], i["points"], i["status"]) for i in items] == [
        (second["id"], "竹杯", 1, 120, "completed"), (first["id"], "环保袋", 2, 100, "voided")]
    assert {i["merchant_name"] for i in items} == {merchant.name}
    assert items[1]["voided_at"] is not None and items[0]["voided_at"] is None
    voided = client.get(f"{API}/redemptions?status=voided", headers=resident.headers).get_json()["items"]
    assert [i["id"] for i in voided] == [first["id"]]


def test_redemptions_are_the_households_own(client, resident, make_resident, clerk, reward, fund, get_code):
    fund(resident.household_id, 1000)
    _redeem(client, clerk, get_code(resident, reward)["code"])

    assert client.get(f"{API}/redemptions", headers=make_resident().headers).get_json()["items"] == []
    assert client.get(f"{API}/redemptions", headers=clerk.headers).status_code == 403


# ---------------------------------------------------------------- reward_name for the cashier


def test_the_redemption_reply_and_the_merchants_list_carry_reward_name(client, resident, clerk, make_reward, fund,
                                                                       get_code):
    fund(resident.household_id, 1000)
    bag, cup = make_reward(name="环保袋"), make_reward(name="竹杯")
    redeemed = _redeem(client, clerk, get_code(resident, bag)["code"]).get_json()
    _redeem(client, clerk, get_code(resident, cup)["code"])
    voided = client.post(f"{API}/merchant/redemptions/{redeemed['id']}/void", json={"reason": "错扫"},
                         headers=clerk.headers).get_json()

    listed = client.get(f"{API}/merchant/redemptions", headers=clerk.headers).get_json()["items"]

    assert redeemed["reward_name"] == "环保袋" and voided["reward_name"] == "环保袋"
    assert [i["reward_name"] for i in listed] == ["竹杯", "环保袋"]


# ---------------------------------------------------------------- the cashier's preview


def test_preview_shows_what_to_hand_over_and_burns_nothing(client, resident, clerk, reward, fund, get_code):
    fund(resident.household_id, 1000)
    code = get_code(resident, reward, quantity=2)

    reply = _preview(client, clerk, code["code"])
    again = _preview(client, clerk, code["code"])

    assert reply.status_code == 200
    body = reply.get_json()
    assert body == {**body, "reward_id": reward.id, "reward_name": reward.name, "quantity": 2, "points": 200,
                    "redeemable": True, "reason": None, "status": "live"}
    assert body["expires_at"] == code["expires_at"]
    assert again.get_json() == body
    assert db.session.scalar(select(RedemptionCode.state).where(RedemptionCode.id == code["id"])) == "live"
    assert balance(resident.household_id) == 1000
    assert _redeem(client, clerk, code["code"]).status_code == 201


def test_preview_names_the_refusal_a_redemption_would_meet(client, resident, clerk, reward, make_reward, fund,
                                                          get_code):
    fund(resident.household_id, 150)
    short = get_code(resident, reward)
    expired = get_code(resident, reward)
    _expire(expired["id"])
    assert _redeem(client, clerk, get_code(resident, reward)["code"]).status_code == 201  # 50 left; a code is 100

    short_body = _preview(client, clerk, short["code"]).get_json()
    expired_body = _preview(client, clerk, expired["code"]).get_json()

    assert (short_body["redeemable"], short_body["reason"], short_body["status"]) == (
        False, "insufficient_points", "live")
    assert (expired_body["redeemable"], expired_body["reason"], expired_body["status"]) == (
        False, "code_expired", "expired")


def test_preview_of_a_used_or_burned_code_says_so(client, resident, clerk, reward, fund, get_code):
    fund(resident.household_id, 1000)
    used = get_code(resident, reward)
    redemption = _redeem(client, clerk, used["code"]).get_json()
    burned = get_code(resident, reward)
    _expire(burned["id"])
    _redeem(client, clerk, burned["code"])

    used_body = _preview(client, clerk, used["code"]).get_json()
    burned_body = _preview(client, clerk, burned["code"]).get_json()

    assert (used_body["redeemable"], used_body["reason"], used_body["status"]) == (False, "already_redeemed", "used")
    assert used_body["redemption_id"] == redemption["id"]
    assert (burned_body["redeemable"], burned_body["reason"]) == (False, "code_expired")


def test_unknown_malformed_and_other_merchants_codes_are_the_same_404(client, resident, clerk, make_staff,
                                                                     make_merchant, reward, fund, get_code):
    fund(resident.household_id, 1000)
    code = get_code(resident, reward)
    other_clerk = make_staff("merchant_staff", merchant_id=make_merchant().id)

    replies = [_preview(client, other_clerk, code["code"]), _preview(client, clerk, "0" * 20),
               _preview(client, clerk, "not-a-code")]

    bodies = [r.get_json() for r in replies]
    assert [r.status_code for r in replies] == [404, 404, 404]
    assert {b["code"] for b in bodies} == {"code_not_found"}
    assert len({(b["title"], b.get("detail")) for b in bodies}) == 1
    assert _redeem(client, clerk, code["code"]).status_code == 201  # the other merchant's look burned nothing


def test_preview_is_for_merchant_staff(client, resident, staff, reward, fund, get_code):
    fund(resident.household_id, 1000)
    code = get_code(resident, reward)

    assert _preview(client, resident, code["code"]).status_code == 403
    assert _preview(client, staff, code["code"]).status_code == 403


def test_preview_is_rate_limited_per_merchant(app, client, resident, clerk, make_staff, merchant, reward, fund,
                                             get_code, monkeypatch):
    monkeypatch.setitem(app.config, "CODE_PREVIEW_LIMIT", "3/minute")
    second_till = make_staff("merchant_staff", merchant_id=merchant.id)

    statuses = [_preview(client, clerk, "1" * 20).status_code for _ in range(2)]
    statuses += [_preview(client, second_till, "1" * 20).status_code for _ in range(2)]

    assert statuses == [404, 404, 404, 429]
    limited = _preview(client, clerk, "1" * 20)
    assert limited.get_json()["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
