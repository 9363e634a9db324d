"""Community merchants that redeem residents' points."""
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from ..columns import UTCDateTime, new_id, utcnow
from ..extensions import db


class Merchant(db.Model):
    __tablename__ = "merchants"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(80))
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    daily_redemption_limit: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
