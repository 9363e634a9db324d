"""Closing anomaly flags: community staff look, decide, and leave a note."""
from sqlalchemy import select, update

from ..accounts import scopes
from ..accounts.models import User
from ..columns import utcnow
from ..errors import InvalidState, NotFound
from ..extensions import db
from .models import AnomalyFlag

STATES = ("open", "resolved")


def resolve_flag(flag_id: str, staff: User, note: str) -> AnomalyFlag:
    """Close an open flag of the staff member's communities with a note; once (409 invalid_state). Does not commit."""
    flag = db.session.get(AnomalyFlag, flag_id)
    if flag is None or not scopes.staff_of(staff, flag.community_id):
        raise NotFound("No such anomaly flag in your communities")
    closed = db.session.execute(
        update(AnomalyFlag).where(AnomalyFlag.id == flag.id, AnomalyFlag.resolved_at.is_(None))
        .values(resolved_at=utcnow(), resolved_by=staff.id, resolution_note=note.strip())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not closed:
        raise InvalidState("This flag is already resolved")
    return db.session.scalar(select(AnomalyFlag).where(AnomalyFlag.id == flag.id)
                             .execution_options(populate_existing=True))


def state_filter(query, state: str | None):
    """Only open or only resolved flags."""
    if state == "open":
        return query.where(AnomalyFlag.resolved_at.is_(None))
    if state == "resolved":
        return query.where(AnomalyFlag.resolved_at.is_not(None))
    return query
