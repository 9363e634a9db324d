"""Merchants, their staff and anomaly flags. Nothing here commits; nothing here knows rewards."""
import functools
from datetime import datetime

from flask import current_app
from sqlalchemy import case, select
from sqlalchemy.orm.util import identity_key

from ..accounts import scopes, service as accounts
from ..accounts.models import Community, User
from ..columns import new_id, utcnow
from ..dialect import dialect_insert_for, dialect_name
from ..errors import NotFound, validation_error
from ..paging import page_rows
from ..extensions import core, db
from ..ledger import service as ledger
from ..localtime import local_date
from .anomalies import state_filter
from .models import AnomalyFlag, Merchant



# ---------------------------------------------------------------- merchants


def create_merchant(user: User, data: dict) -> Merchant:
    """A merchant of a community, with its points account. Does not commit."""
    community = db.session.get(Community, data["community_id"])
    if community is None:
        raise validation_error("community_id", "No such community.")
    if user.role == "community_staff" and community.id not in user.community_ids:
        raise NotFound("No such community among yours")
    merchant = Merchant(name=data["name"].strip(), community_id=community.id, active=True,
                        daily_redemption_limit=data.get("daily_redemption_limit"))
    db.session.add(merchant)
    db.session.flush()
    ledger.account_of("merchant", merchant.id)
    return merchant


def merchant_for(user: User, merchant_id: str, *, manage: bool = False) -> Merchant:
    """The merchant if the caller may see (or manage) it; 404 otherwise."""
    merchant = db.session.get(Merchant, merchant_id)
    allowed = merchant is not None and (
        scopes.oversees(user, merchant.community_id) if manage
        else scopes.sees_merchant(user, merchant.id, merchant.community_id)
    )
    if not allowed:
        raise NotFound("No such merchant")
    return merchant


def update_merchant(merchant: Merchant, data: dict) -> Merchant:
    """Rename, (de)activate or set the daily redemption limit. Does not commit."""
    if "name" in data:
        merchant.name = data["name"].strip()
    for field in ("active", "daily_redemption_limit"):
        if field in data:
            setattr(merchant, field, data[field])
    merchant.updated_at = utcnow()
    db.session.flush()
    return merchant


def list_merchants(user: User, limit: int, cursor) -> list[Merchant]:
    query = select(Merchant)
    if user.role == "community_staff":
        query = query.where(Merchant.community_id.in_(user.community_ids))
    elif user.role == "merchant_staff":
        query = query.where(Merchant.id == user.merchant_id)
    return page_rows(query, Merchant, limit, cursor)


def add_staff(merchant: Merchant, data: dict) -> User:
    """A merchant_staff account of this merchant. Does not commit."""
    return accounts.create_staff({**data, "role": "merchant_staff", "merchant_id": merchant.id})


# ---------------------------------------------------------------- anomaly flags


@functools.cache
def _flag_statement(dialect: str):
    """Raise a flag, or bring one up to `redemptions`, in one upsert that returns its id. A flag staff had
    closed opens again when the count goes past what it held; the higher count is kept."""
    flags = AnomalyFlag.__table__
    insert = dialect_insert_for(dialect, flags)
    went_up = insert.excluded.redemptions > flags.c.redemptions
    return insert.on_conflict_do_update(
        index_elements=[flags.c.household_id, flags.c.merchant_id, flags.c.day],
        set_={"resolved_at": case((went_up, None), else_=flags.c.resolved_at),
              "resolved_by": case((went_up, None), else_=flags.c.resolved_by),
              "redemptions": case((went_up, insert.excluded.redemptions), else_=flags.c.redemptions),
              "updated_at": insert.excluded.updated_at},
    ).returning(flags.c.id)


def flag_if_unusual(household_id: str, merchant: Merchant, count_today: int, now: datetime) -> str | None:
    """Raise (or update) the flag when a household's redemptions at a merchant today exceed the threshold;
    the flag's id, or None under the threshold.

    The caller holds the household's wallet lock, so one household's flags are written one at a time.
    Never refuses. Does not commit.
    """
    threshold = current_app.config["ANOMALY_REDEMPTIONS_PER_DAY"]
    if count_today <= threshold:
        return None
    flag_id = core(_flag_statement(dialect_name()), {
        "id": new_id(), "kind": "household_burst", "household_id": household_id, "merchant_id": merchant.id,
        "community_id": merchant.community_id, "day": local_date(now), "redemptions": count_today,
        "created_at": now, "updated_at": now, "resolved_at": None, "resolved_by": None,
        "resolution_note": None}).scalar_one()
    held = db.session.identity_map.get(identity_key(AnomalyFlag, flag_id))
    if held is not None:  # loaded earlier in this transaction: read again when next used
        db.session.expire(held)
    return flag_id


def list_anomalies(user: User, limit: int, cursor, state: str | None = None) -> list[AnomalyFlag]:
    """Flags of the caller's communities (all of them for a district admin), newest first; open or resolved."""
    query = state_filter(select(AnomalyFlag), state)
    if user.role == "community_staff":
        query = query.where(AnomalyFlag.community_id.in_(user.community_ids))
    return page_rows(query, AnomalyFlag, limit, cursor)

