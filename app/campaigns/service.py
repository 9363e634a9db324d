"""Campaigns: their lifecycle, the part they add to approved actions, check-ins, reversals and stats.

Money: a campaign's budget is its ledger account ("campaign", id). Activation moves
`budget_points` into it from issuance, every action part and check-in is paid from it (so the
guarded ledger write refuses to take it below zero), and ending returns what is left to issuance.

Lock order, the same in every transaction, so that approvals, reversals, check-ins, integration
batches, lifecycle changes and the close-ended command never wait on each other in a circle:
1. the campaign row (FOR NO KEY UPDATE, so inserts referencing it never wait) — only lifecycle changes
   lock it (edit, activate, end, close, new check-in code);
2. household wallets and their issuance shards (`ledger.lock_households`), or for activation and
   end the campaign's issuance shard;
3. cap usage rows (approvals and reversals, in activities);
4. campaign ledger accounts: all that a step needs, in one statement, in id order.
Approvals, reversals and check-ins never lock a campaign row: they lock its account and then read
its status again, so an `end` that committed first is seen and one that comes later finds the
balance they left.

Overlapping campaigns apply in the order (starts_at, id), each to the action's base points (parts do
not compound). None of these functions commit.
"""
import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, localcontext

from flask import current_app
from sqlalchemy import and_, bindparam, exists, func, or_, select, union
from sqlalchemy.exc import IntegrityError

from ..accounts.models import Community, User
from ..activities.models import Action, FactorRow, FactorSet
from ..activities.schemas import plain
from ..activities.valuation import receipt_json
from ..columns import new_id, utcnow
from ..dialect import add_rows, is_in
from ..errors import AppError, InvalidState, NotFound, ValidationFailed
from ..extensions import core, db
from ..ledger import service as ledger
from ..ledger.kinds import EntryKind
from ..ledger.models import LedgerAccount
from ..paging import page_rows
from . import leaderboard
from .models import (
    Campaign, CampaignActionType, CampaignAward, CampaignCommunity, CampaignHolding, Checkin, CheckinCode,
)

CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32
CODE_LENGTH = 16  # 80 bits
CUT_CAP, CUT_BUDGET = "household_cap", "budget"


class CodeNotFound(AppError):
    status, code, title = 404, "code_not_found", "No such check-in code"


class CodeExpired(AppError):
    status, code, title = 409, "code_expired", "The check-in code has expired"


class AlreadyCheckedIn(AppError):
    status, code, title = 409, "already_checked_in", "Your household already checked in with this code"


class BudgetExhausted(AppError):
    status, code, title = 409, "budget_exhausted", "The campaign's budget cannot pay these points"


class CampaignNotActive(InvalidState):
    title = "The campaign is not active"


# ---------------------------------------------------------------- scope and views


def effective_status(campaign: Campaign, now: datetime | None = None) -> str:
    """The status a client sees: an active campaign whose end time has passed is ended."""
    if campaign.status == "active" and campaign.ends_at <= (now or utcnow()):
        return "ended"
    return campaign.status


def _may_see(user: User, campaign: Campaign) -> bool:
    if user.role == "district_admin":
        return True
    if user.role == "community_staff":
        return set(campaign.community_ids) <= set(user.community_ids)
    if user.role == "resident" and user.household is not None:
        return campaign.status != "draft" and user.household.community_id in campaign.community_ids
    return False


def campaign_for(user: User, campaign_id: str, *, lock: bool = False) -> Campaign:
    """A campaign the caller may see (staff: all its communities are theirs), or 404.

    `lock` takes the row lock of a lifecycle change (step 1 of the lock order).
    """
    campaign = _locked(campaign_id) if lock else db.session.get(Campaign, campaign_id)
    if campaign is None or not _may_see(user, campaign):
        raise NotFound("No such campaign in your communities")
    return campaign


def _locked(campaign_id: str) -> Campaign | None:
    """The campaign row locked for a lifecycle change (step 1 of the lock order), as committed now.

    FOR NO KEY UPDATE, not FOR UPDATE: inserting an award or a check-in takes a key-share lock on
    the campaign row (its foreign key), and an approval holding a campaign account must not wait
    for an `end` that waits for that account.
    """
    return db.session.get(Campaign, campaign_id, with_for_update={"key_share": True}, populate_existing=True)


