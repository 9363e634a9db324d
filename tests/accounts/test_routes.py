"""Accounts through the HTTP API: registration, login, tokens, /me, invite codes, staff."""
import time
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import func, select

from app.accounts import service as accounts
from app.accounts.models import Household, LoginSession, StaffCommunity, User
from app.columns import new_id, utcnow
from app.extensions import db
from app.ledger.models import LedgerAccount
from app.merchants.models import Merchant
from tests.fixtures import PASSWORD, bearer, next_phone

PROBLEM = "application/problem+json"


def register(client, **fields):
    body = {"phone": next_phone(), "password": PASSWORD, "display_name": "张三", **fields}
    return client.post("/api/v1/auth/register", json=body)


def login(client, phone, password=PASSWORD):
    return client.post("/api/v1/auth/login", json={"phone": phone, "password": password})


def assert_problem(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["code"] == code
    assert body["status"] == status
    return body


# ---------------------------------------------------------------- communities


def test_communities_lists_every_community_with_its_street(client, make_community):
    first, second = make_community(), make_community()

    response = client.get("/api/v1/communities")

    assert response.status_code == 200
    body = response.get_json()
    assert body["next_cursor"] is None
    ids = [c["id"] for c in body["items"]]
    assert ids.index(first.id) < ids.index(second.id)
    item = next(c for c in body["items"] if c["id"] == first.id)
    assert item["name"] == first.name
    assert item["street"] == {"id": first.street_id, "name": "测试街道", "code": "310117999"}


# ---------------------------------------------------------------- register


def test_register_new_household_returns_tokens_that_work_on_me(client, community):
    phone = next_phone()

    response = register(client, phone=phone, community_id=community.id)

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) >= {"user", "household", "access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 15 * 60
    assert body["user"]["roles"] == ["resident"]
    assert body["user"]["display_name"] == "张三"
    assert "password" not in body["user"] and "password_hash" not in body["user"]
    household = body["household"]
    assert household["community_id"] == community.id
    assert len(household["invite_code"]) == 10
    assert set(household["invite_code"]) <= set(accounts.CROCKFORD)
    me = client.get("/api/v1/me", headers=bearer(body))
    assert me.status_code == 200
    assert me.get_json()["id"] == body["user"]["id"]
    stored = db.session.scalar(select(User).where(User.phone == phone))
    assert stored.household_id == household["id"]
    assert stored.password_hash != PASSWORD
    wallet = db.session.scalar(select(LedgerAccount).where(LedgerAccount.owner_id == household["id"]))
    assert (wallet.kind, wallet.balance) == ("household", 0)


def test_register_accepts_an_optional_sms_code(client, community):
    response = register(client, community_id=community.id, sms_code="123456")

    assert response.status_code == 201


def test_register_with_invite_code_joins_the_same_household(client, resident):
    code = resident.user.household.invite_code

    response = register(client, household_invite_code=code)

    assert response.status_code == 201
    assert response.get_json()["household"]["id"] == resident.household_id
    members = db.session.scalar(select(func.count()).select_from(User).where(User.household_id == resident.household_id))
    assert members == 2


def test_invite_code_is_read_case_insensitively(client, resident):
    code = resident.user.household.invite_code

    response = register(client, household_invite_code=code.lower())

    assert response.status_code == 201
    assert response.get_json()["household"]["id"] == resident.household_id


def test_unknown_invite_code_is_422_on_the_field(client, resident):
    response = register(client, household_invite_code="ZZZZZZZZZZ")

    body = assert_problem(response, 422, "validation_error")
    assert "household_invite_code" in body["errors"]


def test_expired_invite_code_is_422_on_the_field(client, resident):
    household = db.session.get(Household, resident.household_id)
    household.invite_expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    response = register(client, household_invite_code=household.invite_code)

    body = assert_problem(response, 422, "validation_error")
    assert "household_invite_code" in body["errors"]


def test_ninth_member_gets_household_full(client, resident):
    code = resident.user.household.invite_code
    for _ in range(accounts.HOUSEHOLD_MAX_MEMBERS - 1):
        assert register(client, household_invite_code=code).status_code == 201

    response = register(client, household_invite_code=code)

    assert_problem(response, 409, "household_full")
    members = db.session.scalar(select(func.count()).select_from(User).where(User.household_id == resident.household_id))
    assert members == 8


def test_duplicate_phone_is_409_phone_taken(client, community, resident):
    response = register(client, phone=resident.user.phone, community_id=community.id)

    assert_problem(response, 409, "phone_taken")
    assert db.session.scalar(select(func.count()).select_from(Household).where(
        Household.community_id == community.id)) == 1


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"phone": "12345678901"}, "phone"),
        ({"phone": "1380000000"}, "phone"),
        ({"phone": "1380000000a"}, "phone"),
        ({"phone": "13800000000\n"}, "phone"),
        ({"phone": " 13800000000"}, "phone"),
        ({"display_name": "名\x00"}, "display_name"),
        ({"password": "short12"}, "password"),
        ({"password": "x" * 129}, "password"),
        ({"display_name": "名" * 41}, "display_name"),
        ({"display_name": ""}, "display_name"),
        ({"points": 100}, "points"),
        ({"role": "district_admin"}, "role"),
    ],
)
def test_bad_registration_field_is_422_naming_it(client, community, fields, field):
    response = register(client, community_id=community.id, **fields)

    body = assert_problem(response, 422, "validation_error")
    assert field in body["errors"]
    assert db.session.scalar(select(func.count()).select_from(Household).where(
        Household.community_id == community.id)) == 0


