"""Factor sets, valuation, caps, review rules and reversals, called directly."""
import csv
import json
import threading
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from importlib import resources

import pytest
from sqlalchemy import func, select

from app.activities import factors, review, service as activities
from app.activities.models import Action, CapUsage, FactorRow, FactorSet, PublishedFactorSetImmutable
from app.district import rollups
from app.errors import InvalidState, NotFound, ValidationFailed
from app.extensions import db
from app.ledger import service as ledger
from tests.activities.conftest import ago, local, row, today_local

FACTOR_ROWS = list(csv.DictReader(
    resources.files("app").joinpath("data/factors.csv").read_text(encoding="utf-8").splitlines()))
RECORDING_SOURCE = {"resident": "self_reported", "staff": "staff", "device": "device", "import": "import"}


def floor(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_FLOOR))


def balance(household_id: str) -> int:
    return ledger.account_of("household", household_id).balance


# ---------------------------------------------------------------- valuation


@pytest.mark.parametrize("factor", FACTOR_ROWS, ids=lambda f: f"{f['action_type']}-{f['variant'] or 'none'}")
def test_valuation_is_the_floor_of_quantity_times_each_factor_of_factors_csv(factor, factor_set, resident,
                                                                              staff, record):
    quantity = Decimal("1") if factor["unit"] in ("item", "event") else Decimal("1.337")
    source = RECORDING_SOURCE[factor["sources"].split("|")[0]]
    actor = staff if source == "staff" else resident

    action = record(resident, action_type=factor["action_type"], variant=factor["variant"] or None,
                    quantity=quantity, unit=factor["unit"], source=source, actor_id=actor.id)
    if action.status == "pending":
        action = review.approve_action(action.id, staff.user)
        db.session.commit()

    assert action.status == "approved"
    assert action.credited_quantity == quantity
    assert action.reduction_g == floor(quantity * Decimal(factor["kgco2e_per_unit"]) * 1000)
    assert action.base_points == floor(quantity * Decimal(factor["points_per_unit"]))
    assert action.points == action.base_points and action.campaign_points == 0
    assert balance(resident.household_id) == action.points
    receipt = json.loads(action.receipt)
    assert receipt["factor_set"] == "SJ-2026.1"
    assert Decimal(receipt["kgco2e_per_unit"]) == Decimal(factor["kgco2e_per_unit"])
    assert receipt["reduction_g"] == action.reduction_g and receipt["cap_applied"] is None


def test_valuation_floors_per_action_not_per_household(factor_set, resident, make_staff, record):
    # walking: 4.87 points per km; 0.1 km gives 0.487 → 0 points, each time
    first = record(resident, action_type="walking", variant=None, quantity="0.1", unit="km")
    second = record(resident, action_type="walking", variant=None, quantity="0.1", unit="km")

    assert (first.status, second.status) == ("approved", "approved")
    assert first.base_points == second.base_points == 0
    assert first.reduction_g == second.reduction_g == 4  # 0.1 × 0.0487 × 1000 = 4.87
    assert balance(resident.household_id) == 0


def test_self_approvable_action_is_approved_at_once_but_never_verified(factor_set, resident, record):
    action = record(resident, action_type="walking", variant=None, quantity="3.2", unit="km")

    assert action.status == "approved"
    assert action.verified is False
    assert action.base_points == 15  # floor(3.2 × 4.87)
    assert rollups.household_reductions(resident.household_id) == {"reduction_g_total": 155,
                                                                   "verified_reduction_g_total": 0}


def test_staff_review_of_a_verifiable_row_verifies_the_reduction(factor_set, resident, staff, record):
    action = record(resident, quantity="2")

    review.approve_action(action.id, staff.user)
    db.session.commit()

    assert action.verified is True
    assert rollups.household_reductions(resident.household_id) == {"reduction_g_total": 2000,
                                                                   "verified_reduction_g_total": 2000}


# ---------------------------------------------------------------- factor sets in force


