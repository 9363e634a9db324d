"""Community merchants that redeem residents' points, and the anomaly flags raised on them."""
from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..columns import UTCDateTime, new_id, utcnow
from ..extensions import db


class Merchant(db.Model):
    """A shop of a community; its staff scan residents' codes, its ledger account takes the points."""

    __tablename__ = "merchants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(80))
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    daily_redemption_limit: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AnomalyFlag(db.Model):
    """One household redeemed at one merchant more often on one Shanghai day than is usual.

    A flag is for community staff to look at; it never refuses anything.
    """

    __tablename__ = "anomaly_flags"
    __table_args__ = (
        UniqueConstraint("household_id", "merchant_id", "day"),
        Index("ix_anomaly_flags_community_created", "community_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(30), default="household_burst")
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"))
    day: Mapped[date] = mapped_column(Date)
    redemptions: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    merchant: Mapped[Merchant] = relationship(viewonly=True, lazy="joined")
    # Closed by community staff with a note; open again when the household redeems there again that day.
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(ForeignKey("users.id"))
    resolution_note: Mapped[str | None] = mapped_column(String(500))

    @property
    def state(self) -> str:
        return "open" if self.resolved_at is None else "resolved"
