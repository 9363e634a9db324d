"""Campaigns: their communities and action types, check-in codes, check-ins and the award log."""
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..columns import Dec, UTCDateTime, new_id, utcnow
from ..extensions import db

STATUSES = ("draft", "active", "ended")
AWARD_KINDS = ("action", "checkin", "reversal")


class Campaign(db.Model):
    """A staff-run, budget-funded campaign: draft → active → ended.

    The budget lives in the ledger account ("campaign", id): activation funds it
    from issuance, every campaign part and check-in is paid from it, and ending
    returns what is left to issuance.
    """

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'active', 'ended')", name="status_known"),
        CheckConstraint("ends_at > starts_at", name="window_not_empty"),
        CheckConstraint("bonus_points >= 0", name="bonus_not_negative"),
        CheckConstraint("budget_points > 0", name="budget_positive"),
        CheckConstraint("per_household_cap IS NULL OR per_household_cap > 0", name="cap_positive"),
        Index("ix_campaigns_status_ends", "status", "ends_at"),
        Index("ix_campaigns_created", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(80))
    description: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(10), default="draft")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    multiplier: Mapped[Decimal] = mapped_column(Dec(8, 3))
    bonus_points: Mapped[int] = mapped_column(BigInteger, default=0)
    budget_points: Mapped[int] = mapped_column(BigInteger)
    per_household_cap: Mapped[int | None] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    activated_by: Mapped[str | None] = mapped_column(String(32))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(32))  # null: ended by its end time passing
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    communities: Mapped[list["CampaignCommunity"]] = relationship(
        cascade="all, delete-orphan", order_by="CampaignCommunity.position", lazy="selectin")
    action_types: Mapped[list["CampaignActionType"]] = relationship(
        cascade="all, delete-orphan", order_by="CampaignActionType.position", lazy="selectin")

    @property
    def community_ids(self) -> list[str]:
        return [c.community_id for c in self.communities]


class CampaignCommunity(db.Model):
    """A community a campaign runs in."""

    __tablename__ = "campaign_communities"
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class CampaignActionType(db.Model):
    """An action type a campaign applies to; `variant` "" means every variant of the type."""

    __tablename__ = "campaign_action_types"
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    action_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    variant: Mapped[str] = mapped_column(String(40), primary_key=True, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    @property
    def label(self) -> str:
        return f"{self.action_type}:{self.variant}" if self.variant else self.action_type


class CheckinCode(db.Model):
    """An event check-in code of a campaign. Only the SHA-256 of the code is looked up.

    The code itself is derived from the app secret, the row id and `salt`, so staff can fetch
    its QR image again while the database alone does not reveal it.
    """

    __tablename__ = "campaign_checkin_codes"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_campaign_checkin_codes_campaign_created", "campaign_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    salt: Mapped[str] = mapped_column(String(32))
    points: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Checkin(db.Model):
    """A household checked in at an event with a code: at most once per code and household."""

    __tablename__ = "campaign_checkins"
    __table_args__ = (UniqueConstraint("code_id", "household_id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code_id: Mapped[str] = mapped_column(ForeignKey("campaign_checkin_codes.id"))
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"), index=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignAward(db.Model):
    """One movement of a household's campaign points, append-only: an action's part, a check-in, a reversal.

    `seq` numbers a campaign's awards without gaps, in commit order (it is taken under the lock of
    the campaign's ledger account); the Redis leaderboard records the last `seq` it holds, so a
    missing or stale sorted set is detected and caught up from here. `points` is 0 when the budget
    or the household cap left nothing (`cut` says which), negative for a reversal.
    """

    __tablename__ = "campaign_awards"
    __table_args__ = (
        UniqueConstraint("campaign_id", "seq"),
        UniqueConstraint("campaign_id", "action_id", "kind"),
        CheckConstraint("kind IN ('action', 'checkin', 'reversal')", name="kind_known"),
        Index("ix_campaign_awards_campaign_household", "campaign_id", "household_id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(10))
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    action_id: Mapped[str | None] = mapped_column(ForeignKey("actions.id"), index=True)
    checkin_id: Mapped[str | None] = mapped_column(ForeignKey("campaign_checkins.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    uncut_points: Mapped[int] = mapped_column(BigInteger, default=0)
    cut: Mapped[str | None] = mapped_column(String(20))  # None | "household_cap" | "budget"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CampaignHolding(db.Model):
    """What a household holds of a campaign's action parts: its "action" awards net of its "reversal"
    ones (check-ins are not capped, so not counted). Every such award adds its points here in the same
    transaction, under the campaign account's lock, so the household cap is checked against one row,
    not a sum over the household's awards, which grow all through the campaign. A household without
    a row holds 0.
    """

    __tablename__ = "campaign_holdings"
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"), primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)
