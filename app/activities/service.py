"""Recording green actions (self-reports, staff-assisted, devices and imports) and reading them.

Valuation lives in `valuation.py`, approval and review in `review.py`, factor
sets in `factors.py`. None of these functions commit: the route, job or
command that calls them owns the transaction.
"""
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from ..accounts import scopes
from ..accounts.cards import normalise_card
from ..accounts.models import Household, User
from ..columns import new_id, utcnow
from ..errors import NotFound, ValidationFailed
from ..extensions import db
from ..qr import labelled_png
from ..rows import new, write_new
from ..paging import page_rows
from . import review
from .factors import resolve_factor
from .models import RECORDER_OF_SOURCE, SOURCES, Action
from .valuation import MILLI

MAX_AGE = timedelta(days=30)
MAX_AHEAD = timedelta(minutes=5)
WHOLE_UNITS = ("item", "event")
MAX_QUANTITY = Decimal("999999.999")


# ---------------------------------------------------------------- recording actions


def _check_quantity(quantity, errors: dict) -> None:
    if not isinstance(quantity, Decimal) or not quantity.is_finite():
        errors["quantity"] = ["Must be a decimal number."]
    elif quantity <= 0:
        errors["quantity"] = ["Must be greater than 0."]
    elif quantity > MAX_QUANTITY or quantity != quantity.quantize(MILLI):
        errors["quantity"] = ["Must match ^[0-9]{1,6}(\\.[0-9]{1,3})?$."]


def _check_occurred_at(occurred_at, errors: dict, now: datetime) -> None:
    if not isinstance(occurred_at, datetime) or occurred_at.tzinfo is None:
        errors["occurred_at"] = ["Must include a UTC offset, e.g. 2026-05-01T08:30:00+08:00."]
        return
    if occurred_at < now - MAX_AGE:
        errors["occurred_at"] = ["Must be within the last 30 days."]
    elif occurred_at > now + MAX_AHEAD:
        errors["occurred_at"] = ["Must not be more than 5 minutes ahead of the server clock."]


def record_action(*, household_id: str, resident_id: str | None, action_type: str, variant: str | None,
                  quantity: Decimal, unit: str, occurred_at: datetime, source: str,
                  actor_id: str | None, evidence: str | None = None, note: str | None = None,
                  integration_id: str | None = None, external_id: str | None = None,
                  review_reason: str | None = None, recorded_at: datetime | None = None) -> Action:
    """Validate against the factor row in force on occurred_at, store, and approve when the rules say so.

    source: "self_reported" | "staff" | "device" | "import". Raises ValidationFailed naming fields
    (action_type, variant, unit, quantity, occurred_at). device/import records are approved on arrival
    unless review_reason is given (anomaly, decided by the caller) or the quantity exceeds what the daily
    or monthly cap still allows (then pending with review_reason "exceeds_cap"). recorded_at is the
    moment of recording (default: the server clock), which occurred_at must lie within 30 days before;
    only the demo's history passes one, to record past months as they were recorded then. Does not commit.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown action source {source!r}")
    errors: dict[str, list[str]] = {}
    household = db.session.get(Household, household_id) if isinstance(household_id, str) else None
    if household is None:
        errors["household_id"] = ["No such household."]
    if resident_id is not None:
        member = db.session.get(User, resident_id) if isinstance(resident_id, str) else None
        if member is None or member.household_id != household_id:
            errors["resident_id"] = ["Not a member of this household."]
    _check_quantity(quantity, errors)
    recorded_at = recorded_at or utcnow()
    _check_occurred_at(occurred_at, errors, recorded_at)
    for field, value, limit in (("action_type", action_type, 40), ("variant", variant, 40), ("unit", unit, 12),
                                ("evidence", evidence, 500), ("note", note, 500),
                                ("external_id", external_id, 128), ("integration_id", integration_id, 32),
                                ("review_reason", review_reason, 40)):
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            errors.setdefault(field, []).append(f"At most {limit} characters.")
    if not isinstance(action_type, str) or not action_type:
        errors.setdefault("action_type", ["Required."])
    row = None
    if not errors:
        row = resolve_factor(action_type, variant, unit, occurred_at, RECORDER_OF_SOURCE[source], errors)
    if row is not None and unit in WHOLE_UNITS and quantity != quantity.to_integral_value():
        errors["quantity"] = [f"Must be a whole number for the unit {unit}."]
    if errors:
        raise ValidationFailed(errors)
    action = new(
        Action, id=new_id(), household_id=household.id, resident_id=resident_id, community_id=household.community_id,
        action_type=action_type, variant=variant or None, quantity=quantity, unit=unit,
        occurred_at=occurred_at, source=source, status="pending", evidence=evidence, note=note,
        factor_id=row.id, factor=row, recorded_by=actor_id, integration_id=integration_id,
        external_id=external_id, appeal=False, reduction_g=0, verified=False, base_points=0,
        campaign_points=0, points=0, created_at=recorded_at,
    )
    if source in ("self_reported", "staff") and external_id is None:
        # Decided on arrival and nothing to deduplicate: valued first, then written once, as it ends.
        if source == "staff":
            review.approve(action, approver_id=actor_id, third_party=True, row=row)
        elif row.self_approvable:
            review.approve(action, approver_id=None, third_party=False, row=row)
        write_new(action)  # pending: written now; approved: written by the approval already
    else:
        db.session.add(action)
        db.session.flush()  # a repeated (integration_id, external_id) fails here, before any points move
        if source == "self_reported":
            if row.self_approvable:
                review.approve(action, approver_id=None, third_party=False, row=row)
        elif source == "staff":
            review.approve(action, approver_id=actor_id, third_party=True, row=row)
        elif review_reason:
            action.review_reason = review_reason
        else:
            review.approve_unless_capped(action, approver_id=actor_id, row=row)
    db.session.flush()
    return action


def report_action(user: User, data: dict) -> Action:
    """A resident's self-report. Does not commit."""
    return record_action(household_id=user.household_id, resident_id=user.id, source="self_reported",
                         actor_id=user.id, **_action_fields(data))


