"""Demo data: the project's factor table, published, and a few actions per demo household."""
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select

from ..columns import utcnow
from ..extensions import db
from . import factors, service
from .models import Action


def seed_factors_and_actions(context) -> str:
    """Publish factors.csv; give each demo household a few actions (only when it has none)."""
    factor_set = factors.load_project_factors()
    db.session.flush()
    staff = context["staff"]("13800000001", "社区工作者（演示）", "community_staff",
                             community_ids=[context["community"].id, context["community2"].id])
    created = 0
    now = utcnow()
    for resident in context["residents"]:
        if resident.household.community_id not in (context["community"].id, context["community2"].id):
            continue
        has_actions = db.session.scalar(
            select(func.count()).select_from(Action).where(Action.household_id == resident.household_id))
        if has_actions:
            continue
        service.record_action(household_id=resident.household_id, resident_id=resident.id,
                              action_type="walking", variant=None, quantity=Decimal("3.2"), unit="km",
                              occurred_at=now - timedelta(hours=5), source="self_reported", actor_id=resident.id,
                              note="步行上班")
        service.record_action(household_id=resident.household_id, resident_id=resident.id,
                              action_type="recycling", variant="paper", quantity=Decimal("2.5"), unit="kg",
                              occurred_at=now - timedelta(hours=3), source="self_reported", actor_id=resident.id,
                              evidence="photo: 旧报纸一捆")
        service.record_action(household_id=resident.household_id, resident_id=resident.id,
                              action_type="recycling", variant="pet", quantity=Decimal("1.2"), unit="kg",
                              occurred_at=now - timedelta(days=1), source="staff", actor_id=staff.id,
                              note="回收站称重")
        created += 3
    return f"factor set {factor_set.code} in force from {factor_set.effective_from}; {created} demo actions"
