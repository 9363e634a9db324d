"""Geography, households, users and their login sessions."""
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..columns import UTCDateTime, new_id, utcnow
from ..extensions import db

ROLES = ("resident", "district_admin", "community_staff", "merchant_staff", "park_manager")
STAFF_ROLES = ROLES[1:]


class Street(db.Model):
    """A street (街道) or town (镇) of the district."""

    __tablename__ = "streets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code: Mapped[str | None] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # street | town
    position: Mapped[int] = mapped_column(Integer)


class Community(db.Model):
    """A residents' community (社区) of a street or town."""

    __tablename__ = "communities"
    __table_args__ = (UniqueConstraint("street_id", "name"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    street_id: Mapped[str] = mapped_column(ForeignKey("streets.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer)
    street: Mapped[Street] = relationship(lazy="joined")


class Household(db.Model):
    """Points belong to a household; its residents share one wallet."""

    __tablename__ = "households"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"), index=True)
    invite_code: Mapped[str] = mapped_column(String(10), unique=True)
    invite_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    card_number: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(db.Model):
    """A resident or a staff member; `role` decides what it may do."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    phone: Mapped[str] = mapped_column(String(11), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    display_name: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))
    household_id: Mapped[str | None] = mapped_column(ForeignKey("households.id"), index=True)
    merchant_id: Mapped[str | None] = mapped_column(String(32), index=True)
    park_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    household: Mapped[Household | None] = relationship()
    staff_communities: Mapped[list["StaffCommunity"]] = relationship(cascade="all, delete-orphan")

    @property
    def roles(self) -> list[str]:
        return [self.role]

    @property
    def community_ids(self) -> list[str]:
        if self.role == "community_staff":
            return sorted(sc.community_id for sc in self.staff_communities)
        if self.household is not None:
            return [self.household.community_id]
        return []


class StaffCommunity(db.Model):
    """The communities a community_staff member looks after."""

    __tablename__ = "staff_communities"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"), primary_key=True)


class LoginSession(db.Model):
    """One login: the family of its access and refresh tokens."""

    __tablename__ = "login_sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(40))


class RefreshToken(db.Model):
    """A refresh token, stored only as its SHA-256; usable once."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index("ix_refresh_tokens_session", "session_id"),)
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("login_sessions.id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