def _balances(campaign_ids: list[str]) -> dict[str, int]:
    ids = {ledger.account_id("campaign", cid): cid for cid in campaign_ids}
    if not ids:
        return {}
    rows = db.session.execute(
        select(LedgerAccount.id, LedgerAccount.balance).where(LedgerAccount.id.in_(list(ids)))).all()
    return {ids[account]: balance for account, balance in rows}


def campaign_view(campaign: Campaign, balance: int | None = None) -> dict:
    if balance is None:
        balance = _balances([campaign.id]).get(campaign.id, 0)
    return {
        "id": campaign.id, "name": campaign.name, "description": campaign.description,
        "status": effective_status(campaign), "community_ids": campaign.community_ids,
        "action_types": [t.label for t in campaign.action_types], "starts_at": campaign.starts_at,
        "ends_at": campaign.ends_at, "multiplier": campaign.multiplier, "bonus_points": campaign.bonus_points,
        "budget_points": campaign.budget_points, "per_household_cap": campaign.per_household_cap,
        "budget_remaining": balance, "created_at": campaign.created_at, "activated_at": campaign.activated_at,
        "ended_at": campaign.ended_at,
    }


def campaign_views(campaigns: list[Campaign]) -> list[dict]:
    balances = _balances([c.id for c in campaigns])
    return [campaign_view(c, balances.get(c.id, 0)) for c in campaigns]


def list_campaigns(user: User, *, status: str | None, limit: int, cursor) -> list[Campaign]:
    """Campaigns the caller may see, newest first (limit + 1 rows).

    Residents: those of their community, active by default (ended on request, never drafts).
    Community staff: those all of whose communities are theirs, any status. District admins: all.
    """
    now = utcnow()
    query = select(Campaign)
    if user.role == "resident":
        status = status or "active"
        if status == "draft" or user.household is None:
            return []
        query = query.where(exists().where(CampaignCommunity.campaign_id == Campaign.id,
                                           CampaignCommunity.community_id == user.household.community_id))
    elif user.role == "community_staff":
        query = query.where(~exists().where(CampaignCommunity.campaign_id == Campaign.id,
                                            CampaignCommunity.community_id.not_in(user.community_ids)))
    if status == "draft":
        query = query.where(Campaign.status == "draft")
    elif status == "active":
        query = query.where(Campaign.status == "active", Campaign.ends_at > now)
    elif status == "ended":
        query = query.where(or_(Campaign.status == "ended",
                                and_(Campaign.status == "active", Campaign.ends_at <= now)))
    return page_rows(query, Campaign, limit, cursor)


# ---------------------------------------------------------------- drafts


def _check_communities(staff: User, community_ids: list[str]) -> None:
    """Every community must exist and be the staff member's: else 422 naming the index sent."""
    mine = set(staff.community_ids)
    known = set(db.session.scalars(select(Community.id).where(Community.id.in_(community_ids))))
    errors = {}
    for index, community_id in enumerate(community_ids):
        if community_id not in known:
            errors[f"community_ids.{index}"] = ["No such community."]
        elif community_id not in mine:
            errors[f"community_ids.{index}"] = ["Not one of your communities."]
    if errors:
        raise ValidationFailed(errors)


def _split(label: str) -> tuple[str, str]:
    action_type, _, variant = label.partition(":")
    return action_type, variant


def _check_action_types(labels: list[str]) -> None:
    """Each type (and variant, if given) must be in some published factor set: else 422 naming the index."""
    types = {_split(label)[0] for label in labels}
    rows = set(db.session.execute(
        select(FactorRow.action_type, FactorRow.variant).join(FactorSet, FactorSet.id == FactorRow.factor_set_id)
        .where(FactorSet.status == "published", FactorRow.action_type.in_(types))
    ).all())
    errors = {}
    for index, label in enumerate(labels):
        action_type, variant = _split(label)
        if not any(t == action_type and (not variant or v == variant) for t, v in rows):
            errors[f"action_types.{index}"] = ["No published factor row has this action type and variant."]
    if errors:
        raise ValidationFailed(errors)


def _set_fields(campaign: Campaign, data: dict) -> None:
    for field in ("name", "description", "starts_at", "ends_at", "multiplier", "bonus_points", "budget_points",
                  "per_household_cap"):
        if field in data:
            value = data[field]
            setattr(campaign, field, value.strip() if field == "name" else value)
    if "community_ids" in data:
        campaign.communities.clear()
        db.session.flush()
        campaign.communities.extend(CampaignCommunity(community_id=cid, position=i)
                                    for i, cid in enumerate(data["community_ids"]))
    if "action_types" in data:
        campaign.action_types.clear()
        db.session.flush()
        for position, label in enumerate(data["action_types"]):
            action_type, variant = _split(label)
            campaign.action_types.append(CampaignActionType(action_type=action_type, variant=variant,
                                                            position=position))