def test_the_set_in_force_is_chosen_by_the_shanghai_date_of_occurred_at(make_factor_set, resident, staff, record):
    today = today_local()
    old = make_factor_set("T-OLD", today - timedelta(days=60), [row(points_per_unit="10")])
    new = make_factor_set("T-NEW", today - timedelta(days=2), [row(points_per_unit="20")])
    boundary = today - timedelta(days=2)

    before = record(resident, action_type="tree_care", variant="watering", quantity="1",
                    occurred_at=local(boundary - timedelta(days=1), 23, 59))
    after = record(resident, action_type="tree_care", variant="watering", quantity="1",
                   occurred_at=local(boundary, 0, 1))
    for action in (before, after):
        review.approve_action(action.id, staff.user)
    db.session.commit()

    assert before.factor.factor_set.code == "T-OLD" and before.base_points == 10
    assert after.factor.factor_set.code == "T-NEW" and after.base_points == 20
    assert json.loads(after.receipt)["factor_set"] == "T-NEW"
    assert factors.set_in_force(today).code == "T-NEW"
    assert old.effective_until == boundary - timedelta(days=1)
    assert new.effective_until is None


def test_no_published_set_for_the_date_is_a_422_on_occurred_at(make_factor_set, resident, record):
    make_factor_set("T-LATER", today_local(), [row()], publish=True)

    with pytest.raises(ValidationFailed) as caught:
        record(resident, action_type="tree_care", variant="watering", quantity="1",
               occurred_at=local(today_local() - timedelta(days=1)))

    assert list(caught.value.extra["errors"]) == ["occurred_at"]


def test_a_draft_set_is_never_in_force(make_factor_set, resident, record):
    make_factor_set("T-DRAFT", today_local() - timedelta(days=40), [row()], publish=False)

    assert factors.set_in_force(today_local()) is None
    with pytest.raises(ValidationFailed):
        record(resident, action_type="tree_care", variant="watering", quantity="1")


def test_a_published_set_cannot_be_replaced_through_the_service(factor_set):
    data, problems = factors.parse_factor_csv(
        resources.files("app").joinpath("data/factors.csv").read_text(encoding="utf-8"))

    with pytest.raises(factors.FactorSetPublished):
        factors.create_factor_set(data)
    assert problems == []


def test_a_published_row_cannot_be_edited_even_through_the_orm(factor_set):
    factor = db.session.scalar(select(FactorRow).where(FactorRow.factor_set_id == factor_set.id).limit(1))

    factor.points_per_unit = Decimal("9999")
    with pytest.raises(PublishedFactorSetImmutable):
        db.session.flush()
    db.session.rollback()

    assert db.session.get(FactorRow, factor.id).points_per_unit != Decimal("9999")


def test_a_published_set_cannot_be_edited_deleted_or_extended_through_the_orm(factor_set):
    published = db.session.get(FactorSet, factor_set.id)
    published.effective_from = date(2020, 1, 1)
    with pytest.raises(PublishedFactorSetImmutable):
        db.session.flush()
    db.session.rollback()

    published = db.session.get(FactorSet, factor_set.id)
    published.rows.append(FactorRow(position=99, action_type="x", variant="", unit="kg", kgco2e_per_unit=1,
                                    points_per_unit=1, sources="staff", evidence="estimate", source="s"))
    with pytest.raises(PublishedFactorSetImmutable):
        db.session.flush()
    db.session.rollback()

    db.session.delete(db.session.get(FactorSet, factor_set.id))
    with pytest.raises(PublishedFactorSetImmutable):
        db.session.flush()
    db.session.rollback()


def test_a_draft_may_be_replaced_and_then_published_once(make_factor_set):
    make_factor_set("T-1", today_local(), [row()], publish=False)

    make_factor_set("T-1", today_local(), [row(), row(variant="pruning")], publish=False)
    published = factors.publish_factor_set("T-1")
    db.session.commit()

    assert [r.variant for r in published.rows] == ["watering", "pruning"]
    with pytest.raises(InvalidState):
        factors.publish_factor_set("T-1")


def test_two_published_sets_cannot_start_on_the_same_day(make_factor_set):
    make_factor_set("T-A", today_local(), [row()])

    make_factor_set("T-B", today_local(), [row()], publish=False)
    with pytest.raises(factors.EffectiveDateTaken):
        factors.publish_factor_set("T-B")


# ---------------------------------------------------------------- caps


