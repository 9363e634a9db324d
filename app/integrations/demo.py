"""Demo data: one recycling-station integration, its secret printed with the demo accounts."""
from sqlalchemy import select

from ..extensions import db
from .models import Integration

DEMO_INTEGRATION = "松江示范智能回收站（演示）"


def seed_demo_integration(context):
    """One demo recycling-station integration; its secret is printed with the demo accounts."""
    from . import service

    integration = db.session.scalar(select(Integration).where(Integration.name == DEMO_INTEGRATION))
    if integration is None:
        admin = context["staff"]("13800000000", "区管理员（演示）", "district_admin")
        integration, _ = service.create_integration(name=DEMO_INTEGRATION, kind="device", actor_id=admin.id)
    context.setdefault("extra_accounts", []).append(
        f"device integration  X-Integration-Id {integration.id}  secret {service.secret_of(integration)}"
    )
    return None
