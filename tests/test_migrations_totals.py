"""0008_account_totals fills each account's earned and redeemed from the entries already written."""
import flask_migrate
import pytest
from sqlalchemy import text

from app.extensions import db
from app.ledger import service as ledger
from app.rewards import service as rewards
from tests.rewards.builders import clerk, fund, make_merchant, make_reward, merchant, reward  # noqa: F401  fixtures

BEFORE = "0007_job_leases"


@pytest.mark.committing
def test_upgrade_fills_each_wallets_lifetime_figures_from_its_entries(app, resident, clerk, reward, fund):
    fund(resident.household_id, 500)
    fund(resident.household_id, 70)
    for _ in range(2):  # 2 × 100 points redeemed
        _, digits = rewards.create_code(resident.user, reward.id, 1)
        rewards.redeem_code(digits, clerk.user.merchant_id, clerk.id)
    db.session.commit()
    household_id, merchant_id = resident.household_id, clerk.user.merchant_id
    before = ledger.wallet_summary(household_id)
    db.session.remove()

    try:
        flask_migrate.downgrade(revision=BEFORE)
        with db.engine.connect() as conn:
            columns = [row[1] for row in conn.execute(text("PRAGMA table_info(ledger_accounts)"))] \
                if conn.dialect.name == "sqlite" else list(conn.execute(text(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'ledger_accounts'")).scalars())
        assert "earned" not in columns  # the figures are gone: the upgrade must recompute them
    finally:
        flask_migrate.upgrade()

    assert before["lifetime_earned"] == 570 and before["lifetime_redeemed"] == 200
    after = ledger.wallet_summary(household_id)
    assert (after["lifetime_earned"], after["lifetime_redeemed"], after["balance"]) == (570, 200, 370)
    merchant_account = ledger.account_of("merchant", merchant_id)
    assert (merchant_account.earned, merchant_account.redeemed) == (0, -200)  # it received what was redeemed
    assert ledger.verify() == []
