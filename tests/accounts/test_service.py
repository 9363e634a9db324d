"""Account rules, straight through app/accounts/service.py, and registration races."""
import threading

import pytest
from sqlalchemy import func, select

from app.accounts import service as accounts
from app.accounts.models import Community, Household, LoginSession, User
from app.errors import InvalidCredentials, Unauthenticated, ValidationFailed
from app.extensions import db
from tests.fixtures import PASSWORD, next_phone


def test_mask_phone_keeps_only_the_ends():
    assert accounts.mask_phone("13812345678") == "138****5678"
    assert accounts.mask_phone("123") == "***"


@pytest.mark.parametrize("typed, stored", [
    ("abcd-efgh-jk", "ABCDEFGHJK"), ("  oOIl2345ab ", "00112345AB"),
])
def test_invite_codes_are_read_forgivingly(typed, stored):
    assert accounts.normalise_invite_code(typed) == stored


def test_invite_code_with_confusable_letters_joins(resident):
    household = db.session.get(Household, resident.household_id)
    household.invite_code = "0011ABCDEF"
    db.session.commit()
    data = {"phone": next_phone(), "password": PASSWORD, "display_name": "王五", "household_invite_code": "oOIl-abcdef"}

    user, _ = accounts.register(data)

    assert user.household_id == resident.household_id


def test_new_households_get_distinct_codes_and_cards(make_resident):
    households = [db.session.get(Household, make_resident().household_id) for _ in range(5)]

    assert len({h.invite_code for h in households}) == 5
    assert len({h.card_number for h in households}) == 5
    assert all(len(h.card_number) == 12 and h.card_number.isdigit() for h in households)


def test_passwords_are_stored_hashed(resident):
    stored = db.session.get(User, resident.id).password_hash

    assert PASSWORD not in stored
    assert accounts._check_password(db.session.get(User, resident.id), PASSWORD)


def test_login_refuses_a_wrong_password_and_an_unknown_phone(resident):
    with pytest.raises(InvalidCredentials):
        accounts.login(resident.user.phone, "not-the-password")
    with pytest.raises(InvalidCredentials):
        accounts.login(next_phone(), PASSWORD)


def test_each_login_is_its_own_session(resident):
    accounts.login(resident.user.phone, PASSWORD)
    accounts.login(resident.user.phone, PASSWORD)
    db.session.flush()

    sessions = db.session.scalar(select(func.count()).select_from(LoginSession).where(LoginSession.user_id == resident.id))

    assert sessions == 3


def test_refresh_of_a_revoked_login_is_refused(resident):
    session_id = db.session.scalar(select(LoginSession.id).where(LoginSession.user_id == resident.id))
    accounts.revoke_session(session_id, "logout")

    with pytest.raises(Unauthenticated):
        accounts.refresh(resident.tokens["refresh_token"])


def test_staff_scope_is_checked(community):
    with pytest.raises(ValidationFailed) as refused:
        accounts.create_staff({"phone": next_phone(), "password": PASSWORD, "display_name": "x",
                               "role": "park_manager"})

    assert "park_id" in refused.value.extra["errors"]


def test_load_geography_is_idempotent():
    first = accounts.load_geography()
    counts = (db.session.scalar(select(func.count()).select_from(Community)),)

    second = accounts.load_geography()

    assert first > 0
    assert second == 0
    assert (db.session.scalar(select(func.count()).select_from(Community)),) == counts


def test_add_community_returns_the_existing_one():
    accounts.load_geography()
    street = "方松街道"

    first = accounts.add_community(street, "演示社区X", is_demo=True)
    again = accounts.add_community(street, "演示社区X", is_demo=True)

    assert first.id == again.id and first.is_demo


# ---------------------------------------------------------------- races


def run_threads(app, count, work):
    db.session.commit()  # on SQLite an open transaction here would hold the lock the threads need
    barrier = threading.Barrier(count)
    results = [None] * count

    def target(index):
        with app.app_context():
            barrier.wait()
            results[index] = work(index)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.committing
def test_concurrent_joins_never_overfill_a_household(app, resident):
    code = resident.user.household.invite_code
    household_id = resident.household_id
    for _ in range(5):  # 6 members: room for 2 more
        accounts.register({"phone": next_phone(), "password": PASSWORD, "display_name": "家人",
                           "household_invite_code": code})
        db.session.commit()
    phones = [next_phone() for _ in range(6)]

    def join(index):
        response = app.test_client().post("/api/v1/auth/register", json={
            "phone": phones[index], "password": PASSWORD, "display_name": "家人", "household_invite_code": code})
        return response.status_code, (response.get_json() or {}).get("code")

    results = run_threads(app, 6, join)

    assert sorted(results, key=str).count((201, None)) == 2, results
    assert [r for r in results if r[0] != 201] == [(409, "household_full")] * 4, results
    members = db.session.scalar(select(func.count()).select_from(User).where(User.household_id == household_id))
    assert members == 8


@pytest.mark.committing
def test_concurrent_registrations_of_one_phone_create_one_user(app, community):
    phone = next_phone()
    community_id = community.id

    def register(index):
        response = app.test_client().post("/api/v1/auth/register", json={
            "phone": phone, "password": PASSWORD, "display_name": "同号", "community_id": community_id})
        return response.status_code, (response.get_json() or {}).get("code")

    results = run_threads(app, 5, register)

    assert sorted(results, key=str) == [(201, None)] + [(409, "phone_taken")] * 4, results
    assert db.session.scalar(select(func.count()).select_from(User).where(User.phone == phone)) == 1
    households = db.session.scalar(select(func.count()).select_from(Household).where(
        Household.community_id == community_id))
    assert households == 1


@pytest.mark.committing
def test_concurrent_refreshes_of_one_token_rotate_it_once(app, resident):
    token = resident.tokens["refresh_token"]

    def refresh(index):
        response = app.test_client().post("/api/v1/auth/refresh", json={"refresh_token": token})
        return response.status_code

    results = run_threads(app, 4, refresh)

    assert sorted(results) == [200, 401, 401, 401], results
