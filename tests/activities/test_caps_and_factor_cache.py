"""The approval hot path: cap usage at its boundaries, and the factor rows each process keeps."""
import json
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select, update

from app.activities import factors
from app.activities.models import CapUsage, FactorSet
from app.activities.review import HELD_OVER_CAP
from app.columns import utcnow
from app.extensions import db
from app.ledger import service as ledger
from tests.activities.conftest import ago, row, today_local


def _used(household_id) -> dict[str, int]:
    return dict(db.session.execute(
        select(CapUsage.period, CapUsage.used_milli).where(CapUsage.household_id == household_id)
        .execution_options(populate_existing=True)
    ).all())


def _balance(household_id) -> int:
    db.session.expire_all()
    return ledger.account_of("household", household_id).balance


def _walk(record, resident, km: str):
    return record(resident, action_type="walking", variant=None, quantity=km, unit="km")


# ---------------------------------------------------------------- caps at their boundaries


def test_a_walk_that_reaches_the_daily_cap_exactly_is_credited_whole_and_the_next_gets_nothing(
        factor_set, resident, record):
    first = _walk(record, resident, "9.5")
    to_the_cap = _walk(record, resident, "0.5")
    beyond = _walk(record, resident, "0.2")

    assert (first.credited_quantity, to_the_cap.credited_quantity, beyond.credited_quantity) == (
        Decimal("9.5"), Decimal("0.5"), Decimal("0"))
    assert (to_the_cap.points, beyond.points) == (2, 0)  # floor(0.5 × 4.87), nothing past the cap
    assert beyond.status == "approved"
    assert json.loads(beyond.receipt)["cap_applied"] == "daily" and json.loads(to_the_cap.receipt)["cap_applied"] is None
    assert list(_used(resident.household_id).values()) == [10_000]
    assert _balance(resident.household_id) == first.points + to_the_cap.points
    assert ledger.verify() == []


def test_a_walk_across_the_daily_cap_is_cut_to_what_is_left(factor_set, resident, record):
    _walk(record, resident, "9.5")

    cut = _walk(record, resident, "1.2")

    assert cut.credited_quantity == Decimal("0.5") and cut.points == 2
    assert json.loads(cut.receipt)["cap_remaining"] == {"daily": "0"}
    assert list(_used(resident.household_id).values()) == [10_000]


def test_the_tighter_of_two_caps_cuts_and_both_count_the_same_credit(make_factor_set, resident, record):
    make_factor_set("T-CAPS", today_local() - timedelta(days=40),
                    [row(daily_cap="5", monthly_cap="4", sources=["staff", "device"])])
    staff_record = lambda q: record(resident, action_type="tree_care", variant="watering", quantity=q,  # noqa: E731
                                    unit="kg", source="staff")

    first, second, third = staff_record("3"), staff_record("3"), staff_record("1")

    assert [a.credited_quantity for a in (first, second, third)] == [Decimal("3"), Decimal("1"), Decimal("0")]
    assert json.loads(second.receipt)["cap_applied"] == "monthly"
    assert sorted(_used(resident.household_id).values()) == [4_000, 4_000]  # the day's row and the month's


def test_a_device_record_over_what_the_cap_allows_is_held_and_counts_nothing(make_factor_set, resident, record):
    make_factor_set("T-CAPS", today_local() - timedelta(days=40),
                    [row(daily_cap="5", monthly_cap="8", sources=["staff", "device"])])
    device = lambda q: record(resident, action_type="tree_care", variant="watering", quantity=q, unit="kg",  # noqa: E731
                              source="device", actor_id=None)
    device("4")

    held = device("2")
    fits = device("1")

    assert held.status == "pending" and held.review_reason == HELD_OVER_CAP and held.points == 0
    assert fits.status == "approved" and fits.credited_quantity == Decimal("1")
    assert sorted(_used(resident.household_id).values()) == [5_000, 5_000]


def test_a_reversal_gives_the_cap_back(factor_set, resident, record, staff):
    from app.activities import review

    walk = _walk(record, resident, "10")
    review.reverse_action(walk.id, staff.user, "录入错误")
    db.session.commit()

    again = _walk(record, resident, "10")

    assert again.credited_quantity == Decimal("10")
    assert list(_used(resident.household_id).values()) == [10_000]
    assert ledger.verify() == []


# ---------------------------------------------------------------- factor rows kept per process


def _published_elsewhere(code: str) -> None:
    """Another process publishes `code`: nothing in this process hears of it."""
    db.session.execute(update(FactorSet).where(FactorSet.code == code).values(
        status="published", published_at=utcnow(), published_from=FactorSet.effective_from))
    db.session.commit()


