"""The ledger's rules, straight through app/ledger/service.py."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from app.columns import new_id, utcnow
from app.errors import Conflict, InsufficientPoints
from app.extensions import db
from app.ledger import service as ledger
from app.ledger.models import GENESIS, LedgerAccount, LedgerEntry, LotUse, PointLot


@pytest.fixture
def wallet(resident):
    return ledger.account_of("household", resident.household_id)


@pytest.fixture
def merchant_account():
    return ledger.account_of("merchant", new_id())


def fund(household_id, amount, **kw):
    ledger.award(household_id, amount, kind="action", ref_type="test", ref_id=new_id(), **kw)
    db.session.flush()


def entries_of(account):
    return db.session.scalars(
        select(LedgerEntry).where(LedgerEntry.account_id == account.id).order_by(LedgerEntry.seq)
    ).all()


def fresh(account):
    db.session.expire_all()
    return db.session.get(LedgerAccount, account.id)


def counts():
    return (
        db.session.scalar(select(func.count()).select_from(LedgerEntry)),
        db.session.scalar(select(func.count()).select_from(LotUse)),
        db.session.scalar(select(func.count()).select_from(PointLot)),
    )


# ---------------------------------------------------------------- accounts


def test_account_of_returns_the_same_account_each_time(resident):
    first = ledger.account_of("household", resident.household_id)
    second = ledger.account_of("household", resident.household_id)

    assert first.id == second.id
    assert (first.kind, first.balance, first.seq, first.head_hash) == ("household", 0, 0, GENESIS)


def test_system_account_shard_is_stable_for_a_key():
    first = ledger.system_account("issuance", "household-1")
    again = ledger.system_account("issuance", "household-1")

    assert first.id == again.id
    assert first.kind == "issuance" and first.owner_id == ledger.SYSTEM_OWNER
    assert 0 <= first.shard < ledger.SYSTEM_SHARDS


# ---------------------------------------------------------------- transfers


def test_transfer_moves_the_exact_amount_and_both_balances(resident, wallet, merchant_account):
    fund(resident.household_id, 100)

    moved = ledger.transfer(wallet, merchant_account, 37, kind="redemption", ref_type="redemption",
                            ref_id="r1", actor_id=resident.id, reason="a reward")
    db.session.flush()

    assert moved.amount == 37
    assert fresh(wallet).balance == 63
    assert fresh(merchant_account).balance == 37
    debit, credit = moved.debit_entry, moved.credit_entry
    assert (debit.amount, debit.balance_after, debit.account_id) == (-37, 63, wallet.id)
    assert (credit.amount, credit.balance_after, credit.account_id) == (37, 37, merchant_account.id)
    assert debit.transfer_id == credit.transfer_id == moved.id
    assert (debit.kind, debit.ref_type, debit.ref_id, debit.actor_id) == ("redemption", "redemption", "r1", resident.id)
    chain = entries_of(wallet)
    assert [e.seq for e in chain] == [1, 2]
    assert chain[0].prev_hash == GENESIS and chain[1].prev_hash == chain[0].hash
    assert fresh(wallet).head_hash == chain[1].hash
    assert ledger.verify() == []


def test_points_are_whole_positive_numbers(wallet, merchant_account):
    for amount in (0, -5, 1.5, "10"):
        with pytest.raises(ValueError):
            ledger.transfer(wallet, merchant_account, amount, kind="x", ref_type="t", ref_id="1")


def test_transfer_to_the_same_account_is_refused(wallet):
    with pytest.raises(ValueError):
        ledger.transfer(wallet, wallet, 1, kind="x", ref_type="t", ref_id="1")


def test_debit_beyond_the_balance_raises_and_writes_nothing(resident, wallet, merchant_account):
    fund(resident.household_id, 50)
    before = counts()

    with pytest.raises(InsufficientPoints):
        ledger.transfer(wallet, merchant_account, 51, kind="redemption", ref_type="t", ref_id="1")
    db.session.flush()

    assert counts() == before
    assert fresh(wallet).balance == 50
    assert fresh(merchant_account).balance == 0
    assert db.session.scalar(select(func.sum(PointLot.remaining)).where(PointLot.account_id == wallet.id)) == 50
    assert ledger.verify() == []


def test_a_debit_the_database_refuses_writes_no_entry(resident, wallet, merchant_account):
    # The kept row says 50; the row itself holds 10 (changed behind the session's back): the guarded
    # UPDATE refuses, and the entries (written by the same statement on PostgreSQL) are not written.
    fund(resident.household_id, 50)
    wallet, till = ledger.lock(("household", resident.household_id), ("merchant", merchant_account.owner_id))
    db.session.execute(text("UPDATE ledger_accounts SET balance = 10 WHERE id = :id"), {"id": wallet.id})
    entries_before = db.session.scalar(select(func.count()).select_from(LedgerEntry))

    with pytest.raises(InsufficientPoints):
        ledger.transfer(wallet, till, 30, kind="redemption", ref_type="t", ref_id="1")

    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == entries_before
    assert db.session.scalar(select(LedgerAccount.seq).where(LedgerAccount.id == wallet.id)) == wallet.seq


def test_a_credit_the_database_refuses_writes_no_entry_and_no_lot(resident, wallet):
    # The wallet's chain moved on behind the session's back: the seq guard refuses the credit, and
    # neither the entries nor the wallet's new lot (written with them on PostgreSQL) are written.
    fund(resident.household_id, 50)
    ledger.lock(*ledger.household_parties(resident.household_id))
    db.session.execute(text("UPDATE ledger_accounts SET seq = seq + 1 WHERE id = :id"), {"id": wallet.id})
    before = counts()

    with pytest.raises(Conflict):
        ledger.award(resident.household_id, 30, kind="action", ref_type="test", ref_id=new_id())

    assert counts() == before


def test_merchant_and_campaign_accounts_cannot_go_negative(merchant_account):
    campaign = ledger.account_of("campaign", new_id())

    with pytest.raises(InsufficientPoints):
        ledger.transfer(merchant_account, campaign, 1, kind="adjustment", ref_type="t", ref_id="1")
    with pytest.raises(InsufficientPoints):
        ledger.transfer(campaign, merchant_account, 1, kind="adjustment", ref_type="t", ref_id="1")


def test_issuance_may_go_negative_as_the_source_of_all_points(resident):
    issuance = ledger.system_account("issuance", resident.household_id)
    before = fresh(issuance).balance

    fund(resident.household_id, 25)

    assert fresh(issuance).balance == before - 25


def test_balance_check_constraint_refuses_a_negative_household_balance(wallet):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with db.session.begin_nested():
            db.session.execute(text("UPDATE ledger_accounts SET balance = -1 WHERE id = :id"), {"id": wallet.id})


# ---------------------------------------------------------------- award and take_back


def test_award_credits_the_wallet_from_issuance(resident, wallet):
    reached = ledger.award(resident.household_id, 40, kind="action", ref_type="action", ref_id="a1")
    db.session.flush()

    assert reached == 40
    assert fresh(wallet).balance == 40
    (entry,) = entries_of(wallet)
    assert (entry.amount, entry.kind, entry.ref_id) == (40, "action", "a1")
    assert ledger.verify() == []


def test_award_of_nothing_writes_nothing(resident):
    before = counts()

    assert ledger.award(resident.household_id, 0, kind="action", ref_type="action", ref_id="a1") == 0
    assert counts() == before


def test_take_back_beyond_the_balance_records_a_clawback(resident, wallet):
    fund(resident.household_id, 30)

    taken = ledger.take_back(resident.household_id, 50, kind="action_reversal", ref_type="action", ref_id="a1",
                             reason="reversed")
    db.session.flush()

    assert taken == 30
    account = fresh(wallet)
    assert (account.balance, account.clawback) == (0, 20)
    assert entries_of(wallet)[-1].amount == -30
    assert ledger.verify() == []


def test_take_back_of_an_empty_wallet_is_all_clawback(resident, wallet):
    before = counts()

    taken = ledger.take_back(resident.household_id, 15, kind="action_reversal", ref_type="action", ref_id="a1")
    db.session.flush()

    assert taken == 0
    assert counts() == before
    assert (fresh(wallet).balance, fresh(wallet).clawback) == (0, 15)


def test_award_withholds_an_outstanding_clawback(resident, wallet):
    ledger.take_back(resident.household_id, 25, kind="action_reversal", ref_type="action", ref_id="a1")

    first = ledger.award(resident.household_id, 10, kind="action", ref_type="action", ref_id="a2")
    second = ledger.award(resident.household_id, 40, kind="action", ref_type="action", ref_id="a3")
    db.session.flush()

    assert (first, second) == (0, 25)
    account = fresh(wallet)
    assert (account.balance, account.clawback) == (25, 0)
    recoveries = [e.amount for e in entries_of(wallet) if e.kind == "clawback_recovery"]
    assert recoveries == [-10, -15]
    assert ledger.verify() == []


def test_take_back_to_a_campaign_account(resident, wallet):
    campaign = ledger.account_of("campaign", new_id())
    fund(resident.household_id, 20)

    taken = ledger.take_back(resident.household_id, 8, kind="action_reversal", ref_type="action", ref_id="a1", to=campaign)
    db.session.flush()

    assert taken == 8
    assert (fresh(wallet).balance, fresh(campaign).balance) == (12, 8)


# ---------------------------------------------------------------- lots


def credit_lot(wallet, amount, expires_in_days):
    issuance = ledger.system_account("issuance", wallet.owner_id)
    moved = ledger.transfer(issuance, wallet, amount, kind="action", ref_type="test", ref_id=new_id(),
                            expires_at=utcnow() + timedelta(days=expires_in_days))
    db.session.flush()
    return db.session.scalar(select(PointLot).where(PointLot.transfer_id == moved.id))


def test_award_creates_a_lot_expiring_after_the_configured_months(app, resident, wallet):
    fund(resident.household_id, 12)

    (lot,) = db.session.scalars(select(PointLot).where(PointLot.account_id == wallet.id)).all()

    assert (lot.amount, lot.remaining) == (12, 12)
    months = app.config["POINTS_EXPIRY_MONTHS"]
    assert timedelta(days=months * 28) < lot.expires_at - utcnow() < timedelta(days=months * 31 + 1)


def test_debits_consume_the_lots_that_expire_first(wallet, merchant_account):
    late = credit_lot(wallet, 50, 300)
    early = credit_lot(wallet, 30, 10)
    middle = credit_lot(wallet, 20, 100)

    spend = ledger.transfer(wallet, merchant_account, 40, kind="redemption", ref_type="t", ref_id="1")
    db.session.flush()

    db.session.expire_all()
    assert [(lot.id, lot.amount, lot.remaining) for lot in (early, middle, late)] == [
        (early.id, 30, 0), (middle.id, 20, 10), (late.id, 50, 50)]  # what a lot was awarded stays
    uses = db.session.scalars(select(LotUse).where(LotUse.transfer_id == spend.id)).all()
    assert sorted((u.lot_id, u.amount) for u in uses) == sorted([(early.id, 30), (middle.id, 10)])
    assert ledger.verify() == []


def test_a_debit_leaves_the_lots_the_session_holds_as_it_wrote_them(wallet, merchant_account):
    early = credit_lot(wallet, 30, 10)
    late = credit_lot(wallet, 50, 300)

    spend = ledger.transfer(wallet, merchant_account, 35, kind="redemption", ref_type="t", ref_id="1")

    assert (early.remaining, late.remaining) == (0, 45)  # no expire_all: the objects were kept in step
    uses = db.session.scalars(select(LotUse).where(LotUse.transfer_id == spend.id)).all()
    assert sorted((u.lot_id, u.amount) for u in uses) == sorted([(early.id, 30), (late.id, 5)])
    assert all(len(u.id) == 32 and set(u.id) <= set("0123456789abcdef") for u in uses)
    assert len({u.id for u in uses}) == 2


def assert_untouched_after_refusal(wallet, *, lot_uses: int, balance: int):
    """After a refused debit is rolled back: no lot use written, the wallet's balance as it was."""
    db.session.rollback()
    db.session.expire_all()
    assert counts()[1] == lot_uses
    assert fresh(wallet).balance == balance


