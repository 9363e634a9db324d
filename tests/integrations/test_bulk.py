"""The set-based batch path: the outcome of the one-by-one path, in a fixed number of statements, race-safe."""
import json
import time
from contextlib import contextmanager
from types import SimpleNamespace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from app.activities.models import Action, CapUsage
from app.auth import sign_request
from app.campaigns import service as campaigns
from app.campaigns.models import CampaignAward, CampaignHolding
from app.columns import utcnow
from app.district.models import DailyRollup, HouseholdMonth
from app.extensions import db
from app.integrations import bulk, service as integrations
from app.ledger import service as ledger
from app.ledger.kinds import EntryKind
from app.ledger.models import LedgerAccount, LedgerEntry, LotUse, PointLot
from tests.campaigns.conftest import budget_left
from tests.fixtures import race
from tests.integrations.conftest import ACTIONS_PATH, CST, card_of, record

STATEMENT_BUDGET = 30  # statements for a batch of any size; 26 for the batches below (one unknown action type)


@pytest.fixture
def campaign_of(factor_set, staff, community):
    def make(**overrides):
        data = {"name": "纸类回收月", "community_ids": [community.id], "action_types": ["recycling:paper"],
                "starts_at": utcnow() - timedelta(days=2), "ends_at": utcnow() + timedelta(days=10),
                "multiplier": Decimal("1.5"), "bonus_points": 0, "budget_points": 10_000, **overrides}
        campaign = campaigns.create_campaign(staff.user, data)
        campaigns.activate_campaign(campaign.id, staff.user)
        db.session.commit()
        return campaign

    return make


# ---------------------------------------------------------------- the same outcome as one by one


def snapshot(results: list[dict]) -> dict:
    """Everything a batch decides, with generated ids replaced by the external ids they belong to."""
    db.session.flush()
    fresh = {"populate_existing": True}
    actions = db.session.scalars(select(Action).execution_options(**fresh)).all()
    external = {a.id: a.external_id or a.id for a in actions}
    rows = {}
    for a in actions:
        receipt = json.loads(a.receipt) if a.receipt else None
        if receipt:
            receipt.pop("approved_at")
        rows[a.external_id] = (a.household_id, a.status, a.review_reason, a.credited_quantity, a.reduction_g,
                               a.verified, a.base_points, a.campaign_points, a.points, a.factor_id, receipt)
    # Issuance is one account kept in shards; which shard pays (the household's one by one, the batch's
    # in a batch) is not part of the outcome: its shards are compared as one, by their sums and entries.
    accounts = {a.id: (a.kind, a.owner_id, "*" if a.kind == "issuance" else a.shard) for a in db.session.scalars(
        select(LedgerAccount).execution_options(**fresh))}
    balances = {}
    for a in db.session.scalars(select(LedgerAccount).execution_options(**fresh)):
        if a.kind == "issuance":
            balance, clawback, seq = balances.get(accounts[a.id], (0, 0, 0))
            balances[accounts[a.id]] = (balance + a.balance, clawback + a.clawback, seq + a.seq)
        else:
            balances[accounts[a.id]] = (a.balance, a.clawback, a.seq)
    entries = sorted((accounts[e.account_id], *((None, None) if accounts[e.account_id][0] == "issuance"
                                                else (e.seq, e.balance_after)),
                      e.amount, e.kind, external.get(e.ref_id, e.ref_id), e.reason)
                     for e in db.session.scalars(select(LedgerEntry)))
    lots = sorted((accounts[lot.account_id], lot.amount, lot.remaining) for lot in db.session.scalars(
        select(PointLot).execution_options(**fresh)))
    lot_uses = sorted(u.amount for u in db.session.scalars(select(LotUse)))
    caps = sorted(tuple(r) for r in db.session.execute(
        select(CapUsage.household_id, CapUsage.factor_id, CapUsage.period, CapUsage.used_milli)))
    awards = sorted((w.campaign_id, w.seq, w.kind, w.household_id, w.points, w.uncut_points, w.cut,
                     external.get(w.action_id)) for w in db.session.scalars(select(CampaignAward)))
    holdings = sorted(tuple(r) for r in db.session.execute(select(CampaignHolding.__table__)))
    with db.session.begin_nested():
        pass  # releasing a savepoint writes the rollup notes taken so far (rollups._write_notes)
    days = sorted(tuple(r) for r in db.session.execute(select(DailyRollup.__table__)))
    months = sorted(tuple(r) for r in db.session.execute(select(HouseholdMonth.__table__)))
    replies = [{**r, "action_id": external[r["action_id"]]} if "action_id" in r else r for r in results]
    return {"results": replies, "actions": rows, "balances": balances, "entries": entries, "lots": lots,
            "lot_uses": lot_uses, "caps": caps, "awards": awards, "holdings": holdings, "daily_rollups": days,
            "household_months": months,
            "verify": ledger.verify()}