def _check_window(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise ValidationFailed({"ends_at": ["Must be later than starts_at."]})
    if ends_at <= utcnow():
        raise ValidationFailed({"ends_at": ["Must be in the future."]})


def create_campaign(staff: User, data: dict) -> Campaign:
    """A draft campaign in the staff member's communities. Does not commit."""
    _check_communities(staff, data["community_ids"])
    _check_action_types(data["action_types"])
    _check_window(data["starts_at"], data["ends_at"])
    campaign = Campaign(id=new_id(), status="draft", created_by=staff.id, created_at=utcnow(), bonus_points=0)
    db.session.add(campaign)
    _set_fields(campaign, data)
    db.session.flush()
    return campaign


def update_campaign(campaign_id: str, staff: User, data: dict) -> Campaign:
    """Change a draft (any field of its creation); 409 invalid_state once activated. Does not commit."""
    campaign = campaign_for(staff, campaign_id, lock=True)
    if campaign.status != "draft":
        raise InvalidState(f"Only a draft can be edited; this campaign is {effective_status(campaign)}")
    if "community_ids" in data:
        _check_communities(staff, data["community_ids"])
    if "action_types" in data:
        _check_action_types(data["action_types"])
    if "starts_at" in data or "ends_at" in data:
        _check_window(data.get("starts_at", campaign.starts_at), data.get("ends_at", campaign.ends_at))
    _set_fields(campaign, data)
    campaign.updated_at = utcnow()
    db.session.flush()
    return campaign


# ---------------------------------------------------------------- activation and end


def activate_campaign(campaign_id: str, staff: User) -> Campaign:
    """Fund the budget from issuance and start applying the campaign. Does not commit."""
    campaign = campaign_for(staff, campaign_id, lock=True)
    if campaign.status != "draft":
        raise InvalidState(f"Only a draft can be activated; this campaign is {effective_status(campaign)}")
    now = utcnow()
    if campaign.ends_at <= now:
        raise InvalidState("The campaign's end time has passed; move ends_at first")
    issuance = ledger.system_account("issuance", campaign.id)
    ledger.lock(issuance)  # the shard before the campaign account (step 2, then 4)
    account = ledger.lock(("campaign", campaign.id))[0]
    ledger.transfer(issuance, account, campaign.budget_points, kind=EntryKind.CAMPAIGN_FUNDING, ref_type="campaign",
                    ref_id=campaign.id, actor_id=staff.id, reason="Campaign budget")
    campaign.status, campaign.activated_at, campaign.activated_by = "active", now, staff.id
    db.session.flush()
    return campaign


def _close(campaign: Campaign, actor_id: str | None, now: datetime) -> None:
    """End a locked active campaign: what is left of the budget goes back to issuance."""
    issuance = ledger.system_account("issuance", campaign.id)
    ledger.lock(issuance)
    account = ledger.lock(("campaign", campaign.id))[0]
    if account.balance:
        ledger.transfer(account, issuance, account.balance, kind=EntryKind.CAMPAIGN_RETURN, ref_type="campaign",
                        ref_id=campaign.id, actor_id=actor_id, reason="Unspent campaign budget")
    campaign.status, campaign.ended_by = "ended", actor_id
    campaign.ended_at = min(now, campaign.ends_at)
    db.session.flush()


def _close_if_over(campaign: Campaign) -> bool:
    """Lazily end a locked campaign whose end time has passed; True if it did."""
    now = utcnow()
    if campaign.status == "active" and campaign.ends_at <= now:
        _close(campaign, None, now)
        return True
    return False


def end_campaign(campaign_id: str, staff: User) -> Campaign:
    """End an active campaign now (or confirm the end its end time brought). Does not commit."""
    campaign = campaign_for(staff, campaign_id, lock=True)
    if campaign.status != "active":
        raise InvalidState(f"Only an active campaign can be ended; this campaign is {campaign.status}")
    _close(campaign, staff.id, utcnow())
    return campaign


def close_ended(now: datetime | None = None) -> list[str]:
    """Ids of active campaigns whose end time has passed; close each with close_one (the CLI commits each)."""
    return list(db.session.scalars(
        select(Campaign.id).where(Campaign.status == "active", Campaign.ends_at <= (now or utcnow()))
        .order_by(Campaign.ends_at, Campaign.id)))


def close_one(campaign_id: str) -> bool:
    """End one campaign whose end time has passed, if still active; False if someone did already."""
    campaign = _locked(campaign_id)
    return campaign is not None and _close_if_over(campaign)


# ---------------------------------------------------------------- the part of an approved action


def _matching_statement():
    """Ids of the active campaigns matching an action, in (starts_at, id) order: built once, with parameters."""
    campaigns, types = Campaign.__table__.c, CampaignActionType.__table__.c
    occurred_at = bindparam("occurred_at", type_=Campaign.__table__.c.starts_at.type)
    return (
        select(campaigns.id)
        .join(CampaignCommunity.__table__, and_(CampaignCommunity.__table__.c.campaign_id == campaigns.id,
                                                CampaignCommunity.__table__.c.community_id == bindparam("community")))
        .where(campaigns.status == "active", campaigns.ends_at > bindparam("now", type_=campaigns.ends_at.type),
               campaigns.starts_at <= occurred_at, campaigns.ends_at > occurred_at,
               exists().where(types.campaign_id == campaigns.id, types.action_type == bindparam("action_type"),
                              or_(types.variant == "", types.variant == bindparam("variant"))))
        .order_by(campaigns.starts_at, campaigns.id)
    )


_MATCHING = _matching_statement()


def _matching(action: Action, now: datetime) -> list[str]:
    """The ids of the active campaigns an action counts towards (one indexed query, no rows loaded)."""
    db.session.flush()  # campaigns this unit of work changed are read as changed
    return list(core(_MATCHING, {
        "community": action.community_id, "now": now, "occurred_at": action.occurred_at,
        "action_type": action.action_type, "variant": action.variant or ""}).scalars())


def _reread(campaign_ids: list[str]) -> dict[str, Campaign]:
    """Campaign rows as committed now (after their accounts were locked): an `end` may have come first."""
    rows = db.session.scalars(select(Campaign).where(Campaign.id.in_(campaign_ids))
                              .execution_options(populate_existing=True)).all()
    return {row.id: row for row in rows}


def uncut_part(base_points: int, campaign: Campaign) -> int:
    """floor(base_points × (multiplier − 1)) + bonus_points."""
    with localcontext() as exact:
        exact.prec = 60
        extra = (Decimal(base_points) * (Decimal(campaign.multiplier) - 1)).to_integral_value(rounding=ROUND_FLOOR)
    return int(extra) + campaign.bonus_points


def cut_part(uncut: int, campaign: Campaign, held: int, budget: int) -> tuple[int, str | None]:
    """A part cut to the household's remaining cap (`held`: its campaign points so far), then to the
    `budget` left; the points and which cut applied, if any."""
    points, cut = uncut, None
    if campaign.per_household_cap is not None and max(campaign.per_household_cap - held, 0) < points:
        points, cut = max(campaign.per_household_cap - held, 0), CUT_CAP
    if budget < points:
        points, cut = budget, CUT_BUDGET
    return points, cut


HELD_KINDS = ("action", "reversal")  # the awards a household's holding adds up: check-ins are not capped


def held_points(campaign_ids, household_ids) -> dict[tuple[str, str], int]:
    """(campaign id, household id) → the campaign points the household holds from actions (parts net of
    reversals; check-ins excluded), read from campaign_holdings by key; a pair not in it holds 0."""
    campaign_ids, household_ids = list(campaign_ids), set(household_ids)
    if not campaign_ids or not household_ids:
        return {}
    return {(campaign_id, household_id): int(points) for campaign_id, household_id, points in db.session.execute(
        select(CampaignHolding.campaign_id, CampaignHolding.household_id, CampaignHolding.points)
        .where(CampaignHolding.campaign_id.in_(campaign_ids), is_in(CampaignHolding.household_id, household_ids)))}


def add_holdings(awards: list[dict]) -> None:
    """Add awards of HELD_KINDS (dicts with campaign_id, household_id, points) into campaign_holdings,
    one upsert per (campaign, household) in key order; the caller holds the campaigns' account locks."""
    sums: dict[tuple[str, str], int] = {}
    for award in awards:
        key = (award["campaign_id"], award["household_id"])
        sums[key] = sums.get(key, 0) + award["points"]
    add_rows(db.session, CampaignHolding.__table__, ("campaign_id", "household_id"), ("points",),
             [{"campaign_id": campaign_id, "household_id": household_id, "points": points}
              for (campaign_id, household_id), points in sorted(sums.items()) if points])


def holding_problems() -> list[str]:
    """Where campaign_holdings differs from the awards it adds up (for `flask ledger verify`)."""
    held = {(c, h): int(p) for c, h, p in db.session.execute(
        select(CampaignHolding.campaign_id, CampaignHolding.household_id, CampaignHolding.points))}
    awarded = {(c, h): int(p) for c, h, p in db.session.execute(
        select(CampaignAward.campaign_id, CampaignAward.household_id, func.sum(CampaignAward.points))
        .where(CampaignAward.kind.in_(HELD_KINDS))
        .group_by(CampaignAward.campaign_id, CampaignAward.household_id))}
    problems = []
    for campaign_id, household_id in sorted(held.keys() | awarded.keys()):
        holding, total = held.get((campaign_id, household_id), 0), awarded.get((campaign_id, household_id), 0)
        if holding != total:
            problems.append(f"campaign {campaign_id} household {household_id}: holding {holding} points, "
                            f"its awards add up to {total}")
    return problems


def _record(campaign_id: str, kind: str, household_id: str, points: int, **fields) -> CampaignAward:
    """Append an award; its seq is the campaign's next (the caller holds the campaign account's lock)."""
    seq = db.session.scalar(
        select(func.coalesce(func.max(CampaignAward.seq), 0)).where(CampaignAward.campaign_id == campaign_id)) + 1
    award = CampaignAward(id=new_id(), campaign_id=campaign_id, seq=seq, kind=kind, household_id=household_id,
                          points=points, created_at=utcnow(), **fields)
    db.session.add(award)
    db.session.flush()
    if kind in HELD_KINDS:
        add_holdings([{"campaign_id": campaign_id, "household_id": household_id, "points": points}])
    leaderboard.stage(campaign_id)
    return award


def lock_for_households(household_ids, kinds: set[tuple[str, str]] | None = None) -> None:
    """Lock, in one statement, the accounts of the active campaigns of these households' communities
    that count any of these `kinds` of action ((action_type, variant or ""); None: every kind).

    For a transaction approving actions of several households (an integration batch): locked up
    front, after the wallets, every later campaign part finds its account already locked, so two
    batches cannot take campaign accounts in opposite orders; a campaign that cannot pay a part of
    the batch is left unlocked, so batches it has nothing to do with do not wait for each other on
    it. Does not commit.
    """
    from ..accounts.models import Household

    households = sorted(set(household_ids))
    if not households:
        return
    ids = set(db.session.scalars(
        select(Campaign.id).distinct()
        .join(CampaignCommunity, CampaignCommunity.campaign_id == Campaign.id)
        .join(Household, Household.community_id == CampaignCommunity.community_id)
        .where(Household.id.in_(households), Campaign.status == "active", Campaign.ends_at > utcnow())
    ))
    if ids and kinds is not None:
        ids = {campaign_id for campaign_id, types in action_types_of(ids).items() if counts_any(types, kinds)}
    if ids:
        ledger.lock(*[("campaign", cid) for cid in sorted(ids)])


def action_types_of(campaign_ids) -> dict[str, set[tuple[str, str]]]:
    """Each campaign's (action_type, variant) pairs; variant "" counts every variant of the type."""
    types: dict[str, set[tuple[str, str]]] = {campaign_id: set() for campaign_id in campaign_ids}
    for campaign_id, action_type, variant in db.session.execute(
            select(CampaignActionType.campaign_id, CampaignActionType.action_type, CampaignActionType.variant)
            .where(CampaignActionType.campaign_id.in_(list(types)))):
        types[campaign_id].add((action_type, variant))
    return types


def counts_any(types: set[tuple[str, str]], kinds) -> bool:
    """Whether a campaign of these action `types` counts an action of any of these (action_type, variant)."""
    for action_type, variant in kinds:  # a loop, not any(…): a batch asks this for every record
        if (action_type, "") in types or (action_type, variant) in types:
            return True
    return False


def preview_campaign_points(valued: list[tuple[Action, int]]) -> dict[str, int]:
    """For each (action, base points): the campaign points an approval now would add. Reads, locks nothing.

    The parts of `apply_campaigns` in the same order, each cut to the household's remaining cap and to
    the budget as they stand (a concurrent approval may still take what is left first). A constant
    number of queries for any number of actions.
    """
    if not valued:
        return {}
    now = utcnow()
    campaigns = list(db.session.scalars(
        select(Campaign).where(Campaign.status == "active", Campaign.ends_at > now, Campaign.id.in_(
            select(CampaignCommunity.campaign_id).where(
                CampaignCommunity.community_id.in_({a.community_id for a, _ in valued}))))
        .order_by(Campaign.starts_at, Campaign.id)))
    if not campaigns:
        return {action.id: 0 for action, _ in valued}
    ids = [c.id for c in campaigns]
    communities, types = {}, {}
    for campaign_id, community_id in db.session.execute(
            select(CampaignCommunity.campaign_id, CampaignCommunity.community_id)
            .where(CampaignCommunity.campaign_id.in_(ids))):
        communities.setdefault(campaign_id, set()).add(community_id)
    for campaign_id, action_type, variant in db.session.execute(
            select(CampaignActionType.campaign_id, CampaignActionType.action_type, CampaignActionType.variant)
            .where(CampaignActionType.campaign_id.in_(ids))):
        types.setdefault(campaign_id, set()).add((action_type, variant))
    budgets = _balances(ids)
    held = held_points([c.id for c in campaigns if c.per_household_cap is not None],
                       {a.household_id for a, _ in valued})
    out = {}
    for action, base_points in valued:
        total = 0
        for campaign in campaigns:
            kinds = types.get(campaign.id, set())
            if (action.community_id not in communities.get(campaign.id, ())
                    or not campaign.starts_at <= action.occurred_at < campaign.ends_at
                    or not {(action.action_type, ""), (action.action_type, action.variant or "")} & kinds):
                continue
            total += cut_part(uncut_part(base_points, campaign), campaign,
                              held.get((campaign.id, action.household_id), 0), budgets.get(campaign.id, 0))[0]
        out[action.id] = total
    return out


def apply_campaigns(action: Action) -> int:
    """Pay the parts of the active campaigns matching a just-approved action, in (starts_at, id) order.

    Each part is floor(base × (multiplier − 1)) + bonus, cut to the household's remaining cap, then
    to what is left in the budget (read from the locked account). Sets the action's campaign_points,
    points and receipt; returns the campaign points. Call after the base points are credited, in the
    same transaction. Does not commit.
    """
    now = utcnow()
    candidates = _matching(action, now)
    if not candidates:
        return 0
    accounts = ledger.lock(*[("campaign", campaign_id) for campaign_id in candidates])  # step 4: one statement
    current = _reread(candidates)
    held = held_points([c.id for c in current.values() if c.per_household_cap is not None], [action.household_id])
    parts, total = [], 0
    for campaign_id, account in zip(candidates, accounts):
        campaign = current.get(campaign_id)
        if campaign is None or campaign.status != "active":
            continue  # ended while we waited for its account
        uncut = uncut_part(action.base_points, campaign)
        points, cut = cut_part(uncut, campaign, held.get((campaign.id, action.household_id), 0), account.balance)
        if points:
            ledger.award(action.household_id, points, kind=EntryKind.CAMPAIGN_BONUS, ref_type="action", ref_id=action.id,
                         actor_id=action.approved_by, source=account)
        _record(campaign.id, "action", action.household_id, points, uncut_points=uncut, cut=cut,
                action_id=action.id)
        parts.append({"campaign_id": campaign.id, "name": campaign.name, "multiplier": plain(campaign.multiplier),
                      "bonus_points": campaign.bonus_points, "uncut_points": uncut, "points": points, "cut": cut})
        total += points
    action.campaign_points = total
    action.points = action.base_points + total
    receipt = json.loads(action.receipt) if action.receipt else {}
    receipt.update({"campaigns": parts, "campaign_points": total, "points": action.points})
    action.receipt = receipt_json(receipt)
    db.session.flush()
    return total


def reverse_campaign_parts(action: Action, *, actor_id: str | None, reason: str | None) -> int:
    """Take each campaign part of an action back from the wallet into its campaign's account.

    What the wallet no longer holds becomes a clawback, as for the base part. The part of a
    campaign that has ended goes on to issuance, as its unspent budget did. The household's
    campaign points (cap, leaderboard) drop by the whole part. Call after the wallet is locked
    (ledger.lock_households) and before the base part is taken back. Returns the points reversed.
    Does not commit.
    """
    awards = db.session.scalars(
        select(CampaignAward).where(CampaignAward.action_id == action.id, CampaignAward.kind == "action")
    ).all()
    done = set(db.session.scalars(select(CampaignAward.campaign_id).where(
        CampaignAward.action_id == action.id, CampaignAward.kind == "reversal")))
    awards = [a for a in awards if a.campaign_id not in done]
    if not awards:
        return 0
    campaign_ids = sorted({a.campaign_id for a in awards})
    accounts = dict(zip(campaign_ids, ledger.lock(*[("campaign", cid) for cid in campaign_ids])))
    current = _reread(campaign_ids)
    awards.sort(key=lambda a: (current[a.campaign_id].starts_at, a.campaign_id))
    total = 0
    for award in awards:
        campaign, account = current[award.campaign_id], accounts[award.campaign_id]
        if award.points > 0:
            taken = ledger.take_back(action.household_id, award.points, kind=EntryKind.CAMPAIGN_REVERSAL, ref_type="action",
                                     ref_id=action.id, actor_id=actor_id, reason=reason, to=account)
            if taken and campaign.status == "ended":
                ledger.transfer(account, ledger.system_account("issuance", action.household_id), taken,
                                kind=EntryKind.CAMPAIGN_RETURN, ref_type="campaign", ref_id=campaign.id, actor_id=actor_id,
                                reason="Reversed part of an ended campaign")
        _record(campaign.id, "reversal", action.household_id, -award.points, action_id=action.id)
        total += award.points
    return total


# ---------------------------------------------------------------- check-in codes


def _derive_code(code: CheckinCode) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, f"checkin-code:{code.id}:{code.salt}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest[:10], "big")  # 80 bits
    return "".join(CODE_ALPHABET[(number >> (5 * i)) & 31] for i in range(CODE_LENGTH))


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalise_code(raw: str) -> str | None:
    """A typed code in canonical form (Crockford: case-blind, O→0, I/L→1, spaces and dashes ignored)."""
    text = re.sub(r"[\s-]", "", raw).upper().translate(str.maketrans("OIL", "011"))
    return text if re.fullmatch(f"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}", text) else None


def create_checkin_code(campaign_id: str, staff: User, points: int, valid_minutes: int):
    """A check-in code of an active campaign: (row, code, None), or (None, None, refusal) after a lazy end.

    A refusal is returned, not raised, so that the end its end time brought is committed.
    Does not commit.
    """
    campaign = campaign_for(staff, campaign_id, lock=True)
    if _close_if_over(campaign):
        return None, None, CampaignNotActive("The campaign's end time has passed; it is now ended")
    if campaign.status != "active":
        raise CampaignNotActive(f"Check-in codes are for active campaigns; this one is {campaign.status}")
    now = utcnow()
    row = CheckinCode(id=new_id(), campaign_id=campaign.id, salt=secrets.token_hex(16), points=points,
                      expires_at=min(now + timedelta(minutes=valid_minutes), campaign.ends_at),
                      created_by=staff.id, created_at=now)
    code = _derive_code(row)
    row.code_hash = _hash(code)
    db.session.add(row)
    db.session.flush()
    return row, code, None


def code_view(row: CheckinCode, code: str | None = None) -> dict:
    return {
        "id": row.id, "campaign_id": row.campaign_id, "code": code if code is not None else _derive_code(row),
        "points": row.points, "expires_at": row.expires_at, "created_at": row.created_at,
        "qr_png_url": f"/api/v1/campaigns/{row.campaign_id}/checkin-codes/{row.id}/qr.png",
    }


def conceal_code(reply: dict) -> dict:
    """A code reply as the idempotency store keeps it: without the code."""
    return {**reply, "code": None}


def reveal_code(reply: dict) -> dict:
    """A stored code reply with its code derived again."""
    return {**reply, "code": _derive_code(db.session.get(CheckinCode, reply["id"]))}


def codes_of_campaign(campaign: Campaign, limit: int, cursor) -> list[CheckinCode]:
    return page_rows(select(CheckinCode).where(CheckinCode.campaign_id == campaign.id), CheckinCode, limit, cursor)


def code_of_campaign(campaign: Campaign, code_id: str) -> CheckinCode:
    row = db.session.get(CheckinCode, code_id)
    if row is None or row.campaign_id != campaign.id:
        raise NotFound("No such check-in code")
    return row


# ---------------------------------------------------------------- check-ins


def check_in(user: User, raw_code: str):
    """A resident's household checks in with a code, once: (checkin, None) or (None, refusal after a lazy end).

    404 for an unknown code or one of a campaign outside the household's community; 409
    already_checked_in, code_expired, invalid_state (campaign not active) or budget_exhausted
    (the budget cannot pay the full points). Does not commit.
    """
    code = normalise_code(raw_code)
    row = db.session.scalar(select(CheckinCode).where(CheckinCode.code_hash == _hash(code))) if code else None
    household = user.household
    campaign = db.session.get(Campaign, row.campaign_id) if row is not None else None
    if campaign is None or household is None or household.community_id not in campaign.community_ids:
        raise CodeNotFound()
    if campaign.status == "active" and campaign.ends_at <= utcnow():
        locked = _locked(campaign.id)
        if _close_if_over(locked):  # steps 1, 2, 4 before any wallet lock
            return None, CampaignNotActive("The campaign has ended")
    ledger.lock_households([household.id])
    if db.session.scalar(select(Checkin.id).where(Checkin.code_id == row.id, Checkin.household_id == household.id)):
        raise AlreadyCheckedIn()
    now = utcnow()
    if row.expires_at <= now:
        raise CodeExpired()
    account = ledger.lock(("campaign", campaign.id))[0]
    campaign = _reread([campaign.id])[campaign.id]
    if campaign.status != "active" or campaign.ends_at <= now:
        raise CampaignNotActive(f"The campaign is {effective_status(campaign, now)}")
    if account.balance < row.points:
        raise BudgetExhausted(f"The budget holds {account.balance} points, the check-in pays {row.points}")
    checkin = Checkin(id=new_id(), code_id=row.id, campaign_id=campaign.id, household_id=household.id,
                      resident_id=user.id, points=row.points, created_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(checkin)
    except IntegrityError:
        raise AlreadyCheckedIn() from None
    ledger.award(household.id, row.points, kind=EntryKind.CHECKIN, ref_type="checkin", ref_id=checkin.id, actor_id=user.id,
                 source=account)
    _record(campaign.id, "checkin", household.id, row.points, uncut_points=row.points, checkin_id=checkin.id)
    return checkin, None


# ---------------------------------------------------------------- stats


def stats(campaign: Campaign) -> dict:
    """Participants, counted actions and their grams, points paid (net), check-ins, budget left."""
    counted = and_(CampaignAward.campaign_id == campaign.id, CampaignAward.kind == "action",
                   Action.status == "approved")
    actions, grams = db.session.execute(
        select(func.count(CampaignAward.id), func.coalesce(func.sum(Action.reduction_g), 0))
        .join(Action, Action.id == CampaignAward.action_id).where(counted)
    ).one()
    households = union(
        select(CampaignAward.household_id).join(Action, Action.id == CampaignAward.action_id).where(counted),
        select(Checkin.household_id).where(Checkin.campaign_id == campaign.id),
    ).subquery()
    participants = db.session.scalar(select(func.count()).select_from(households))
    paid = db.session.scalar(select(func.coalesce(func.sum(CampaignAward.points), 0))
                             .where(CampaignAward.campaign_id == campaign.id))
    checkins = db.session.scalar(select(func.count()).select_from(Checkin).where(Checkin.campaign_id == campaign.id))
    return {
        "participants": int(participants), "actions": int(actions), "reduction_g": int(grams),
        "points_awarded": int(paid), "budget_remaining": _balances([campaign.id]).get(campaign.id, 0),
        "checkins": int(checkins),
    }


def campaign_leaderboard(campaign: Campaign, user: User, limit: int) -> dict:
    """Households ranked by campaign points; residents also get their own rank."""
    household_id = user.household_id if user.role == "resident" else None
    board = leaderboard.ranking(campaign.id, limit, household_id)
    staff = user.role != "resident"
    items = [{"rank": e.rank, "name_masked": e.name_masked, "points": e.points,
              "mine": e.household_id == household_id, "household_id": e.household_id if staff else None}
             for e in board.entries]
    me = {"rank": board.my_rank, "points": board.my_points} if household_id else None
    return {"campaign_id": campaign.id, "items": items, "me": me, "source": board.source}
