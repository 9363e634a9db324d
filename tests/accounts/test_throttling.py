"""Rate limits on registration and login (API.md "Rate limits")."""
from sqlalchemy import func, select

from app.accounts.models import User
from tests.fixtures import PASSWORD, next_phone

PROBLEM = "application/problem+json"


def login(client, phone, password=PASSWORD):
    return client.post("/api/v1/auth/login", json={"phone": phone, "password": password})


def register(client, **fields):
    body = {"phone": next_phone(), "password": PASSWORD, "display_name": "李四", **fields}
    return client.post("/api/v1/auth/register", json=body)


def assert_rate_limited(response):
    assert response.status_code == 429, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    assert response.get_json()["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) > 0


def test_eleventh_failed_login_for_a_phone_is_rate_limited(client, resident):
    for _ in range(10):
        assert login(client, resident.user.phone, "wrong-password-1").status_code == 401

    response = login(client, resident.user.phone, "wrong-password-1")

    assert_rate_limited(response)
    assert int(response.headers["Retry-After"]) <= 15 * 60
    assert login(client, resident.user.phone).status_code == 429


def test_failed_logins_of_one_phone_do_not_lock_another(client, make_resident):
    victim, other = make_resident(), make_resident()
    for _ in range(10):
        login(client, victim.user.phone, "wrong-password-1")

    assert login(client, other.user.phone).status_code == 200
    assert login(client, other.user.phone, "wrong-password-1").status_code == 401


def test_successful_logins_do_not_count_as_failures(client, resident):
    for _ in range(9):
        assert login(client, resident.user.phone, "wrong-password-1").status_code == 401
    for _ in range(5):
        assert login(client, resident.user.phone).status_code == 200

    tenth_failure = login(client, resident.user.phone, "wrong-password-1")

    assert tenth_failure.status_code == 401
    assert_rate_limited(login(client, resident.user.phone, "wrong-password-1"))


def test_login_attempts_per_ip_are_limited(app, client, monkeypatch, resident):
    monkeypatch.setitem(app.config, "LOGIN_LIMIT", "3/minute")
    for _ in range(3):
        assert login(client, resident.user.phone).status_code == 200

    assert_rate_limited(login(client, resident.user.phone))


def test_registrations_per_ip_are_limited(app, client, monkeypatch, community):
    monkeypatch.setitem(app.config, "REGISTER_LIMIT", "3/minute")
    for _ in range(3):
        assert register(client, community_id=community.id).status_code == 201
    phone = next_phone()

    response = register(client, phone=phone, community_id=community.id)

    assert_rate_limited(response)
    assert db_count_users(phone) == 0


def test_sixty_registrations_per_minute_pass_and_the_sixty_first_is_limited(client, community):
    for _ in range(60):
        assert register(client, community_id=community.id).status_code == 201

    assert_rate_limited(register(client, community_id=community.id))


def test_failed_invite_codes_per_ip_are_limited(app, client, monkeypatch, resident):
    monkeypatch.setitem(app.config, "INVITE_FAILURE_LIMIT", "3/hour")
    for _ in range(3):
        assert register(client, household_invite_code="0000000000").status_code == 422

    response = register(client, household_invite_code=resident.user.household.invite_code)

    assert_rate_limited(response)


def test_good_invite_codes_do_not_count_as_failures(app, client, monkeypatch, resident):
    monkeypatch.setitem(app.config, "INVITE_FAILURE_LIMIT", "2/hour")
    code = resident.user.household.invite_code
    for _ in range(3):
        assert register(client, household_invite_code=code).status_code == 201

    assert register(client, household_invite_code="0000000000").status_code == 422


def db_count_users(phone):
    from app.extensions import db

    return db.session.scalar(select(func.count()).select_from(User).where(User.phone == phone))