def through(path, integration, records) -> dict:
    """Run a batch in a savepoint, note what it did, and roll it back."""
    savepoint = db.session.begin_nested()
    try:
        return snapshot(path(integration, records))
    finally:
        savepoint.rollback()


def test_a_batch_has_the_outcome_of_recording_its_records_one_by_one(
    device, make_resident, campaign_of
):
    a, b, c, d = (make_resident() for _ in range(4))
    campaign_of(bonus_points=3, per_household_cap=120, budget_points=400)  # both cuts happen mid-batch
    campaign_of(name="回收周", action_types=["recycling"], multiplier=Decimal("1"), bonus_points=7,
                budget_points=1_000)
    earlier = [record("old-1", card_of(a), quantity="1")]
    earlier += [record(f"ha-{i}", card_of(a), quantity="1") for i in range(5)]  # a: median 1 over 5
    earlier += [record(f"hb-{i}", card_of(b), quantity="1") for i in range(4)]  # b: 4, one short of the rule
    assert {r["status"] for r in integrations._ingest_records_one_by_one(device.integration, earlier)} == {"created"}
    wallet_d = ledger.account_of("household", d.household_id)
    ledger.award(d.household_id, 50, kind=EntryKind.ADJUSTMENT, ref_type="test", ref_id="seed")
    ledger.take_back(d.household_id, 60, kind=EntryKind.ACTION_REVERSAL, ref_type="test", ref_id="seed")
    ledger.transfer(ledger.system_account("issuance", d.household_id), wallet_d, 40, kind=EntryKind.ADJUSTMENT,
                    ref_type="test", ref_id="seed")  # d holds 40 points in a lot and owes 10
    db.session.commit()
    old = (utcnow() - timedelta(days=40)).astimezone(CST).isoformat()
    batch = [
        record("old-1", card_of(a)),  # received in an earlier batch
        record("a-1", card_of(a), quantity="6"),  # > 5 x median: anomalous, pending
        record("a-2", card_of(a), quantity="5"),  # not more than 5 x: approved
        record("b-2", card_of(b), quantity="6"),  # anomalous only because b-1 was approved first in this batch
        record("b-1", card_of(b), quantity="1"),
        record("dup-x", card_of(b), quantity="2"), record("dup-x", card_of(b), quantity="3"),  # second: duplicate
        record("fix-1", card_of(b), unit="item"), record("fix-1", card_of(b), quantity="1"),  # rejected, then created
        record("c-1", card_of(c), quantity="30"), record("c-2", card_of(c), quantity="15"),
        record("c-3", card_of(c), quantity="10"),  # over the 50 kg daily cap after c-1 and c-2: held
        record("c-4", card_of(c), quantity="5"),  # exactly what is left: approved
        record("c-5", card_of(c), action_type="transit", variant="metro", unit="km", quantity="12.5"),
        record("d-1", card_of(d), quantity="1"), record("d-2", card_of(d), variant="pet", quantity="0.5"),
        record("e-1", "0000 0000 0000"),  # no such card
        record("e-2", card_of(a), action_type="levitation"),
        record("e-3", card_of(a), unit="kilogrammesxx"),  # 13 characters: longer than any unit
        record("e-4", card_of(a), action_type="waste_sorting", variant="correct_sort", unit="event",
               quantity="1.5"),  # a whole number is needed
        record("e-5", card_of(a), occurred_at=old),
        record("e-6", card_of(a), variant="granite"),
        record("e-7", card_of(a), action_type="walking", variant=None, unit="km"),  # residents only
        "not a record", {"external_id": "e-8"},
    ]

    one_by_one = through(integrations._ingest_records_one_by_one, device.integration, batch)
    at_once = through(integrations.ingest_records, device.integration, batch)

    assert at_once == one_by_one
    statuses = {r["external_id"]: r["status"] for r in one_by_one["results"] if r["external_id"]}
    assert statuses["old-1"] == "duplicate" and statuses["fix-1"] == "created"
    assert [r["status"] for r in one_by_one["results"]].count("rejected") == 10
    actions = one_by_one["actions"]
    assert [actions[x][2] for x in ("a-1", "a-2", "b-1", "b-2", "c-3")] == [
        "anomalous_quantity", None, None, "anomalous_quantity", "exceeds_cap"]
    assert actions["c-4"][1] == "approved" and actions["c-4"][3] == Decimal(5)
    assert {cut for *_, cut, _ in one_by_one["awards"]} >= {"household_cap", "budget"}
    held = {}  # what each household holds of each campaign: its action parts (no check-ins here)
    for campaign_id, _, kind, household_id, points, *_ in one_by_one["awards"]:
        held[(campaign_id, household_id)] = held.get((campaign_id, household_id), 0) + points
    assert one_by_one["holdings"] == sorted((c, h, p) for (c, h), p in held.items() if p)
    assert one_by_one["lot_uses"] == [10, 50]  # the setup's take-back, then d's 10 owed withheld
    assert one_by_one["verify"] == []
    assert one_by_one["daily_rollups"] and one_by_one["household_months"]