def test_a_debit_the_lots_cannot_cover_is_refused_and_takes_nothing(wallet, merchant_account):
    early = credit_lot(wallet, 30, 10)
    late = credit_lot(wallet, 50, 300)
    db.session.execute(text("UPDATE point_lots SET remaining = 5 WHERE id = :id"), {"id": late.id})
    db.session.commit()
    lot_uses = counts()[1]

    with pytest.raises(Conflict):
        ledger.transfer(wallet, merchant_account, 60, kind="redemption", ref_type="t", ref_id="1")

    assert_untouched_after_refusal(wallet, lot_uses=lot_uses, balance=80)
    assert (early.remaining, late.remaining) == (30, 5)


def test_a_debit_the_balance_cannot_cover_is_refused_and_spends_no_lot(wallet, merchant_account):
    lot = credit_lot(wallet, 30, 10)
    db.session.commit()
    lot_uses = counts()[1]
    wallet, till = ledger.lock(("household", wallet.owner_id), ("merchant", merchant_account.owner_id))
    # The row moved under the kept one: only the database's guard sees that 25 no longer fits.
    db.session.execute(text("UPDATE ledger_accounts SET balance = 20 WHERE id = :id"), {"id": wallet.id})

    with pytest.raises(InsufficientPoints):
        ledger.transfer(wallet, till, 25, kind="redemption", ref_type="t", ref_id="1")

    assert_untouched_after_refusal(wallet, lot_uses=lot_uses, balance=30)
    assert (lot.amount, lot.remaining) == (30, 30)


