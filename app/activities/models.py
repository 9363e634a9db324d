"""Factor sets (methodology versions), green actions and the cap usage that values them."""
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import (
    BigInteger, Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, event,
    func, inspect, select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from ..columns import Dec, UTCDateTime, new_id, utcnow
from ..extensions import db

SOURCES = ("self_reported", "staff", "device", "import")
# Who may record a factor row (its `sources`), by action source.
RECORDER_OF_SOURCE = {"self_reported": "resident", "staff": "staff", "device": "device", "import": "import"}
RECORDERS = ("resident", "staff", "device", "import")
STATUSES = ("pending", "approved", "rejected", "reversed")


class FactorSet(db.Model):
    """A methodology version: draft while being prepared, immutable once published."""

    __tablename__ = "factor_sets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    effective_from: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(10), default="draft")  # draft | published
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # effective_from once published: unique, so two published sets never start on the same day.
    published_from: Mapped[date | None] = mapped_column(Date, unique=True)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rows: Mapped[list["FactorRow"]] = relationship(
        back_populates="factor_set", order_by="FactorRow.position", cascade="all, delete-orphan",
    )

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def effective_until(self) -> date | None:
        """The last day a published set is in force, once a later set has been published."""
        if self.status != "published":
            return None
        later = db.session.scalar(
            select(func.min(FactorSet.effective_from))
            .where(FactorSet.status == "published", FactorSet.effective_from > self.effective_from)
        )
        return later - timedelta(days=1) if later else None


class FactorRow(db.Model):
    """One action type and variant of a factor set: its value per unit, caps and who may record it.

    `variant` is "" when the action type has no variants, so the unique constraint holds.
    """

    __tablename__ = "factor_rows"
    __table_args__ = (UniqueConstraint("factor_set_id", "action_type", "variant"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    factor_set_id: Mapped[str] = mapped_column(ForeignKey("factor_sets.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    action_type: Mapped[str] = mapped_column(String(40))
    variant: Mapped[str] = mapped_column(String(40), default="")
    unit: Mapped[str] = mapped_column(String(12))
    kgco2e_per_unit: Mapped[Decimal] = mapped_column(Dec(18, 6))
    points_per_unit: Mapped[Decimal] = mapped_column(Dec(18, 6))
    daily_cap: Mapped[Decimal | None] = mapped_column(Dec(18, 3))
    monthly_cap: Mapped[Decimal | None] = mapped_column(Dec(18, 3))
    sources: Mapped[str] = mapped_column(String(60))  # "|"-joined recorders: resident|staff|device|import
    self_approvable: Mapped[bool] = mapped_column(Boolean, default=False)
    verifiable: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(Text)
    factor_set: Mapped[FactorSet] = relationship(back_populates="rows", lazy="joined")

    @property
    def source_list(self) -> list[str]:
        return [s for s in self.sources.split("|") if s]


class Action(db.Model):
    """One green action of a household member, from its report to its valuation and any reversal."""

    __tablename__ = "actions"
    __table_args__ = (
        UniqueConstraint("integration_id", "external_id"),
        Index("ix_actions_household_created", "household_id", "created_at", "id"),
        Index("ix_actions_community_status_created", "community_id", "status", "created_at", "id"),
        # A household's recent approved quantities of one type (the anomaly rule of integrations).
        Index("ix_actions_household_type_approved", "household_id", "action_type", "status", "approved_at"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected', 'reversed')", name="status_known"),
        CheckConstraint("points = base_points + campaign_points", name="points_add_up"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    household_id: Mapped[str] = mapped_column(ForeignKey("households.id"))
    resident_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"))
    action_type: Mapped[str] = mapped_column(String(40))
    variant: Mapped[str | None] = mapped_column(String(40))
    quantity: Mapped[Decimal] = mapped_column(Dec(12, 3))
    credited_quantity: Mapped[Decimal | None] = mapped_column(Dec(12, 3))
    unit: Mapped[str] = mapped_column(String(12))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(10), default="pending")
    evidence: Mapped[str | None] = mapped_column(String(500))
    note: Mapped[str | None] = mapped_column(String(500))
    review_reason: Mapped[str | None] = mapped_column(String(40))
    appeal: Mapped[bool] = mapped_column(Boolean, default=False)
    appeal_note: Mapped[str | None] = mapped_column(String(500))
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    reversal_reason: Mapped[str | None] = mapped_column(String(500))
    factor_id: Mapped[str] = mapped_column(ForeignKey("factor_rows.id"), index=True)
    reduction_g: Mapped[int] = mapped_column(BigInteger, default=0)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    base_points: Mapped[int] = mapped_column(BigInteger, default=0)
    campaign_points: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)
    receipt: Mapped[str | None] = mapped_column(Text)  # JSON, frozen at approval
    recorded_by: Mapped[str | None] = mapped_column(String(32))
    approved_by: Mapped[str | None] = mapped_column(String(32))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejected_by: Mapped[str | None] = mapped_column(String(32))
    rejected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reversed_by: Mapped[str | None] = mapped_column(String(32))
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    integration_id: Mapped[str | None] = mapped_column(String(32))
    external_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    factor: Mapped[FactorRow] = relationship(lazy="joined")


class CapUsage(db.Model):
    """How much of a factor row's daily or monthly cap a household has used, in thousandths of a unit.

    `period` is "D:2026-05-01" or "M:2026-05" (Asia/Shanghai). Approvals lock the row and
    change `used_milli` inside their transaction, so concurrent approvals cannot overrun a cap.
    """

    __tablename__ = "cap_usage"
    __table_args__ = (CheckConstraint("used_milli >= 0", name="used_not_negative"),)
    household_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    factor_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    period: Mapped[str] = mapped_column(String(12), primary_key=True)
    used_milli: Mapped[int] = mapped_column(BigInteger, default=0)


class PublishedFactorSetImmutable(Exception):
    """A published factor set or one of its rows was about to change."""


def _was_published(factor_set: FactorSet) -> bool:
    history = inspect(factor_set).attrs.status.history
    before = history.deleted or history.unchanged
    return bool(before) and before[0] == "published"


@event.listens_for(Session, "before_flush")
def _guard_published_factor_sets(session, flush_context, instances):
    """Last line of defence: a published methodology is never edited or deleted, whatever the caller."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, FactorSet) and (obj in session.deleted or session.is_modified(obj)):
            if inspect(obj).persistent and _was_published(obj):
                raise PublishedFactorSetImmutable(f"factor set {obj.code} is published and cannot change")
        elif isinstance(obj, FactorRow) and (obj in session.deleted or session.is_modified(obj)):
            with session.no_autoflush:
                owner = session.get(FactorSet, obj.factor_set_id)
            if owner is not None and (owner.status == "published" or _was_published(owner)):
                raise PublishedFactorSetImmutable(f"factor set {owner.code} is published and cannot change")
    for obj in session.new:
        if isinstance(obj, FactorRow):
            with session.no_autoflush:
                owner = obj.factor_set or (obj.factor_set_id and session.get(FactorSet, obj.factor_set_id))
            if owner and inspect(owner).persistent and _was_published(owner):
                raise PublishedFactorSetImmutable(f"factor set {owner.code} is published and cannot change")