def test_a_batch_of_the_same_external_id_twice_in_input_order_reports_each(device, resident):
    results = integrations.ingest_records(device.integration, [
        record("z", card_of(resident), quantity="1"), record("y", card_of(resident), quantity="2"),
        record("z", card_of(resident), quantity="3"),
    ])

    assert [(r["external_id"], r["status"]) for r in results] == [("z", "created"), ("y", "created"),
                                                                  ("z", "duplicate")]
    stored = db.session.get(Action, results[0]["action_id"])
    assert stored.quantity == Decimal(1) and stored.points == 100
    assert ledger.account_of("household", resident.household_id).balance == 300


# ---------------------------------------------------------------- statements


@contextmanager
def counted_statements():
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def test_a_batch_of_500_takes_as_few_statements_as_a_batch_of_50(device, make_resident, campaign_of):
    households = [make_resident() for _ in range(50)]
    campaign_of(per_household_cap=100)

    def batch(prefix, size):
        records = [record(f"{prefix}-{i:03d}", card_of(households[i % 50]), quantity="0.1") for i in range(size)]
        return records + [record(f"{prefix}-000", card_of(households[0]), quantity="0.1"),  # a duplicate
                          record(f"{prefix}-x", "0000 0000 0000"),  # no such household
                          record(f"{prefix}-y", card_of(households[3]), action_type="levitation")]  # no such type

    first, small_batch, large_batch = batch("f", 50), batch("s", 50), batch("l", 497)
    integrations.ingest_records(device.integration, first)  # the cap usage rows now exist: they are updated
    db.session.flush()  # and the leaderboard job it staged is written

    with counted_statements() as small:
        integrations.ingest_records(device.integration, small_batch)
    with counted_statements() as large:
        results = integrations.ingest_records(device.integration, large_batch)

    assert len(results) == 500 and [r["status"] for r in results].count("created") == 497
    assert len(large) == len(small) <= STATEMENT_BUDGET
    assert ledger.verify() == []


def held_by_another_transaction(account_id) -> bool:
    """Whether this test's open transaction holds the account's row lock (asked from another connection)."""
    if db.engine.dialect.name != "postgresql":  # SQLite locks the whole database: no row to ask about
        return account_id in db.session.info.get(ledger.LOCKED, set())
    with db.engine.connect() as other:
        try:
            other.exec_driver_sql(f"SELECT id FROM ledger_accounts WHERE id = '{account_id}' FOR UPDATE NOWAIT")
            return False
        except OperationalError:
            return True