def test_restores_gives_the_same_lots_back(wallet, merchant_account):
    early = credit_lot(wallet, 30, 10)
    late = credit_lot(wallet, 50, 300)
    spend = ledger.transfer(wallet, merchant_account, 45, kind="redemption", ref_type="t", ref_id="1")
    lots_before = db.session.scalar(select(func.count()).select_from(PointLot))

    void = ledger.transfer(merchant_account, wallet, 45, kind="redemption_void", ref_type="t", ref_id="1",
                           restores=spend.id)
    db.session.flush()

    db.session.expire_all()
    assert (early.remaining, late.remaining) == (30, 50)
    assert db.session.scalar(select(func.count()).select_from(PointLot)) == lots_before
    back = db.session.scalars(select(LotUse).where(LotUse.transfer_id == void.id)).all()
    assert sorted((u.lot_id, u.amount) for u in back) == sorted([(early.id, -30), (late.id, -15)])
    assert fresh(wallet).balance == 80
    assert ledger.verify() == []


def test_partial_restore_returns_part_of_the_lots(wallet, merchant_account):
    early = credit_lot(wallet, 30, 10)
    spend = ledger.transfer(wallet, merchant_account, 30, kind="redemption", ref_type="t", ref_id="1")

    ledger.transfer(merchant_account, wallet, 10, kind="redemption_void", ref_type="t", ref_id="1",
                    restores=spend.id)
    db.session.flush()

    db.session.expire_all()
    assert early.remaining == 10
    assert ledger.verify() == []