def test_daily_cap_counts_several_actions_of_the_day_in_approval_order(factor_set, resident, staff, record):
    day = today_local() - timedelta(days=1)
    actions = [record(resident, quantity=q, occurred_at=local(day, 9 + i)) for i, q in enumerate(["30", "15", "10",
                                                                                                    "4"])]

    for action in reversed(actions):  # approval order decides, not report order
        review.approve_action(action.id, staff.user)
    db.session.commit()

    credited = [a.credited_quantity for a in actions]
    assert credited == [Decimal("21"), Decimal("15"), Decimal("10"), Decimal("4")]  # paper: 50 kg a day
    assert json.loads(actions[0].receipt)["cap_applied"] == "daily"
    assert json.loads(actions[0].receipt)["cap_remaining"] == {"daily": "0"}
    assert json.loads(actions[1].receipt)["cap_applied"] is None
    assert balance(resident.household_id) == 5000


def test_an_action_over_an_exhausted_cap_is_approved_with_nothing_credited(factor_set, resident, staff, record):
    day = today_local() - timedelta(days=1)
    first = record(resident, quantity="50", occurred_at=local(day, 9))
    second = record(resident, quantity="1", occurred_at=local(day, 10))

    review.approve_action(first.id, staff.user)
    review.approve_action(second.id, staff.user)
    db.session.commit()

    assert second.status == "approved"
    assert second.credited_quantity == Decimal("0")
    assert (second.points, second.reduction_g) == (0, 0)


def test_daily_cap_day_ends_at_midnight_in_shanghai(factor_set, resident, staff, record):
    day = today_local() - timedelta(days=2)
    late = record(resident, quantity="40", occurred_at=local(day, 23, 59))
    early = record(resident, quantity="40", occurred_at=local(day + timedelta(days=1), 0, 1))
    same_day = record(resident, quantity="40", occurred_at=local(day, 8, 0))

    for action in (late, early, same_day):
        review.approve_action(action.id, staff.user)
    db.session.commit()

    assert late.credited_quantity == Decimal("40")
    assert early.credited_quantity == Decimal("40")  # 16:01 UTC the previous day, a new Shanghai day
    assert same_day.credited_quantity == Decimal("10")


def test_monthly_cap_counts_across_days_of_the_month(make_factor_set, resident, staff, record):
    make_factor_set("T-CAPS", today_local() - timedelta(days=40), [row(daily_cap="5", monthly_cap="8")])
    today = today_local()
    days = [today, today - timedelta(days=1)] if today.day > 1 else [today - timedelta(days=1),
                                                                      today - timedelta(days=2)]
    kwargs = dict(action_type="tree_care", variant="watering")
    first = record(resident, quantity="5", occurred_at=min(local(days[1], 10), ago(minutes=1)), **kwargs)
    second = record(resident, quantity="5", occurred_at=min(local(days[0], 0, 5), ago(minutes=1)), **kwargs)

    for action in (first, second):
        review.approve_action(action.id, staff.user)
    db.session.commit()

    assert first.credited_quantity == Decimal("5")
    assert second.credited_quantity == Decimal("3")
    assert json.loads(second.receipt)["cap_applied"] == "monthly"
    assert json.loads(second.receipt)["cap_remaining"] == {"daily": "2", "monthly": "0"}


def test_monthly_only_cap_of_a_device_row(factor_set, resident, record):
    now = ago(minutes=3)
    kwargs = dict(action_type="energy_saving", variant="electricity", unit="kwh", source="import", actor_id=None,
                  integration_id="op-1")
    first = record(resident, quantity="40", occurred_at=now, external_id="e-1", **kwargs)
    second = record(resident, quantity="20", occurred_at=now, external_id="e-2", **kwargs)
    third = record(resident, quantity="1", occurred_at=now, external_id="e-3", **kwargs)

    assert (first.status, second.status) == ("approved", "approved")
    assert third.status == "pending" and third.review_reason == "exceeds_cap"
    used = db.session.scalar(select(CapUsage.used_milli).where(CapUsage.household_id == resident.household_id))
    assert used == 60_000


def test_caps_belong_to_the_household_not_the_member(factor_set, resident, make_resident, staff, record):
    from app.accounts.models import Household

    household = db.session.get(Household, resident.household_id)
    partner = make_resident(invite_code=household.invite_code)
    day = today_local() - timedelta(days=1)
    one = record(resident, quantity="30", occurred_at=local(day, 9))
    two = record(partner, quantity="30", occurred_at=local(day, 10))

    review.approve_action(one.id, staff.user)
    review.approve_action(two.id, staff.user)
    db.session.commit()

    assert two.credited_quantity == Decimal("20")
    assert two.resident_id == partner.id