@pytest.mark.committing
def test_a_batch_locks_only_the_campaigns_that_may_count_its_records(device, make_resident, campaign_of):
    paper, pet = campaign_of(), campaign_of(name="塑料瓶回收周", action_types=["recycling:pet"])
    households = [make_resident() for _ in range(3)]
    paper_account, pet_account = (ledger.account_id("campaign", c.id) for c in (paper, pet))

    results = integrations.ingest_records(device.integration, [
        record(f"pet-{i}", card_of(h), variant="pet", quantity="0.5") for i, h in enumerate(households)])

    assert [r["status"] for r in results] == ["created"] * 3
    assert held_by_another_transaction(pet_account)
    assert not held_by_another_transaction(paper_account)  # a batch of paper records could run beside it
    db.session.rollback()

    integrations.ingest_records(device.integration, [record("p-1", card_of(households[0]))])
    assert held_by_another_transaction(paper_account) and not held_by_another_transaction(pet_account)
    db.session.rollback()


@pytest.mark.committing
def test_a_batch_leaves_the_campaign_account_free_until_it_values_its_records(device, make_resident, campaign_of,
                                                                               monkeypatch):
    """Every batch paying parts of a campaign waits for the others on its account: a batch takes it
    after its wallets, received ids, cap usage and anomaly history, just before it values its records."""
    campaign = campaign_of()
    account = ledger.account_id("campaign", campaign.id)
    households = [make_resident() for _ in range(3)]
    free_when_history_read = []
    read_history = bulk._approved_history

    def spying(actions):
        free_when_history_read.append(not held_by_another_transaction(account))
        return read_history(actions)

    monkeypatch.setattr(bulk, "_approved_history", spying)

    results = integrations.ingest_records(device.integration, [
        record(f"p-{i}", card_of(h), quantity="1") for i, h in enumerate(households)])

    assert [r["status"] for r in results] == ["created"] * 3
    assert free_when_history_read == [True]
    assert held_by_another_transaction(account)  # taken to pay the parts, until the commit
    db.session.commit()
    assert budget_left(campaign.id) == 10_000 - 3 * 50
    assert ledger.verify() == []


@pytest.mark.committing
def test_a_batch_pays_from_one_issuance_shard_whatever_its_households(device, make_resident):
    shards = [ledger.account_id("issuance", ledger.SYSTEM_OWNER, s) for s in range(ledger.SYSTEM_SHARDS)]
    ledger.lock(*[("issuance", ledger.SYSTEM_OWNER, s) for s in range(ledger.SYSTEM_SHARDS)])  # all exist
    db.session.commit()
    households = [make_resident() for _ in range(40)]  # their own shards: all 16, most likely several times

    results = integrations.ingest_records(device.integration, [
        record(f"one-{i}", card_of(h), quantity="1") for i, h in enumerate(households)])

    assert [r["status"] for r in results] == ["created"] * 40
    held = [shard for shard in shards if held_by_another_transaction(shard)]
    assert len(held) == 1  # another batch most likely takes another shard, and runs beside this one
    db.session.commit()
    paid_from = db.session.scalars(select(LedgerEntry.account_id).distinct().where(
        LedgerEntry.account_id.in_(shards), LedgerEntry.kind == "action")).all()
    assert paid_from == held
    assert db.session.scalar(select(func.sum(LedgerAccount.balance)).where(LedgerAccount.id.in_(shards))) == -4000
    assert ledger.verify() == []


# ---------------------------------------------------------------- races


def signed(app, device, records, stamp) -> tuple:
    """A race request: the body exactly as the test client will send it, signed for it."""
    body = {"records": records}
    raw = app.json.dumps(body).encode()
    headers = {"X-Integration-Id": device.id, "X-Timestamp": str(stamp),
               "X-Signature": sign_request(device.secret, str(stamp), "POST", ACTIONS_PATH, raw)}
    return ACTIONS_PATH, body, headers