def record_staff_action(staff: User, data: dict) -> Action:
    """Staff-assisted logging by household card: approved at once. Does not commit."""
    household = db.session.scalar(select(Household).where(Household.card_number == normalise_card(data["household_card"])))
    if household is None or household.community_id not in staff.community_ids:
        raise NotFound("No household with that card in your communities")
    return record_action(household_id=household.id, resident_id=data.get("resident_id"), source="staff",
                         actor_id=staff.id, **_action_fields(data))


def _action_fields(data: dict) -> dict:
    return {k: data.get(k) for k in ("action_type", "variant", "quantity", "unit", "occurred_at",
                                      "evidence", "note")}


# ---------------------------------------------------------------- reading


def get_action(action_id: str, user: User) -> Action:
    """An action the caller may see: its household's resident, staff of its community, a district admin."""
    action = db.session.get(Action, action_id)
    if action is None:
        raise NotFound("No such action")
    if not scopes.sees_household(user, action.household_id, action.community_id):
        raise NotFound("No such action")
    return action


def household_actions(household_id: str, *, status: str | None, limit: int, cursor) -> list[Action]:
    """A household's actions, newest first (limit + 1 rows for paging)."""
    query = select(Action).where(Action.household_id == household_id)
    if status:
        query = query.where(Action.status == status)
    return page_rows(query, Action, limit, cursor)


def review_queue(staff: User, *, status: str, community_id: str | None, limit: int, cursor) -> list[Action]:
    """Actions of the staff member's communities in a status, oldest first (limit + 1 rows)."""
    communities = staff.community_ids
    if community_id is not None:
        communities = [c for c in communities if c == community_id]
    query = select(Action).where(Action.community_id.in_(communities), Action.status == status)
    return page_rows(query, Action, limit, cursor, oldest_first=True)


# ---------------------------------------------------------------- household cards


def household_card_png(household_id: str, user: User) -> bytes:
    """A printable household card: a QR code of the card number, with the number beneath it."""
    household = db.session.get(Household, household_id)
    if household is None or not scopes.sees_household(user, household.id, household.community_id):
        raise NotFound("No such household")
    number = household.card_number
    return labelled_png(number, " ".join(number[i:i + 4] for i in range(0, len(number), 4)))
