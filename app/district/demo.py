"""Demo data: a park with its manager, one batch of the demo community, a transfer and a retirement."""
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from ..columns import utcnow
from ..errors import AppError
from ..extensions import db

PARK_NAME = "松江经济技术开发区（演示）"
PARK_MANAGER_PHONE = "13800000003"


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