def test_from_lot_takes_exactly_that_lot(wallet):
    early = credit_lot(wallet, 30, 10)
    late = credit_lot(wallet, 50, 300)
    expiry = ledger.system_account("expiry", wallet.owner_id)

    ledger.transfer(wallet, expiry, 50, kind="expiry", ref_type="lot", ref_id=late.id, from_lot=late.id)
    db.session.flush()

    db.session.expire_all()
    assert (early.remaining, late.amount, late.remaining) == (30, 50, 0)
    assert fresh(wallet).balance == 30
    assert ledger.verify() == []


# ---------------------------------------------------------------- wallet summary and pages


def test_wallet_summary_counts_earned_redeemed_and_expiring(resident, wallet, merchant_account):
    credit_lot(wallet, 30, 10)
    fund(resident.household_id, 70)
    spend = ledger.transfer(wallet, merchant_account, 25, kind="redemption", ref_type="t", ref_id="1")
    ledger.transfer(merchant_account, wallet, 5, kind="redemption_void", ref_type="t", ref_id="1", restores=spend.id)
    db.session.flush()

    summary = ledger.wallet_summary(resident.household_id)

    assert summary == {"balance": 80, "clawback_points": 0, "lifetime_earned": 100, "lifetime_redeemed": 20,
                       "expiring_30d": 10}