def test_community_id_and_invite_code_together_is_422(client, community, resident):
    response = register(client, community_id=community.id,
                        household_invite_code=resident.user.household.invite_code)

    body = assert_problem(response, 422, "validation_error")
    assert "community_id" in body["errors"]


def test_neither_community_nor_invite_code_is_422(client):
    response = register(client)

    body = assert_problem(response, 422, "validation_error")
    assert "community_id" in body["errors"]


def test_unknown_community_is_422_on_community_id(client):
    response = register(client, community_id=new_id())

    body = assert_problem(response, 422, "validation_error")
    assert "community_id" in body["errors"]


# ---------------------------------------------------------------- login


def test_login_returns_user_household_and_tokens(client, resident):
    response = login(client, resident.user.phone)

    assert response.status_code == 200
    body = response.get_json()
    assert body["user"]["id"] == resident.id
    assert body["household"]["id"] == resident.household_id
    assert body["token_type"] == "Bearer"
    assert client.get("/api/v1/me", headers=bearer(body)).status_code == 200


def test_wrong_password_is_401_invalid_credentials(client, resident):
    response = login(client, resident.user.phone, "wrong-password-1")

    body = assert_problem(response, 401, "invalid_credentials")
    assert "access_token" not in body


def test_unknown_phone_is_401_invalid_credentials(client):
    response = login(client, next_phone())

    assert_problem(response, 401, "invalid_credentials")


def test_login_with_unknown_field_is_422(client, resident):
    response = client.post("/api/v1/auth/login",
                           json={"phone": resident.user.phone, "password": PASSWORD, "remember": True})

    body = assert_problem(response, 422, "validation_error")
    assert "remember" in body["errors"]


# ---------------------------------------------------------------- refresh and logout


def test_refresh_rotates_and_the_old_refresh_token_is_then_401(client, resident):
    old = resident.tokens["refresh_token"]

    response = client.post("/api/v1/auth/refresh", json={"refresh_token": old})

    assert response.status_code == 200
    fresh = response.get_json()
    assert fresh["refresh_token"] != old
    assert fresh["user"]["id"] == resident.id
    assert client.get("/api/v1/me", headers=bearer(fresh)).status_code == 200
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": old})
    assert_problem(again, 401, "unauthenticated")