@pytest.mark.committing
def test_concurrent_batches_over_the_same_households_credit_once_within_the_caps(app, client, device, make_resident):
    households = [make_resident() for _ in range(3)]
    household_ids = [h.household_id for h in households]
    # 2 kg of paper each; 30 records per household over the two batches, 20 of them in both: 60 kg sent
    # per household against the 50 kg daily cap, and ids in both batches are created once.
    first = [record(f"r-{h}-{i:02d}", card_of(households[h]), quantity="2") for h in range(3) for i in range(25)]
    second = [record(f"r-{h}-{i:02d}", card_of(households[h]), quantity="2") for h in range(3) for i in range(5, 30)]
    second.reverse()
    now = int(time.time())

    replies = race(app, [signed(app, device, first, now), signed(app, device, second, now - 1)])

    assert [status for status, _ in replies] == [200, 200]
    created = [r["external_id"] for _, body in replies for r in body["results"] if r["status"] == "created"]
    assert sorted(created) == sorted({r["external_id"] for r in first + second})
    db.session.remove()
    for household_id in household_ids:
        approved = db.session.scalars(select(Action).where(Action.household_id == household_id,
                                                           Action.status == "approved")).all()
        held = db.session.scalars(select(Action.review_reason).where(
            Action.household_id == household_id, Action.status == "pending")).all()
        assert sum(a.credited_quantity for a in approved) == Decimal(50)  # 25 records of 2 kg, the cap exactly
        assert held == ["exceeds_cap"] * 5
        assert ledger.account_of("household", household_id).balance == 5000
        assert db.session.scalar(select(func.max(CapUsage.used_milli)).where(
            CapUsage.household_id == household_id)) == 50_000
    assert ledger.verify() == []


def test_the_anomaly_rule_weighs_only_the_last_20_approvals_of_the_same_variant(device, make_resident):
    a, b = make_resident(), make_resident()

    def days_ago(days):
        return (utcnow() - timedelta(days=days)).astimezone(CST).isoformat()

    # 25 older approvals and 20 recent ones, 5 a day (50 kg, the daily cap, at most): a's last 20 are
    # 10 kg (median 10), b's are 2 kg (median 2); over all 45 the medians would be 2 and 10.
    earlier = []
    for person, older, recent in ((a, "2", "10"), (b, "10", "2")):
        earlier += [record(f"{person.household_id}-o{i}", card_of(person), quantity=older,
                           occurred_at=days_ago(14 - i // 5)) for i in range(25)]
        earlier += [record(f"{person.household_id}-r{i}", card_of(person), quantity=recent,
                           occurred_at=days_ago(6 - i // 5)) for i in range(20)]
    # a's newest approvals are 11 of another variant: counted with paper, a's median would be 0.5 kg
    earlier += [record(f"pet-{i}", card_of(a), variant="pet", quantity="0.5") for i in range(11)]
    earlier += [record(f"ev-{i}", card_of(b), action_type="ev_driving", variant=None, unit="km", quantity="10")
                for i in range(6)]  # a type without variants
    assert {r["status"] for r in integrations._ingest_records_one_by_one(device.integration, earlier)} == {"created"}
    db.session.commit()
    batch = [record("a-now", card_of(a), quantity="20"), record("b-now", card_of(b), quantity="20"),
             record("ev-now", card_of(b), action_type="ev_driving", variant=None, unit="km", quantity="51")]

    one_by_one = through(integrations._ingest_records_one_by_one, device.integration, batch)
    at_once = through(integrations.ingest_records, device.integration, batch)

    assert at_once == one_by_one
    assert one_by_one["actions"]["a-now"][1:3] == ("approved", None)  # 20 is not more than 5 x 10
    assert one_by_one["actions"]["b-now"][1:3] == ("pending", "anomalous_quantity")  # 20 > 5 x 2
    assert one_by_one["actions"]["ev-now"][1:3] == ("pending", "anomalous_quantity")  # 51 > 5 x 10
    keys = [SimpleNamespace(household_id=p.household_id, action_type="recycling", variant=v)
            for p in (a, b) for v in ("paper", "pet")]
    keys.append(SimpleNamespace(household_id=b.household_id, action_type="ev_driving", variant=None))
    read = bulk._approved_history(keys)  # however long the history, 20 rows a key at most, newest first
    assert {key: len(quantities) for key, quantities in read.items()} == {
        (a.household_id, "recycling", "paper"): 20, (a.household_id, "recycling", "pet"): 11,
        (b.household_id, "recycling", "paper"): 20, (b.household_id, "ev_driving", ""): 6}
    assert read[(b.household_id, "recycling", "paper")] == [Decimal(2)] * 20