def test_wallet_summary_reads_a_restore_the_session_has_not_flushed(resident, wallet, merchant_account):
    credit_lot(wallet, 30, 10)
    spend = ledger.transfer(wallet, merchant_account, 10, kind="redemption", ref_type="t", ref_id="1")
    ledger.transfer(merchant_account, wallet, 4, kind="redemption_void", ref_type="t", ref_id="1", restores=spend.id)

    summary = ledger.wallet_summary(resident.household_id)

    assert (summary["balance"], summary["expiring_30d"]) == (24, 24)  # 30 - 10 + 4, the lot given back


def test_a_wallet_never_credited_reads_as_empty_and_is_not_created_by_the_read():
    household_id = new_id()  # no wallet yet
    accounts = db.session.scalar(select(func.count()).select_from(LedgerAccount))

    summary = ledger.wallet_summary(household_id)

    assert summary == {"balance": 0, "clawback_points": 0, "lifetime_earned": 0, "lifetime_redeemed": 0,
                       "expiring_30d": 0}
    assert db.session.scalar(select(func.count()).select_from(LedgerAccount)) == accounts


def test_entries_page_walks_newest_first_without_gaps(resident, wallet):
    for _ in range(5):
        fund(resident.household_id, 1)

    first = ledger.entries_page(wallet.id, 2, None)
    seen = [e.id for e in first[:2]]
    cursor = (first[1].created_at, first[1].id)
    while True:
        rows = ledger.entries_page(wallet.id, 2, cursor)
        seen += [e.id for e in rows[:2]]
        if len(rows) <= 2:
            break
        cursor = (rows[1].created_at, rows[1].id)

    expected = [e.id for e in sorted(entries_of(wallet), key=lambda e: (e.created_at, e.id), reverse=True)]
    assert seen == expected


# ---------------------------------------------------------------- verification


@pytest.fixture
def sound_ledger(resident, wallet, merchant_account):
    fund(resident.household_id, 100)
    ledger.transfer(wallet, merchant_account, 40, kind="redemption", ref_type="t", ref_id="1")
    db.session.flush()
    assert ledger.verify() == []
    return wallet


def test_verify_is_empty_on_a_sound_ledger(sound_ledger):
    assert ledger.verify() == []


def test_verify_names_an_entry_whose_amount_was_edited(sound_ledger):
    entry = entries_of(sound_ledger)[-1]
    db.session.execute(text("UPDATE ledger_entries SET amount = amount + 1 WHERE id = :id"), {"id": entry.id})

    problems = ledger.verify()

    assert any(entry.id in p and "altered" in p for p in problems), problems
    assert any(sound_ledger.id in p for p in problems)
    assert any(entry.transfer_id in p for p in problems)


