"""Command line: create-admin, seed-demo, ledger verify."""
from sqlalchemy import func, select, text

from app.accounts.models import Community, Household, Street, User
from app.cli import DEMO_PASSWORD
from app.columns import new_id
from app.extensions import db
from app.ledger import service as ledger
from app.ledger.models import LedgerAccount, LedgerEntry
from tests.campaigns.conftest import earn, make_campaign  # noqa: F401  fixtures
from tests.fixtures import next_phone


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def count(model):
    return db.session.scalar(select(func.count()).select_from(model))


# ---------------------------------------------------------------- users create-admin


def test_create_admin_makes_a_district_admin_who_can_log_in(app, client):
    phone = next_phone()

    result = invoke(app, "users", "create-admin", "--phone", phone, "--password", "admin-pass-2026")

    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.phone == phone))
    assert user.role == "district_admin"
    assert phone not in result.output  # masked: 138****0000
    assert phone[-4:] in result.output
    response = client.post("/api/v1/auth/login", json={"phone": phone, "password": "admin-pass-2026"})
    assert response.status_code == 200
    assert response.get_json()["user"]["roles"] == ["district_admin"]


def test_create_admin_rejects_a_bad_phone(app):
    result = invoke(app, "users", "create-admin", "--phone", "12345", "--password", "admin-pass-2026")

    assert result.exit_code != 0
    assert "phone" in result.output
    assert db.session.scalar(select(User).where(User.phone == "12345")) is None


def test_create_admin_rejects_a_short_password(app):
    phone = next_phone()

    result = invoke(app, "users", "create-admin", "--phone", phone, "--password", "short")

    assert result.exit_code != 0
    assert "password" in result.output
    assert db.session.scalar(select(User).where(User.phone == phone)) is None


def test_create_admin_rejects_a_taken_phone(app, resident):
    result = invoke(app, "users", "create-admin", "--phone", resident.user.phone, "--password", "admin-pass-2026")

    assert result.exit_code != 0
    assert "already registered" in result.output
    assert db.session.get(User, resident.id).role == "resident"


# ---------------------------------------------------------------- seed-demo


def demo_counts():
    return {model.__name__: count(model) for model in (Street, Community, Household, User, LedgerAccount, LedgerEntry)}


def test_seed_demo_loads_geography_demo_communities_and_accounts(app, client):
    result = invoke(app, "seed-demo")

    assert result.exit_code == 0, result.output
    assert count(Street) >= 10
    demo = db.session.scalars(select(Community).where(Community.is_demo.is_(True))).all()
    assert len(demo) == 2
    real = db.session.scalars(select(Community).where(Community.is_demo.is_(False))).all()
    assert real
    for phone in ("13800000000", "13800000001", "13900000001", "13900000002"):
        response = client.post("/api/v1/auth/login", json={"phone": phone, "password": DEMO_PASSWORD})
        assert response.status_code == 200, phone
    staff = db.session.scalar(select(User).where(User.phone == "13800000001"))
    assert sorted(staff.community_ids) == sorted(c.id for c in demo)
    residents = db.session.scalars(select(User).where(User.phone.in_(["13900000001", "13900000002"]))).all()
    assert {r.household.community_id for r in residents} <= {c.id for c in demo}


def test_seed_demo_twice_is_safe(app):
    first = invoke(app, "seed-demo")
    after_first = demo_counts()

    second = invoke(app, "seed-demo")

    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert demo_counts() == after_first
    assert ledger.verify() == []


# ---------------------------------------------------------------- ledger verify


def test_ledger_verify_exits_0_on_a_sound_ledger(app, resident):
    ledger.award(resident.household_id, 30, kind="action", ref_type="test", ref_id=new_id())
    db.session.commit()

    result = invoke(app, "ledger", "verify")

    assert result.exit_code == 0, result.output
    assert "checks out" in result.output


def test_ledger_verify_exits_1_naming_the_tampered_account(app, resident):
    ledger.award(resident.household_id, 30, kind="action", ref_type="test", ref_id=new_id())
    wallet = ledger.account_of("household", resident.household_id)
    db.session.commit()
    db.session.execute(text("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = :id"), {"id": wallet.id})

    result = invoke(app, "ledger", "verify")

    assert result.exit_code == 1
    assert wallet.id in result.stderr
    assert "problem" in result.stderr


def test_ledger_verify_exits_1_naming_a_campaign_holding_that_differs_from_its_awards(app, make_campaign, resident,
                                                                                      earn):
    campaign = make_campaign(per_household_cap=100)
    earn(resident, "0.3")  # part 15
    assert invoke(app, "ledger", "verify").exit_code == 0
    db.session.execute(text("UPDATE campaign_holdings SET points = 0 WHERE campaign_id = :id"), {"id": campaign.id})

    result = invoke(app, "ledger", "verify")

    assert result.exit_code == 1
    assert f"campaign {campaign.id} household {resident.household_id}: holding 0 points, " \
           "its awards add up to 15" in result.stderr