# ---------------------------------------------------------------- device and import records


def test_device_record_is_approved_on_arrival_and_verified(factor_set, resident, record):
    action = record(resident, action_type="transit", variant="metro", quantity="12.5", unit="km", source="device",
                    actor_id=None, integration_id="dev-1", external_id="trip-1")

    assert action.status == "approved" and action.verified is True
    assert action.base_points == 58  # floor(12.5 × 4.67)
    assert balance(resident.household_id) == 58


def test_device_record_over_the_cap_waits_for_review_and_staff_credit_what_is_left(factor_set, resident, staff,
                                                                                   record):
    kwargs = dict(action_type="transit", variant="metro", unit="km", source="device", actor_id=None,
                  integration_id="dev-1")
    record(resident, quantity="50", external_id="t-1", **kwargs)

    over = record(resident, quantity="20", external_id="t-2", **kwargs)
    assert over.status == "pending" and over.review_reason == "exceeds_cap"
    assert over.points == 0

    review.approve_action(over.id, staff.user)
    db.session.commit()
    assert over.credited_quantity == Decimal("10")
    assert json.loads(over.receipt)["cap_applied"] == "daily"


def test_device_record_flagged_by_the_caller_waits_for_review(factor_set, resident, record):
    action = record(resident, action_type="transit", variant="bus", quantity="5", unit="km", source="import",
                    actor_id=None, integration_id="op-1", external_id="x-1", review_reason="anomalous_quantity")

    assert action.status == "pending" and action.review_reason == "anomalous_quantity"
    assert balance(resident.household_id) == 0


def test_same_external_id_of_one_integration_is_refused_by_the_database(factor_set, resident, record):
    from sqlalchemy.exc import IntegrityError

    kwargs = dict(action_type="transit", variant="bus", quantity="5", unit="km", source="device", actor_id=None,
                  integration_id="dev-1", external_id="same")
    record(resident, **kwargs)

    with pytest.raises(IntegrityError):
        with db.session.begin_nested():
            activities.record_action(household_id=resident.household_id, resident_id=None, occurred_at=ago(hours=1),
                                     **{k: (Decimal(v) if k == "quantity" else v) for k, v in kwargs.items()})
    assert balance(resident.household_id) == 13  # floor(5 × 2.69), credited once
    other = record(resident, **{**kwargs, "integration_id": "dev-2"})
    assert other.status == "approved"


@pytest.mark.parametrize("field,overrides", [
    ("action_type", {"action_type": "flying"}),
    ("variant", {"variant": "gold"}),
    ("variant", {"variant": None}),
    ("unit", {"unit": "g"}),
    ("quantity", {"quantity": Decimal("0")}),
    ("quantity", {"quantity": Decimal("1.2345")}),
    ("quantity", {"quantity": Decimal("1000000")}),
    ("occurred_at", {"occurred_at": ago(days=31)}),
    ("occurred_at", {"occurred_at": lambda: ago(minutes=-10)}),  # when the test runs, not when it is collected
    ("action_type", {"action_type": "waste_sorting", "variant": "correct_sort", "unit": "event",
                     "quantity": Decimal("1")}),
    ("resident_id", {"resident_id": "nobody"}),
])
def test_record_action_names_the_field_it_refuses(factor_set, resident, record, field, overrides):
    with pytest.raises(ValidationFailed) as caught:
        record(resident, **{k: v() if callable(v) else v for k, v in overrides.items()})

    assert field in caught.value.extra["errors"]
    assert db.session.scalar(select(func.count()).select_from(Action)) == 0


def test_whole_units_refuse_fractions(factor_set, resident, record):
    with pytest.raises(ValidationFailed) as caught:
        record(resident, action_type="single_use_refusal", variant="plastic_bag", unit="item", quantity="1.5")

    assert list(caught.value.extra["errors"]) == ["quantity"]


# ---------------------------------------------------------------- review rules


def test_reject_then_appeal_once(factor_set, resident, staff, record):
    action = record(resident)

    review.reject_action(action.id, staff.user, "Photo unreadable")
    review.appeal_action(action.id, resident.user, "Here is a clearer one")
    assert (action.status, action.appeal) == ("pending", True)
    review.reject_action(action.id, staff.user, "Still unreadable")

    with pytest.raises(review.AlreadyAppealed):
        review.appeal_action(action.id, resident.user, "Again")


