"""The ledger under real concurrency: separate threads, connections and commits."""
import threading

import pytest

from app.columns import new_id
from app.errors import InsufficientPoints
from app.extensions import db
from app.ledger import service as ledger
from app.ledger.models import LedgerAccount


def run_threads(app, count, work):
    """Run `work(index)` in `count` threads lined up on a barrier; return their results (or exceptions)."""
    # End this thread's transaction first: on SQLite an open one holds the write lock the threads wait for.
    db.session.commit()
    barrier = threading.Barrier(count)
    results = [None] * count

    def target(index):
        with app.app_context():
            barrier.wait()
            try:
                results[index] = work(index)
            except Exception as exc:  # reported to the test, which asserts on it
                db.session.rollback()
                results[index] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results


def balance_of(account_id):
    db.session.expire_all()
    return db.session.get(LedgerAccount, account_id).balance


@pytest.mark.committing
def test_thirty_concurrent_debits_of_ten_from_one_hundred_succeed_exactly_ten_times(app, resident):
    ledger.award(resident.household_id, 100, kind="action", ref_type="test", ref_id="seed")
    wallet_id = ledger.account_of("household", resident.household_id).id
    merchant_id = ledger.account_of("merchant", new_id()).id
    db.session.commit()

    def debit(index):
        wallet = db.session.get(LedgerAccount, wallet_id)
        merchant = db.session.get(LedgerAccount, merchant_id)
        try:
            ledger.transfer(wallet, merchant, 10, kind="redemption", ref_type="race", ref_id=str(index))
        except InsufficientPoints:
            db.session.rollback()
            return "refused"
        db.session.commit()
        return "ok"

    results = run_threads(app, 30, debit)

    assert results.count("ok") == 10, results
    assert results.count("refused") == 20, results
    assert balance_of(wallet_id) == 0
    assert balance_of(merchant_id) == 100
    assert ledger.verify() == []


@pytest.mark.committing
def test_concurrent_awards_and_debits_leave_the_exact_balance(app, resident):
    household_id = resident.household_id  # read here: threads must not touch this session's objects
    ledger.award(household_id, 50, kind="action", ref_type="test", ref_id="seed")
    wallet_id = ledger.account_of("household", household_id).id
    merchant_id = ledger.account_of("merchant", new_id()).id
    db.session.commit()

    def award_or_debit(index):
        if index % 2 == 0:
            ledger.award(household_id, 7, kind="action", ref_type="race", ref_id=str(index))
            db.session.commit()
            return "awarded"
        wallet = db.session.get(LedgerAccount, wallet_id)
        merchant = db.session.get(LedgerAccount, merchant_id)
        try:
            ledger.transfer(wallet, merchant, 12, kind="redemption", ref_type="race", ref_id=str(index))
        except InsufficientPoints:
            db.session.rollback()
            return "refused"
        db.session.commit()
        return "debited"

    results = run_threads(app, 40, award_or_debit)

    assert results.count("awarded") == 20, results
    debited = results.count("debited")
    assert debited + results.count("refused") == 20, results
    assert balance_of(wallet_id) == 50 + 20 * 7 - 12 * debited
    assert balance_of(merchant_id) == 12 * debited
    assert balance_of(wallet_id) >= 0
    assert ledger.verify() == []


@pytest.mark.committing
def test_concurrent_take_backs_never_take_more_than_the_wallet_holds(app, resident):
    household_id = resident.household_id
    ledger.award(household_id, 30, kind="action", ref_type="test", ref_id="seed")
    wallet_id = ledger.account_of("household", household_id).id
    db.session.commit()

    def take_back(index):
        taken = ledger.take_back(household_id, 10, kind="action_reversal", ref_type="race", ref_id=str(index))
        db.session.commit()
        return taken

    results = run_threads(app, 6, take_back)

    assert sorted(results) == [0, 0, 0, 10, 10, 10], results
    db.session.expire_all()
    wallet = db.session.get(LedgerAccount, wallet_id)
    assert (wallet.balance, wallet.clawback) == (0, 30)
    assert ledger.verify() == []


@pytest.mark.committing
def test_concurrent_first_credits_create_each_system_shard_once(app, make_resident):
    households = [make_resident().household_id for _ in range(8)]

    def award(index):
        ledger.award(households[index], 5, kind="action", ref_type="race", ref_id=str(index))
        db.session.commit()
        return "ok"

    results = run_threads(app, 8, award)

    assert results == ["ok"] * 8
    assert ledger.verify() == []


@pytest.mark.committing
def test_transactions_creating_the_same_new_account_at_once_all_succeed(app, is_postgres):
    """Eight transactions at a time each create their own wallet and one shared account that none of
    them finds (a new issuance shard, a campaign's first credits) in one upsert, then move points
    between them. None may fail: on PostgreSQL a second unique key on the accounts made two of them
    deadlock now and then (one waiting on the other's transaction while holding its speculative
    insertion), which a client saw as a 409."""
    rounds, count = 30, 8
    owners = [new_id() for _ in range(rounds)]
    for round_ in range(rounds):
        shared = ("issuance", owners[round_], 0)
        wallets = [("household", new_id()) for _ in range(count)]

        def credit(index):
            source, wallet = ledger.lock(shared, wallets[index])
            ledger.transfer(source, wallet, 5, kind="adjustment", ref_type="race", ref_id=f"{round_}-{index}")
            db.session.commit()
            return "ok"

        results = run_threads(app, count, credit)

        assert results == ["ok"] * count, results
        assert balance_of(ledger.account_id(*shared)) == -5 * count
    assert db.session.query(LedgerAccount).filter(LedgerAccount.owner_id.in_(owners)).count() == rounds  # one each
    assert ledger.verify() == []
