"""Rewards, redemption codes and redemptions."""
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..columns import UTCDateTime, new_id, utcnow
from ..extensions import db
from ..merchants.models import Merchant


class Reward(db.Model):
    """What a merchant offers for points: price, stock, per-household limit, validity window."""

    __tablename__ = "rewards"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("points_cost > 0", name="points_cost_positive"),
        Index("ix_rewards_merchant_created", "merchant_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    merchant: Mapped[Merchant] = relationship(viewonly=True, lazy="joined")
    name: Mapped[str] = mapped_column(String(80))
    points_cost: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)
    per_household_limit: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    district_wide: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RedemptionCode(db.Model):
    """A short-lived, single-use code a household shows at the merchant.

    Only the SHA-256 of the digits is looked up. `code_encrypted` is the digits
    encrypted under the data keys (app/keyring.py), so that the household can
    fetch its QR images again; the database alone does not reveal a live code. `state`: live → used (a redemption) | burned (a
    refusal, whose 409 code is kept for replays).
    """

    __tablename__ = "redemption_codes"
    __table_args__ = (
        Index("ix_redemption_codes_household_state", "household_id", "state", "expires_at"),
        Index("ix_redemption_codes_household_created", "household_id", "created_at", "id"),
        CheckConstraint("quantity >= 1", name="quantity_positive"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_encrypted: Mapped[str] = mapped_column(String(255))
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    created_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    reward_id: Mapped[str] = mapped_column(ForeignKey("rewards.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    points_cost: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    state: Mapped[str] = mapped_column(String(10), default="live")
    refusal_code: Mapped[str | None] = mapped_column(String(40))
    # Not stored: the digits, known only to the request that made the code (its reply shows them once).
    digits = None

    @property
    def qr_png_url(self) -> str:
        return f"/api/v1/redemption-codes/{self.id}/qr.png"

    @property
    def qr_svg_url(self) -> str:
        return f"/api/v1/redemption-codes/{self.id}/qr.svg"
    redemption_id: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Redemption(db.Model):
    """A code turned into a reward: the household paid the merchant. Voided, never deleted."""

    __tablename__ = "redemptions"
    __table_args__ = (
        Index("ix_redemptions_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_redemptions_merchant_voided", "merchant_id", "voided_at"),
        Index("ix_redemptions_household_reward", "household_id", "reward_id", "status"),
        Index("ix_redemptions_household_merchant", "household_id", "merchant_id", "created_at"),
        Index("ix_redemptions_household_created", "household_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code_id: Mapped[str] = mapped_column(ForeignKey("redemption_codes.id"), unique=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    reward_id: Mapped[str] = mapped_column(ForeignKey("rewards.id"))
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    points: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default="completed")  # completed | voided
    transfer_id: Mapped[str] = mapped_column(String(32))
    redeemed_by: Mapped[str] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    void_reason: Mapped[str | None] = mapped_column(String(500))
    void_transfer_id: Mapped[str | None] = mapped_column(String(32))
    reward: Mapped[Reward] = relationship(viewonly=True, lazy="joined")
    merchant: Mapped[Merchant] = relationship(viewonly=True, lazy="joined")