def test_a_set_published_by_another_worker_is_in_force_here_within_the_cache_bound(
        make_factor_set, resident, record, app, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(factors, "_clock", lambda: now[0])
    monkeypatch.setitem(app.config, "FACTOR_SET_CACHE_SECONDS", 5)
    old = make_factor_set("T-OLD", today_local() - timedelta(days=40), [row(points_per_unit="10")])
    make_factor_set("T-NEW", today_local() - timedelta(days=3), [row(points_per_unit="20")], publish=False)
    before = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")
    _published_elsewhere("T-NEW")

    now[0] += 4.9
    within = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")
    now[0] += 0.2
    after = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")

    assert before.factor.factor_set_id == old.id and before.base_points == 10
    assert within.factor.factor_set_id == old.id and within.base_points == 10
    assert after.factor.factor_set.code == "T-NEW" and after.base_points == 20
    assert json.loads(after.receipt)["factor_set"] == "T-NEW"


def test_without_the_cache_a_set_published_elsewhere_is_in_force_for_the_very_next_action(
        make_factor_set, resident, record, app, monkeypatch):
    monkeypatch.setitem(app.config, "FACTOR_SET_CACHE_SECONDS", 0)
    make_factor_set("T-OLD", today_local() - timedelta(days=40), [row(points_per_unit="10")])
    make_factor_set("T-NEW", today_local() - timedelta(days=3), [row(points_per_unit="20")], publish=False)
    before = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")
    _published_elsewhere("T-NEW")

    after = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")

    assert (before.base_points, after.base_points) == (10, 20)


def test_a_set_published_in_this_process_is_in_force_from_its_commit(make_factor_set, resident, record):
    make_factor_set("T-OLD", today_local() - timedelta(days=40), [row(points_per_unit="10")])
    make_factor_set("T-NEW", today_local() - timedelta(days=3), [row(points_per_unit="20")], publish=False)
    before = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")
    factors.publish_factor_set("T-NEW")
    db.session.commit()

    after = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")

    assert (before.base_points, after.base_points) == (10, 20)


def test_a_publication_rolled_back_leaves_the_old_set_in_force(make_factor_set, resident, record):
    make_factor_set("T-OLD", today_local() - timedelta(days=40), [row(points_per_unit="10")])
    make_factor_set("T-NEW", today_local() - timedelta(days=3), [row(points_per_unit="20")], publish=False)
    factors.publish_factor_set("T-NEW")
    assert factors.resolve_factor("tree_care", "watering", "kg", ago(hours=1), "staff", {}).points_per_unit == 20
    db.session.rollback()

    after = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")

    assert (after.factor.factor_set.code, after.base_points) == ("T-OLD", 10)


def test_an_action_dated_before_the_new_set_keeps_the_old_one(make_factor_set, resident, record):
    make_factor_set("T-OLD", today_local() - timedelta(days=40), [row(points_per_unit="10")])
    make_factor_set("T-NEW", today_local() - timedelta(days=3), [row(points_per_unit="20")])

    older = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff",
                   occurred_at=ago(days=10))
    newer = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")

    assert (older.factor.factor_set.code, older.base_points) == ("T-OLD", 10)
    assert (newer.factor.factor_set.code, newer.base_points) == ("T-NEW", 20)


def test_a_publication_rolled_back_and_redone_with_other_rows_is_not_confused_with_the_first(
        make_factor_set, resident, record):
    make_factor_set("T-DRAFT", today_local() - timedelta(days=5), [row(points_per_unit="10")], publish=False)
    savepoint = db.session.begin_nested()
    factors.publish_factor_set("T-DRAFT")
    assert factors.resolve_factor("tree_care", "watering", "kg", ago(hours=1), "staff", {}).points_per_unit == 10
    savepoint.rollback()
    make_factor_set("T-DRAFT", today_local() - timedelta(days=5), [row(points_per_unit="30")])

    action = record(resident, action_type="tree_care", variant="watering", quantity="1", unit="kg", source="staff")

    assert action.base_points == 30


def _queries_resolving_walking():
    from sqlalchemy import event

    seen = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        found = factors.resolve_factor("walking", None, "km", ago(hours=1), "resident", {})
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert found.factor_set.code == "SJ-2026.1" and found.daily_cap == Decimal("10")
    return [statement for statement in seen if not statement.startswith("SAVEPOINT")]  # the test's own


def test_resolving_a_row_costs_no_query_once_the_set_in_force_is_known(factor_set, resident, record):
    _walk(record, resident, "0.1")  # the set's rows and the set in force today are read once by this process

    assert _queries_resolving_walking() == []


def test_without_the_cache_resolving_a_row_costs_one_query_of_one_id(factor_set, resident, record, app,
                                                                     monkeypatch):
    monkeypatch.setitem(app.config, "FACTOR_SET_CACHE_SECONDS", 0)
    _walk(record, resident, "0.1")

    queries = _queries_resolving_walking()

    assert len(queries) == 1 and "factor_rows" not in queries[0], queries


def test_unknown_types_and_variants_are_still_named(factor_set):
    errors = {}
    assert factors.resolve_factor("recycling", "wood", "kg", ago(hours=1), "resident", errors) is None
    assert "Unknown variant" in errors["variant"][0]
    errors = {}
    assert factors.resolve_factor("juggling", None, "kg", ago(hours=1), "resident", errors) is None
    assert errors["action_type"] == ["Unknown action type in factor set SJ-2026.1."]


def test_no_set_covers_a_date_before_the_first(factor_set):
    errors = {}

    assert factors.resolve_factor("walking", None, "km", utcnow().replace(year=2025), "resident", errors) is None
    assert errors == {"occurred_at": ["No published factor set covers this date."]}


def test_the_set_in_force_is_kept_per_database(factor_set, app, monkeypatch):
    from sqlalchemy import event

    on = today_local()
    assert factors.in_force_key(on)[0] == factor_set.id  # now kept for this database
    seen = []
    listener = lambda *args: seen.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        factors.in_force_key(on)
        monkeypatch.setitem(app.config, "SQLALCHEMY_DATABASE_URI", app.config["SQLALCHEMY_DATABASE_URI"] + "#other")
        factors.in_force_key(on)  # another app of this process, on another database, asks its own
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)

    assert len([s for s in seen if "factor_sets" in s]) == 1, seen