@pytest.mark.parametrize("status,allowed", [
    ("pending", {"approve", "reject"}), ("approved", {"reverse"}), ("rejected", set()), ("reversed", set()),
])
def test_review_transitions_follow_the_state(factor_set, resident, staff, record, status, allowed):
    action = record(resident)
    if status in ("approved", "reversed"):
        review.approve_action(action.id, staff.user)
    if status == "reversed":
        review.reverse_action(action.id, staff.user, "mistake")
    if status == "rejected":
        review.reject_action(action.id, staff.user, "no")
    db.session.commit()
    moves = {
        "approve": lambda: review.approve_action(action.id, staff.user),
        "reject": lambda: review.reject_action(action.id, staff.user, "no"),
        "reverse": lambda: review.reverse_action(action.id, staff.user, "mistake"),
    }

    for name, move in moves.items():
        if name in allowed:
            continue
        with pytest.raises(InvalidState):
            move()
        db.session.rollback()


def test_staff_of_another_community_cannot_see_the_action(factor_set, resident, make_community, make_staff, record):
    elsewhere = make_staff("community_staff", community_ids=[make_community().id])
    action = record(resident)

    with pytest.raises(NotFound):
        review.approve_action(action.id, elsewhere.user)


# ---------------------------------------------------------------- reversal


def test_reversal_takes_back_points_and_frees_the_cap(factor_set, resident, staff, record):
    day = today_local() - timedelta(days=1)
    first = record(resident, quantity="50", occurred_at=local(day, 9))
    review.approve_action(first.id, staff.user)

    review.reverse_action(first.id, staff.user, "Duplicate report")
    second = record(resident, quantity="50", occurred_at=local(day, 10))
    review.approve_action(second.id, staff.user)
    db.session.commit()

    assert first.status == "reversed" and first.reversal_reason == "Duplicate report"
    assert second.credited_quantity == Decimal("50")
    assert balance(resident.household_id) == 5000
    assert rollups.household_reductions(resident.household_id)["reduction_g_total"] == 50_000


def test_reversal_of_spent_points_becomes_a_clawback_withheld_from_the_next_credit(factor_set, resident, staff,
                                                                                 record):
    action = record(resident, quantity="5")
    review.approve_action(action.id, staff.user)  # 500 points
    shop = ledger.account_of("merchant", "shop-1")
    ledger.transfer(ledger.account_of("household", resident.household_id), shop, 300, kind="redemption",
                    ref_type="test", ref_id="r-1")

    review.reverse_action(action.id, staff.user, "Fraud")
    wallet = ledger.account_of("household", resident.household_id)
    assert (wallet.balance, wallet.clawback) == (0, 300)

    later = record(resident, quantity="2")
    review.approve_action(later.id, staff.user)  # 200 points, all withheld
    assert (wallet.balance, wallet.clawback) == (0, 100)
    again = record(resident, quantity="1.5")
    review.approve_action(again.id, staff.user)  # 150 points, 100 withheld
    db.session.commit()

    wallet = ledger.account_of("household", resident.household_id)
    assert (wallet.balance, wallet.clawback) == (50, 0)
    assert later.points == 200  # the action still earned them; the wallet paid its debt
    assert ledger.verify() == []


# ---------------------------------------------------------------- the factors CLI


def _write(tmp_path, lines: list[str]):
    path = tmp_path / "factors.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


HEADER = ("factor_set,effective_from,action_type,variant,unit,kgco2e_per_unit,points_per_unit,daily_cap,"
          "monthly_cap,sources,self_approvable,verifiable,evidence,source")


def test_cli_import_with_bad_rows_reports_each_line_and_loads_nothing(app, tmp_path):
    path = _write(tmp_path, [
        HEADER,
        "T-9,2026-06-01,recycling,paper,kg,1.0,100,50,,resident|staff,false,true,estimate,ok",
        "T-9,2026-06-01,recycling,glass,kg,lots,31,30,,resident,false,true,estimate,bad factor",
        "T-9,2026-06-01,recycling,paper,kg,1.0,100,50,,resident,false,true,estimate,repeated",
        "T-9,2026-06-01,cycling,,km,0.05,5,20,,bike_shop,false,true,estimate,unknown source",
    ])

    result = app.test_cli_runner().invoke(args=["factors", "import", path])

    assert result.exit_code == 1
    assert "line 3: kgco2e_per_unit" in result.output
    assert "line 4: variant" in result.output
    assert "line 5: sources" in result.output
    assert not any(line.startswith("line 2:") for line in result.output.splitlines())
    assert "nothing loaded" in result.output
    assert db.session.scalar(select(func.count()).select_from(FactorSet)) == 0


