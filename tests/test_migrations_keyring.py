"""0006_keyring carries every device's SECRET_KEY-derived secret and every code's digits into the encrypted columns."""
import hashlib
import hmac

import flask_migrate
import pytest
from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.integrations import service as integrations
from app.integrations.models import Integration
from app.rewards import service as rewards
from app.rewards.models import RedemptionCode
from tests.rewards.builders import clerk, fund, make_merchant, make_reward, merchant, reward  # noqa: F401  fixtures

BEFORE = "0005_shared_limits"


def derived_secret(integration_id: str, salt: str) -> str:
    """How a secret was derived from SECRET_KEY before 0006 (integrations.service.secret_of then)."""
    key = hmac.new(current_app.config["SECRET_KEY"].encode(), b"songjiang-carbon/integration-secret/v1",
                   hashlib.sha256).digest()
    return hmac.new(key, f"{integration_id}\x1f{salt}".encode(), hashlib.sha256).hexdigest()


@pytest.mark.committing
def test_upgrade_keeps_each_devices_secret_and_each_codes_digits(app, resident, clerk, reward, fund, factor_set):
    fund(resident.household_id, 500)
    live, live_digits = rewards.create_code(resident.user, reward.id, 1)
    used, used_digits = rewards.create_code(resident.user, reward.id, 1)
    rewards.redeem_code(used_digits, clerk.user.merchant_id, clerk.id)
    db.session.commit()
    live_id, used_id = live.id, used.id
    db.session.remove()

    try:
        flask_migrate.downgrade(revision=BEFORE)
        with db.engine.begin() as conn:  # a device registered before 0006: only its salt is stored
            conn.execute(text("INSERT INTO integrations (id, name, kind, source, secret_salt, active, created_at) "
                              "VALUES ('old-device', 'old', 'device', 'device', :salt, :true, '2026-01-01 00:00:00')"),
                         {"salt": "5a1t" * 16, "true": True})
            sealed = dict(conn.execute(text("SELECT id, code_sealed FROM redemption_codes")).all())
    finally:
        flask_migrate.upgrade()

    old = db.session.get(Integration, "old-device")
    assert integrations.secret_of(old) == derived_secret("old-device", "5a1t" * 16)
    assert old.secret_encrypted.startswith("dev:") and old.previous_secret_encrypted is None
    assert sealed[live_id] != live_digits  # the downgrade had put the digits back under the keystream
    assert rewards.unseal(db.session.get(RedemptionCode, live_id)) == live_digits
    assert rewards.unseal(db.session.get(RedemptionCode, used_id)) == used_digits


@pytest.mark.committing
def test_upgrade_with_a_new_secret_key_reads_the_old_one_from_legacy_secret_key(app, monkeypatch, resident, reward,
                                                                               fund, factor_set):
    """A service that ran on the built-in SECRET_KEY upgrades with a new one and the old in LEGACY_SECRET_KEY."""
    fund(resident.household_id, 500)
    live, live_digits = rewards.create_code(resident.user, reward.id, 1)
    db.session.commit()
    live_id, old_key = live.id, app.config["SECRET_KEY"]
    db.session.remove()

    try:
        flask_migrate.downgrade(revision=BEFORE)
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO integrations (id, name, kind, source, secret_salt, active, created_at) "
                              "VALUES ('old-device', 'old', 'device', 'device', :salt, :true, '2026-01-01 00:00:00')"),
                         {"salt": "5a1t" * 16, "true": True})
        expected = derived_secret("old-device", "5a1t" * 16)
        monkeypatch.setitem(app.config, "SECRET_KEY", "n" * 48)  # the new, random SECRET_KEY
        monkeypatch.setenv("LEGACY_SECRET_KEY", old_key)
    finally:
        flask_migrate.upgrade()

    assert integrations.secret_of(db.session.get(Integration, "old-device")) == expected
    assert rewards.unseal(db.session.get(RedemptionCode, live_id)) == live_digits
