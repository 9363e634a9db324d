"""Demo data: months of history for the dashboards; a park with its manager, one batch of the demo community,
a transfer and a retirement."""
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from ..columns import utcnow
from ..errors import AppError
from ..extensions import db

PARK_NAME = "松江经济技术开发区（演示）"
PARK_MANAGER_PHONE = "13800000003"

HISTORY_MONTHS = 6  # the current month and the five before it
HISTORY_NOTE = "历史记录（演示）"
HISTORY_DAYS = (5, 15, 25)
# (phone, name, index of the demo community): households that joined over the months, in both communities.
HISTORY_HOUSEHOLDS = tuple(
    (f"139000001{n:02d}", f"{surname}家（演示）", n % 2)
    for n, surname in enumerate(("张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙"), 1))
HISTORY_VARIANTS = ("paper", "cardboard", "pet", "glass", "textiles", "aluminium")


def _history_months(today: date) -> list[date]:
    months, year, month = [], today.year, today.month
    for _ in range(HISTORY_MONTHS):
        months.append(date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]


def seed_demo_history(context) -> str:
    """Months of approved, recorded-then actions and a few redemptions, so the dashboards have a history.

    Idempotent: nothing is added once any action carries HISTORY_NOTE. Actions go through the activities
    service with `recorded_at` set to the afternoon of their day, as staff recorded them then.
    """
    from ..accounts import service as accounts
    from ..accounts.models import User
    from ..cli import DEMO_PASSWORD
    from ..activities import factors, service as activities
    from ..activities.models import Action
    from ..localtime import SHANGHAI, local_date
    from ..merchants.models import Merchant
    from ..rewards import service as rewards
    from ..rewards.demo import MERCHANT_NAME, MERCHANT_STAFF_PHONE
    from ..rewards.models import Reward

    if db.session.scalar(select(Action.id).where(Action.note == HISTORY_NOTE).limit(1)) is not None:
        return "already seeded"
    factors.load_project_factors()
    communities = (context["community"], context["community2"])
    staff = context["staff"]("13800000001", "社区工作者（演示）", "community_staff",
                             community_ids=[c.id for c in communities])
    people = []
    for phone, name, where in HISTORY_HOUSEHOLDS:
        user = db.session.scalar(select(User).where(User.phone == phone))
        if user is None:
            user, _ = accounts.register({"phone": phone, "password": DEMO_PASSWORD,
                                         "display_name": name, "community_id": communities[where].id})
        people.append(user)
    now = utcnow()
    today = local_date(now)
    recorded = 0
    for k, first in enumerate(_history_months(today)):
        active = people[:min(len(people), 4 + 3 * k // 2)]  # participation grows: 4, 5, 7, 8, then all 10
        for day in HISTORY_DAYS:
            moment = datetime(first.year, first.month, day, 10, tzinfo=SHANGHAI)
            if moment.date() >= today:
                continue
            for h, person in enumerate(active):
                variant = HISTORY_VARIANTS[(h + k + day) % len(HISTORY_VARIANTS)]
                step = (3 * h + 5 * k + day) % 5
                quantity = Decimal("0.5") * (1 + step % 3) if variant == "aluminium" else Decimal(step) + Decimal("1.5")
                activities.record_action(household_id=person.household_id, resident_id=person.id,
                                         action_type="recycling", variant=variant, quantity=quantity, unit="kg",
                                         occurred_at=moment, source="staff", actor_id=staff.id, note=HISTORY_NOTE,
                                         recorded_at=moment + timedelta(hours=4))
                recorded += 1
            if day == HISTORY_DAYS[-1]:
                for person in active[::3]:
                    activities.record_action(household_id=person.household_id, resident_id=person.id,
                                             action_type="second_hand", variant="clothing", quantity=Decimal("2"),
                                             unit="kg", occurred_at=moment, source="staff", actor_id=staff.id,
                                             note=HISTORY_NOTE, recorded_at=moment + timedelta(hours=4))
                    recorded += 1
    redeemed = 0
    merchant = db.session.scalar(select(Merchant).where(Merchant.name == MERCHANT_NAME,
                                                        Merchant.community_id == communities[0].id))
    clerk = db.session.scalar(select(User).where(User.phone == MERCHANT_STAFF_PHONE))
    if merchant is not None and clerk is not None:
        offers = db.session.scalars(select(Reward).where(Reward.merchant_id == merchant.id)).all()
        for person in people[:6]:  # a local reward where the shop is, the district-wide one elsewhere
            local = person.household.community_id == merchant.community_id
            reward = next((r for r in offers if r.district_wide != local), None)
            if reward is None:
                continue
            _, digits = rewards.create_code(person, reward.id, 1)
            rewards.redeem_code(digits, merchant.id, clerk.id)
            redeemed += 1
    return f"{recorded} past actions of {len(people)} more households over {HISTORY_MONTHS} months, {redeemed} redemptions"


def seed_demo_district(context) -> str:
    """Idempotent: a second run finds the park, the batch and the transfer it made."""
    from ..activities import factors, service as activities
    from ..activities.models import Action
    from . import batches, parks
    from .models import Park, ParkTransfer, ReductionBatch
    from ..localtime import local_date

    factors.load_project_factors()  # whatever order the seeders were registered in
    park = db.session.scalar(select(Park).where(Park.name == PARK_NAME)) or parks.create_park(PARK_NAME)
    context["staff"](PARK_MANAGER_PHONE, "园区碳管理员（演示）", "park_manager", park_id=park.id)
    admin = context["staff"]("13800000000", "区管理员（演示）", "district_admin")
    context.setdefault("extra_accounts", []).append(f"park manager     {PARK_MANAGER_PHONE} ({PARK_NAME})")
    community = context["community"]
    batch = db.session.scalar(select(ReductionBatch).where(ReductionBatch.community_id == community.id)
                              .order_by(ReductionBatch.created_at).limit(1))
    if batch is None:
        now = utcnow()
        today = local_date(now)
        verified = db.session.scalar(select(func.count()).select_from(Action).where(
            Action.community_id == community.id, Action.status == "approved", Action.verified.is_(True)))
        if not verified:
            staff = context["staff"]("13800000001", "社区工作者（演示）", "community_staff",
                                     community_ids=[community.id, context["community2"].id])
            for resident, variant, kg in zip(context["residents"], ("paper", "aluminium"), ("6", "1.5")):
                activities.record_action(household_id=resident.household_id, resident_id=resident.id,
                                         action_type="recycling", variant=variant, quantity=Decimal(kg), unit="kg",
                                         occurred_at=now - timedelta(minutes=30), source="staff",
                                         actor_id=staff.id, note="回收站称重（演示）")
        try:
            batch = batches.issue_batch(community.id, date(today.year, 1, 1), today, admin.id)
        except AppError as error:
            return f"{PARK_NAME}: no batch issued ({error.detail})"
    if db.session.scalar(select(ParkTransfer.id).where(ParkTransfer.park_id == park.id).limit(1)) is None:
        available = batch.quantity_g - batch.transferred_g
        if available > 0:
            moved = parks.transfer(park, batch.id, max(1, available // 2), admin.id)
            parks.retire(park, {"quantity_g": max(1, moved.quantity_g // 2), "purpose": "抵消园区年度排放（演示）",
                                "beneficiary": PARK_NAME}, admin.id)
    statement = parks.statement(park)
    return (f"{PARK_NAME}: batch {batches.serial_label(batch)}; received {statement['received_g']} g, "
            f"retired {statement['retired_g']} g, available {statement['available_g']} g")