def test_cli_import_then_publish(app, tmp_path):
    text = resources.files("app").joinpath("data/factors.csv").read_text(encoding="utf-8")
    path = tmp_path / "factors.csv"
    path.write_text(text, encoding="utf-8")
    runner = app.test_cli_runner()

    imported = runner.invoke(args=["factors", "import", str(path)])
    published = runner.invoke(args=["factors", "publish", "SJ-2026.1"])
    again = runner.invoke(args=["factors", "publish", "SJ-2026.1"])
    reimport = runner.invoke(args=["factors", "import", str(path)])

    assert imported.exit_code == 0, imported.output
    assert "21 rows" in imported.output
    assert published.exit_code == 0, published.output
    assert again.exit_code == 1 and "already published" in again.output
    assert reimport.exit_code == 1 and "published" in reimport.output
    assert factors.set_in_force(today_local()).code == "SJ-2026.1"


# ---------------------------------------------------------------- concurrency


@pytest.mark.committing
def test_concurrent_approvals_credit_the_exact_sum_within_the_cap(app, factor_set, resident, staff, is_postgres):
    count = 50 if is_postgres else 10
    day = today_local() - timedelta(days=1)
    ids = []
    for i in range(count):
        action = activities.record_action(
            household_id=resident.household_id, resident_id=resident.id, action_type="recycling", variant="paper",
            quantity=Decimal("7.5"), unit="kg", occurred_at=local(day, 8, i % 60), source="self_reported",
            actor_id=resident.id)
        ids.append(action.id)
    db.session.commit()
    barrier = threading.Barrier(count)
    statuses = []

    def approve(action_id):
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            reply = client.post(f"/api/v1/review/actions/{action_id}/approve", headers=staff.headers)
            statuses.append(reply.status_code)
            db.session.remove()

    threads = [threading.Thread(target=approve, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    db.session.expire_all()
    assert statuses == [200] * count
    actions = db.session.scalars(select(Action).where(Action.id.in_(ids))).all()
    credited = sum(a.credited_quantity for a in actions)
    assert credited == Decimal("50")  # paper's daily cap, though 7.5 × count were reported
    used = db.session.scalar(select(CapUsage.used_milli).where(CapUsage.household_id == resident.household_id))
    assert used == 50_000
    assert balance(resident.household_id) == sum(a.points for a in actions) == floor(credited * 100)
    assert ledger.verify() == []


@pytest.mark.committing
def test_reversals_racing_approvals_of_one_household_all_succeed(app, factor_set, resident, staff):
    day = today_local() - timedelta(days=1)

    def report(i):
        return activities.record_action(
            household_id=resident.household_id, resident_id=resident.id, action_type="recycling", variant="paper",
            quantity=Decimal("1"), unit="kg", occurred_at=local(day, 9, i), source="self_reported",
            actor_id=resident.id)

    approved = [report(i) for i in range(10)]
    for action in approved:
        review.approve_action(action.id, staff.user)
    pending = [report(i + 10).id for i in range(10)]
    approved = [a.id for a in approved]
    db.session.commit()
    barrier = threading.Barrier(20)
    statuses = []

    def call(path, body):
        with app.app_context():
            client = app.test_client()
            barrier.wait()
            statuses.append(client.post(path, json=body, headers=staff.headers).status_code)
            db.session.remove()

    threads = [threading.Thread(target=call, args=(f"/api/v1/review/actions/{a}/reverse", {"reason": "wrong bin"}))
               for a in approved]
    threads += [threading.Thread(target=call, args=(f"/api/v1/review/actions/{a}/approve", None)) for a in pending]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    db.session.expire_all()
    assert statuses == [200] * 20  # no deadlock turned into a 409
    assert balance(resident.household_id) == 1000
    used = db.session.scalar(select(CapUsage.used_milli).where(CapUsage.household_id == resident.household_id))
    assert used == 10_000
    assert ledger.verify() == []