def test_reusing_a_rotated_refresh_token_revokes_the_whole_login(client, resident):
    old = resident.tokens["refresh_token"]
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": old}).get_json()

    reuse = client.post("/api/v1/auth/refresh", json={"refresh_token": old})

    assert_problem(reuse, 401, "unauthenticated")
    assert_problem(client.get("/api/v1/me", headers=bearer(fresh)), 401, "unauthenticated")
    assert_problem(client.get("/api/v1/me", headers=resident.headers), 401, "unauthenticated")
    assert_problem(client.post("/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]}),
                   401, "unauthenticated")
    session = db.session.scalar(select(LoginSession).where(LoginSession.user_id == resident.id))
    assert session.revoked_reason == "refresh_reuse"


def test_unknown_refresh_token_is_401(client):
    response = client.post("/api/v1/auth/refresh", json={"refresh_token": "not-a-token"})

    assert_problem(response, 401, "unauthenticated")


def test_expired_refresh_token_is_401(client, resident):
    from app.accounts.models import RefreshToken

    stored = db.session.get(RefreshToken, accounts._token_hash(resident.tokens["refresh_token"]))
    stored.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()

    response = client.post("/api/v1/auth/refresh", json={"refresh_token": resident.tokens["refresh_token"]})

    assert_problem(response, 401, "unauthenticated")


def test_logout_ends_that_login_only(client, resident):
    other = login(client, resident.user.phone).get_json()

    response = client.post("/api/v1/auth/logout", headers=resident.headers)

    assert response.status_code == 204
    assert_problem(client.get("/api/v1/me", headers=resident.headers), 401, "unauthenticated")
    assert_problem(client.post("/api/v1/auth/refresh", json={"refresh_token": resident.tokens["refresh_token"]}),
                   401, "unauthenticated")
    assert client.get("/api/v1/me", headers=bearer(other)).status_code == 200


def test_logout_without_a_token_is_401(client):
    assert_problem(client.post("/api/v1/auth/logout"), 401, "unauthenticated")


# ---------------------------------------------------------------- access tokens


def _claims(person, **changes):
    now = utcnow()
    claims = {"sub": person.id, "sid": jwt.decode(person.tokens["access_token"], options={"verify_signature": False})["sid"],
              "iat": now, "exp": now + timedelta(minutes=15), "jti": new_id(), "typ": "access"}
    claims.update(changes)
    return claims


def test_expired_access_token_is_401(app, client, resident):
    past = utcnow() - timedelta(hours=1)
    token = jwt.encode(_claims(resident, iat=past, exp=past + timedelta(minutes=15)),
                       app.config["JWT_SECRET_KEY"], algorithm="HS256")

    assert_problem(client.get("/api/v1/me", headers=bearer(token)), 401, "unauthenticated")


def test_a_token_verified_before_is_still_refused_once_it_expires(app, client, resident):
    expires = utcnow() + timedelta(seconds=2)
    token = jwt.encode(_claims(resident, exp=expires), app.config["JWT_SECRET_KEY"], algorithm="HS256")
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200  # verified, and remembered

    time.sleep(max(0.0, int(expires.timestamp()) - time.time()) + 0.05)  # exp is whole seconds

    assert_problem(client.get("/api/v1/me", headers=bearer(token)), 401, "unauthenticated")


def test_a_token_verified_before_is_refused_after_the_signing_key_changes(app, client, resident, monkeypatch):
    token = resident.tokens["access_token"]
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200

    monkeypatch.setitem(app.config, "JWT_SECRET_KEY", "a-rotated-key-that-is-long-enough-0000000")

    assert_problem(client.get("/api/v1/me", headers=bearer(token)), 401, "unauthenticated")


def test_token_signed_with_another_key_is_401(client, resident):
    token = jwt.encode(_claims(resident), "another-key-that-is-long-enough-000000", algorithm="HS256")

    assert_problem(client.get("/api/v1/me", headers=bearer(token)), 401, "unauthenticated")


def test_unsigned_alg_none_token_is_401(client, resident):
    token = jwt.encode(_claims(resident), None, algorithm="none")

    assert_problem(client.get("/api/v1/me", headers=bearer(token)), 401, "unauthenticated")


def test_token_of_another_type_is_401(app, client, resident):
    token = jwt.encode(_claims(resident, typ="refresh"), app.config["JWT_SECRET_KEY"], algorithm="HS256")

    assert_problem(client.get("/api/v1/me", headers=bearer(token)), 401, "unauthenticated")


def test_well_signed_token_of_an_unknown_login_is_401(app, client, resident):
    token = jwt.encode(_claims(resident, sid=new_id()), app.config["JWT_SECRET_KEY"], algorithm="HS256")

    assert_problem(client.get("/api/v1/me", headers=bearer(token)), 401, "unauthenticated")


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic abc", "Bearer not.a.jwt", "Token x"])
def test_missing_or_malformed_authorization_is_401(client, header):
    headers = {"Authorization": header} if header else {}

    assert_problem(client.get("/api/v1/me", headers=headers), 401, "unauthenticated")


# ---------------------------------------------------------------- /me


def test_me_of_a_resident(client, resident):
    response = client.get("/api/v1/me", headers=resident.headers)

    assert response.status_code == 200
    body = response.get_json()
    assert set(body) >= {"id", "display_name", "roles", "household", "community_ids", "merchant_id", "park_id"}
    assert body["id"] == resident.id
    assert body["roles"] == ["resident"]
    assert body["household"]["id"] == resident.household_id
    assert body["household"]["invite_code"] == resident.user.household.invite_code
    assert body["community_ids"] == [resident.user.household.community_id]
    assert body["merchant_id"] is None and body["park_id"] is None


def test_me_of_community_staff_lists_its_communities(client, make_community, make_staff):
    first, second = make_community(), make_community()
    staff = make_staff("community_staff", community_ids=[first.id, second.id])

    body = client.get("/api/v1/me", headers=staff.headers).get_json()

    assert body["roles"] == ["community_staff"]
    assert body["household"] is None
    assert body["community_ids"] == sorted([first.id, second.id])
    assert body["merchant_id"] is None


# ---------------------------------------------------------------- invite codes


def test_new_invite_code_replaces_the_old_one(client, resident):
    old = resident.user.household.invite_code

    response = client.post("/api/v1/households/invite-code", headers=resident.headers)

    assert response.status_code == 200
    body = response.get_json()
    assert body["invite_code"] != old and len(body["invite_code"]) == 10
    assert body["expires_at"]
    refused = register(client, household_invite_code=old)
    assert "household_invite_code" in assert_problem(refused, 422, "validation_error")["errors"]
    joined = register(client, household_invite_code=body["invite_code"])
    assert joined.status_code == 201
    assert joined.get_json()["household"]["id"] == resident.household_id


def test_staff_cannot_make_an_invite_code(client, staff):
    assert_problem(client.post("/api/v1/households/invite-code", headers=staff.headers), 403, "forbidden")


# ---------------------------------------------------------------- staff


def staff_body(role, **fields):
    return {"phone": next_phone(), "password": PASSWORD, "display_name": "工作人员", "role": role, **fields}


def test_admin_creates_a_district_admin(client, admin):
    body = staff_body("district_admin")

    response = client.post("/api/v1/admin/staff", json=body, headers=admin.headers)

    assert response.status_code == 201
    reply = response.get_json()
    assert reply["roles"] == ["district_admin"]
    assert reply["phone"] == body["phone"]
    assert "password" not in reply
    assert login(client, body["phone"]).status_code == 200


def test_admin_creates_community_staff_with_communities(client, admin, make_community):
    first, second = make_community(), make_community()

    response = client.post("/api/v1/admin/staff", headers=admin.headers,
                           json=staff_body("community_staff", community_ids=[first.id, second.id]))

    assert response.status_code == 201
    reply = response.get_json()
    assert reply["community_ids"] == sorted([first.id, second.id])
    stored = db.session.scalars(select(StaffCommunity.community_id).where(StaffCommunity.user_id == reply["id"])).all()
    assert sorted(stored) == sorted([first.id, second.id])


def test_community_staff_without_communities_is_422(client, admin):
    response = client.post("/api/v1/admin/staff", json=staff_body("community_staff"), headers=admin.headers)

    assert "community_ids" in assert_problem(response, 422, "validation_error")["errors"]


def test_community_staff_with_an_unknown_community_is_422(client, admin, community):
    response = client.post("/api/v1/admin/staff", headers=admin.headers,
                           json=staff_body("community_staff", community_ids=[community.id, "nope"]))

    body = assert_problem(response, 422, "validation_error")
    assert any(key.startswith("community_ids") for key in body["errors"])


def test_admin_creates_merchant_staff_of_an_existing_merchant(client, admin, community):
    merchant = Merchant(name="绿色小铺", community_id=community.id)
    db.session.add(merchant)
    db.session.commit()

    response = client.post("/api/v1/admin/staff", headers=admin.headers,
                           json=staff_body("merchant_staff", merchant_id=merchant.id))

    assert response.status_code == 201
    reply = response.get_json()
    assert reply["roles"] == ["merchant_staff"]
    assert reply["merchant_id"] == merchant.id


def test_merchant_staff_needs_an_existing_merchant(client, admin):
    missing = client.post("/api/v1/admin/staff", json=staff_body("merchant_staff"), headers=admin.headers)
    unknown = client.post("/api/v1/admin/staff", json=staff_body("merchant_staff", merchant_id=new_id()),
                          headers=admin.headers)

    assert "merchant_id" in assert_problem(missing, 422, "validation_error")["errors"]
    assert "merchant_id" in assert_problem(unknown, 422, "validation_error")["errors"]


def test_park_manager_needs_an_existing_park(client, admin):
    response = client.post("/api/v1/admin/staff", json=staff_body("park_manager", park_id=new_id()),
                           headers=admin.headers)

    assert "park_id" in assert_problem(response, 422, "validation_error")["errors"]


def test_scope_of_another_role_is_422(client, admin, community):
    response = client.post("/api/v1/admin/staff", headers=admin.headers,
                           json=staff_body("district_admin", community_ids=[community.id]))

    assert "community_ids" in assert_problem(response, 422, "validation_error")["errors"]


def test_staff_role_resident_is_422(client, admin):
    response = client.post("/api/v1/admin/staff", json=staff_body("resident"), headers=admin.headers)

    assert "role" in assert_problem(response, 422, "validation_error")["errors"]


def test_staff_with_a_taken_phone_is_409(client, admin, resident):
    body = staff_body("district_admin", phone=resident.user.phone)

    assert_problem(client.post("/api/v1/admin/staff", json=body, headers=admin.headers), 409, "phone_taken")


def test_resident_may_not_create_staff(client, resident):
    response = client.post("/api/v1/admin/staff", json=staff_body("district_admin"), headers=resident.headers)

    assert_problem(response, 403, "forbidden")


def test_community_staff_may_not_create_staff(client, staff):
    response = client.post("/api/v1/admin/staff", json=staff_body("district_admin"), headers=staff.headers)

    assert_problem(response, 403, "forbidden")


def test_creating_staff_without_a_token_is_401(client):
    body = staff_body("district_admin")

    assert_problem(client.post("/api/v1/admin/staff", json=body), 401, "unauthenticated")
    assert db.session.scalar(select(User).where(User.phone == body["phone"])) is None


def test_retrying_staff_creation_with_the_same_key_replays_the_first_reply(client, admin, community):
    body = staff_body("community_staff", community_ids=[community.id])
    headers = {**admin.headers, "Idempotency-Key": "staff-1"}

    first = client.post("/api/v1/admin/staff", json=body, headers=headers)
    retry = client.post("/api/v1/admin/staff", json=body, headers=headers)

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.get_json()["id"] == first.get_json()["id"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert db.session.scalar(select(func.count()).select_from(User).where(User.phone == body["phone"])) == 1


def test_retrying_invite_code_with_the_same_key_keeps_the_code_it_handed_out(client, resident):
    headers = {**resident.headers, "Idempotency-Key": "invite-1"}

    first = client.post("/api/v1/households/invite-code", headers=headers)
    retry = client.post("/api/v1/households/invite-code", headers=headers)

    assert retry.get_json()["invite_code"] == first.get_json()["invite_code"]
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert db.session.get(Household, resident.household_id).invite_code == first.get_json()["invite_code"]


def test_invite_code_refuses_fields_and_a_broken_body(client, resident):
    with_field = client.post("/api/v1/households/invite-code", json={"x": 1}, headers=resident.headers)
    broken = client.post("/api/v1/households/invite-code", data="{bad", content_type="application/json",
                         headers=resident.headers)

    assert assert_problem(with_field, 422, "validation_error")["errors"] == {"x": ["Unknown field."]}
    assert with_field.get_json()["detail"]
    assert_problem(broken, 400, "malformed_json")


def test_an_unknown_community_is_named_at_the_index_the_client_sent(client, admin, community):
    body = staff_body("community_staff", community_ids=[community.id, "0000-missing"])

    response = client.post("/api/v1/admin/staff", json=body, headers=admin.headers)

    assert assert_problem(response, 422, "validation_error")["errors"] == {"community_ids.1": ["No such community."]}
