"""Reward and redemption rules, called directly."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app.errors import InsufficientPoints
from app.extensions import db
from app.merchants.models import Merchant
from app.rewards import service
from app.rewards.models import RedemptionCode
from tests.rewards.builders import balance


def test_the_stored_code_reveals_the_digits_only_with_the_data_key_not_the_app_secret(app, resident, reward, fund,
                                                                                       monkeypatch):
    fund(resident.household_id, 500)

    code, digits = service.create_code(resident.user, reward.id, 1)

    assert digits not in (code.code_encrypted, code.code_hash)
    assert code.code_encrypted.startswith("dev:")  # the data key's id: no DATA_KEYS in the tests
    assert service.unseal(code) == digits
    monkeypatch.setitem(app.config, "SECRET_KEY", "another-secret-of-enough-length-0123456789")
    assert service.unseal(code) == digits


def test_a_refusal_is_raised_keeping_the_burned_code_in_the_same_transaction(resident, reward, clerk, fund):
    fund(resident.household_id, 150)
    (_, first), (second, second_digits) = (service.create_code(resident.user, reward.id, 1) for _ in range(2))
    service.redeem_code(first, clerk.user.merchant_id, clerk.id)

    with pytest.raises(InsufficientPoints) as refused:
        service.redeem_code(second_digits, clerk.user.merchant_id, clerk.id)

    assert refused.value.keep_writes  # the owner commits the burn although the request is refused
    assert db.session.scalar(select(RedemptionCode.state).where(RedemptionCode.id == second.id)) == "burned"
    assert balance(resident.household_id) == 50


def test_a_decided_code_replays_without_writing(resident, reward, clerk, fund):
    fund(resident.household_id, 500)
    _, digits = service.create_code(resident.user, reward.id, 1)
    first = service.redeem_code(digits, clerk.user.merchant_id, clerk.id)

    again = service.redeem_code(digits, clerk.user.merchant_id, clerk.id)

    assert first.created and not again.created and again.redemption.id == first.redemption.id
    assert balance(resident.household_id) == 400


def test_unknown_codes_are_code_not_found(clerk):
    for raw in ("", "0" * 20, "0" * 21, "abcdefghijabcdefghij"):
        with pytest.raises(service.CodeNotFound):
            service.redeem_code(raw, clerk.user.merchant_id, clerk.id)


def test_the_validity_window_includes_its_start_and_excludes_its_end(reward):
    merchant = db.session.get(Merchant, reward.merchant_id)
    start = datetime(2026, 6, 1, tzinfo=timezone.utc)
    reward.valid_from, reward.valid_until = start, start + timedelta(days=1)

    assert not service.is_available(reward, merchant, start - timedelta(microseconds=1))
    assert service.is_available(reward, merchant, start)
    assert not service.is_available(reward, merchant, start + timedelta(days=1))
    reward.active = False
    assert not service.is_available(reward, merchant, start)


def test_the_per_household_limit_counts_units_not_redemptions(resident, make_reward, clerk, fund):
    fund(resident.household_id, 1000)
    reward = make_reward(points_cost=10, per_household_limit=3)
    _, digits = service.create_code(resident.user, reward.id, 3)
    service.redeem_code(digits, clerk.user.merchant_id, clerk.id)

    with pytest.raises(service.LimitReached):
        service.create_code(resident.user, reward.id, 1)


def test_times_are_stored_and_shown_in_utc(merchant):
    shanghai_eight = datetime(2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))

    reward = service.create_reward(merchant, {"name": "券", "points_cost": 5, "stock": 1, "valid_from": shanghai_eight})

    assert reward.valid_from == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert reward.valid_from.utcoffset() == timedelta(0)
