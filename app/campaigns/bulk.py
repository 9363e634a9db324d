"""Campaign parts of many approvals at once: the set-based twin of `service.apply_campaigns`.

Read once per batch, after the campaign accounts are locked (`service.lock_for_households`): the
active campaigns of the batch's communities, with their communities and action types, what each
household already holds of each capped campaign, and each campaign's last award number. Each
approval then takes its parts in (starts_at, id) order, cut to the household cap and to the budget
as the batch has left them, paid through the ledger journal; `write` appends the awards in one
statement. Nothing here commits.
"""
from sqlalchemy import func, select
from sqlalchemy.orm import lazyload

from ..activities.schemas import plain
from ..columns import new_id
from ..dialect import insert_rows
from ..extensions import db
from ..ledger import service as ledger
from ..ledger.kinds import EntryKind
from . import leaderboard
from .models import Campaign, CampaignAward, CampaignCommunity
from .service import action_types_of, add_holdings, counts_any, cut_part, held_points, uncut_part


class CampaignParts:
    """The campaigns that may pay parts of a batch's approvals, and the awards they pay."""

    def __init__(self, community_ids, household_ids, now, kinds: set[tuple[str, str]]):
        """The active campaigns of these communities that count any of these `kinds` of action
        ((action_type, variant or ""), a superset of the batch's approvals: those
        `service.lock_for_households` locked)."""
        campaigns = list(db.session.scalars(
            select(Campaign).where(Campaign.status == "active", Campaign.ends_at > now, Campaign.id.in_(
                select(CampaignCommunity.campaign_id).where(CampaignCommunity.community_id.in_(set(community_ids)))))
            .order_by(Campaign.starts_at, Campaign.id).options(lazyload("*"))
            .execution_options(populate_existing=True)))
        self._awards: list[dict] = []
        self._types = action_types_of([c.id for c in campaigns]) if campaigns else {}
        self._campaigns = [c for c in campaigns if counts_any(self._types[c.id], kinds)]
        if not self._campaigns:
            return
        ids = [c.id for c in self._campaigns]
        if not db.session.info.get(ledger.LOCKED, set()).issuperset(self.account_ids):
            # Locked up front by service.lock_for_households; one activated since is locked now, as
            # apply_campaigns would.
            ledger.lock(*[("campaign", campaign_id) for campaign_id in ids])
        self._communities = {}
        for campaign_id, community_id in db.session.execute(
                select(CampaignCommunity.campaign_id, CampaignCommunity.community_id)
                .where(CampaignCommunity.campaign_id.in_(ids))):
            self._communities.setdefault(campaign_id, set()).add(community_id)
        self._held = held_points([c.id for c in self._campaigns if c.per_household_cap is not None], household_ids)
        self._seq = dict(db.session.execute(
            select(CampaignAward.campaign_id, func.max(CampaignAward.seq))
            .where(CampaignAward.campaign_id.in_(ids)).group_by(CampaignAward.campaign_id)).all())

    @property
    def account_ids(self) -> list[str]:
        """The ledger accounts of these campaigns (their budgets), which pay the parts."""
        return [ledger.account_id("campaign", c.id) for c in self._campaigns]

    def apply(self, action, journal, at) -> int:
        """Pay the parts of the campaigns matching a just-approved action (its base points credited).

        Sets the action's campaign_points, points and the receipt's campaigns, as apply_campaigns does;
        returns the campaign points.
        """
        parts, total = [], 0
        for campaign in self._campaigns:
            if not self._matches(campaign, action):
                continue
            uncut = uncut_part(action.base_points, campaign)
            held = self._held.get((campaign.id, action.household_id), 0) if campaign.per_household_cap is not None \
                else 0
            account = ledger.account_id("campaign", campaign.id)
            points, cut = cut_part(uncut, campaign, held, journal.balance(account))
            if points:
                journal.award(action.household_id, points, kind=EntryKind.CAMPAIGN_BONUS, ref_type="action",
                              ref_id=action.id, actor_id=action.approved_by, source=account, at=at)
            self._seq[campaign.id] = self._seq.get(campaign.id, 0) + 1
            self._held[(campaign.id, action.household_id)] = held + points
            self._awards.append({"id": new_id(), "campaign_id": campaign.id, "seq": self._seq[campaign.id],
                                 "kind": "action", "household_id": action.household_id, "action_id": action.id,
                                 "checkin_id": None, "points": points, "uncut_points": uncut, "cut": cut,
                                 "created_at": at})
            parts.append({"campaign_id": campaign.id, "name": campaign.name, "multiplier": plain(campaign.multiplier),
                          "bonus_points": campaign.bonus_points, "uncut_points": uncut, "points": points, "cut": cut})
            total += points
        action.campaign_points = total
        action.points = action.base_points + total
        action.receipt.update({"campaigns": parts, "campaign_points": total, "points": action.points})
        return total

    def _matches(self, campaign: Campaign, action) -> bool:
        return (action.community_id in self._communities.get(campaign.id, ())
                and campaign.starts_at <= action.occurred_at < campaign.ends_at
                and counts_any(self._types.get(campaign.id, ()), ((action.action_type, action.variant or ""),)))

    def write(self) -> None:
        """Append the awards (one statement) and stage each campaign's leaderboard sync."""
        insert_rows(CampaignAward.__table__, self._awards)
        add_holdings(self._awards)  # all "action" awards
        for campaign_id in dict.fromkeys(a["campaign_id"] for a in self._awards):
            leaderboard.stage(campaign_id)
        self._awards = []