def test_verify_names_an_entry_deleted_from_a_chain(sound_ledger):
    first, second = entries_of(sound_ledger)
    db.session.execute(text("DELETE FROM ledger_entries WHERE id = :id"), {"id": first.id})

    problems = ledger.verify()

    assert any(sound_ledger.id in p and "missing" in p for p in problems), problems
    assert any(first.transfer_id in p for p in problems)


def test_verify_names_the_newest_entry_deleted(sound_ledger):
    newest = entries_of(sound_ledger)[-1]
    db.session.execute(text("DELETE FROM ledger_entries WHERE id = :id"), {"id": newest.id})

    problems = ledger.verify()

    assert any(sound_ledger.id in p and "chain head" in p for p in problems), problems


def test_verify_names_a_cached_balance_that_was_edited(sound_ledger):
    db.session.execute(text("UPDATE ledger_accounts SET balance = balance + 500 WHERE id = :id"),
                       {"id": sound_ledger.id})

    problems = ledger.verify()

    assert any(sound_ledger.id in p and "cached balance 560" in p for p in problems), problems


def test_verify_names_lots_that_disagree_with_the_balance(sound_ledger):
    db.session.execute(text("UPDATE point_lots SET remaining = remaining - 1 WHERE account_id = :id"),
                       {"id": sound_ledger.id})

    problems = ledger.verify()

    assert any(sound_ledger.id in p and "lots" in p for p in problems), problems


def test_verify_catches_an_edit_that_keeps_the_sums_consistent(sound_ledger, merchant_account):
    """Both sides of a transfer and both balances edited together: only the hash chain can tell."""
    debit = entries_of(sound_ledger)[-1]
    for sql in (
        "UPDATE ledger_entries SET amount = amount + 10, balance_after = balance_after + 10 WHERE id = :d",
        "UPDATE ledger_entries SET amount = amount - 10, balance_after = balance_after - 10 "
        "WHERE transfer_id = :t AND id <> :d",
        "UPDATE ledger_accounts SET balance = balance + 10 WHERE id = :w",
        "UPDATE ledger_accounts SET balance = balance - 10 WHERE id = :m",
        "UPDATE point_lots SET remaining = remaining + 10 WHERE account_id = :w",
    ):
        db.session.execute(text(sql), {"d": debit.id, "t": debit.transfer_id, "w": sound_ledger.id,
                                       "m": merchant_account.id})

    problems = ledger.verify()

    assert any(debit.id in p and "altered" in p for p in problems), problems


def test_a_transfer_of_a_kind_outside_the_vocabulary_is_refused(resident, merchant_account):
    wallet = ledger.account_of("household", resident.household_id)

    with pytest.raises(ValueError):
        ledger.transfer(ledger.system_account("issuance", resident.household_id), wallet, 5, kind="bonus_typo",
                        ref_type="t", ref_id="1")


def test_every_earning_kind_counts_in_lifetime_earned(resident):
    from app.ledger.kinds import EntryKind, Meaning

    credits = [kind for kind in EntryKind if kind.meaning is Meaning.EARNING and kind not in (
        EntryKind.ACTION_REVERSAL, EntryKind.CAMPAIGN_REVERSAL, EntryKind.CLAWBACK_RECOVERY)]
    for index, kind in enumerate(credits):
        ledger.award(resident.household_id, 10, kind=kind, ref_type="test", ref_id=str(index))

    assert ledger.wallet_summary(resident.household_id)["lifetime_earned"] == 10 * len(credits)


def test_writing_to_an_account_without_its_lock_is_refused(resident):
    wallet = ledger.account_of("household", resident.household_id)
    db.session.info.pop(ledger.LOCKED, None)

    with pytest.raises(AssertionError):
        ledger._append(wallet, 5, "t1", utcnow(), kind="adjustment", ref_type="t", ref_id="1")
