"""Daily rollups, exports, reduction batches with serial ranges, parks, transfers and retirements."""
from datetime import date, datetime

from sqlalchemy import BigInteger, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..columns import UTCDateTime, new_id, utcnow
from ..extensions import db

# ---------------------------------------------------------------- rollups


class DailyRollup(db.Model):
    """Approved actions of one community, action type, variant and factor set on one Asia/Shanghai day.

    Kept current in the transaction that approves or reverses an action (`rollups.py`); exports and
    the summary read these instead of the actions table. `variant` is "" for types without variants.
    """

    __tablename__ = "district_daily_rollups"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    community_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    action_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    variant: Mapped[str] = mapped_column(String(40), primary_key=True)
    factor_set: Mapped[str] = mapped_column(String(40), primary_key=True)
    month: Mapped[str] = mapped_column(String(7))  # "2026-05", the month of `day`
    actions: Mapped[int] = mapped_column(BigInteger, default=0)
    reduction_g: Mapped[int] = mapped_column(BigInteger, default=0)
    verified_reduction_g: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(BigInteger, default=0)


class HouseholdMonth(db.Model):
    """How many approved actions of one type a household had in one community and Asia/Shanghai month,
    and the grams of CO2e they reduced.

    Distinct households cannot be added up across days; counting these rows (actions > 0) gives the
    participating households of any grouping of whole months. A household's rows add up to its
    reduction totals (its wallet), a few rows a month however many actions it logs.
    """

    __tablename__ = "district_household_months"
    __table_args__ = (Index("ix_district_household_months_household", "household_id"),)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    community_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    action_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    household_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    actions: Mapped[int] = mapped_column(BigInteger, default=0)
    reduction_g: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    verified_reduction_g: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


# ---------------------------------------------------------------- exports


class Export(db.Model):
    """A district report built by a background job into a file under EXPORT_DIR."""

    __tablename__ = "district_exports"
    __table_args__ = (Index("ix_district_exports_expires", "expires_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(32))
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date)
    group_by: Mapped[str] = mapped_column(String(60))  # ","-joined keys in the order asked
    format: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(10), default="queued")  # queued | done | expired (else: the job's)
    row_count: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    checksum_sha256: Mapped[str | None] = mapped_column(String(64))
    file_name: Mapped[str | None] = mapped_column(String(80))
    meta: Mapped[str | None] = mapped_column(Text)  # JSON metadata record
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------- reduction batches


class SerialCounter(db.Model):
    """The next free serial of a serial space; one row, advanced under its row lock."""

    __tablename__ = "district_serial_counters"
    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_serial: Mapped[int] = mapped_column(BigInteger)


class ReductionBatch(db.Model):
    """Verified grams of one community and period, issued as the serial range [serial_from, serial_to]."""

    __tablename__ = "reduction_batches"
    __table_args__ = (
        UniqueConstraint("serial_from"),
        Index("ix_reduction_batches_community_created", "community_id", "created_at", "id"),
        CheckConstraint("serial_to - serial_from + 1 = quantity_g", name="range_matches_quantity"),
        CheckConstraint("quantity_g > 0", name="quantity_positive"),
        CheckConstraint("quantity_g = gross_g - deducted_g", name="net_of_deductions"),
        CheckConstraint("transferred_g >= 0 AND transferred_g <= quantity_g", name="transferred_in_range"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    community_id: Mapped[str] = mapped_column(ForeignKey("communities.id"))
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date)
    vintage: Mapped[int] = mapped_column(Integer)
    serial_from: Mapped[int] = mapped_column(BigInteger)
    serial_to: Mapped[int] = mapped_column(BigInteger)
    gross_g: Mapped[int] = mapped_column(BigInteger)
    deducted_g: Mapped[int] = mapped_column(BigInteger)
    quantity_g: Mapped[int] = mapped_column(BigInteger)
    action_count: Mapped[int] = mapped_column(Integer)
    factor_sets: Mapped[str] = mapped_column(Text)  # ","-joined codes
    transferred_g: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BatchAction(db.Model):
    """An action in a batch: the primary key makes the database refuse a second batch for it."""

    __tablename__ = "reduction_batch_actions"
    action_id: Mapped[str] = mapped_column(ForeignKey("actions.id"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("reduction_batches.id"), index=True)
    reduction_g: Mapped[int] = mapped_column(BigInteger)


class BatchDeduction(db.Model):
    """A batched action that was reversed: its grams come off the community's next batch."""

    __tablename__ = "reduction_batch_deductions"
    __table_args__ = (Index("ix_reduction_batch_deductions_pending", "community_id", "applied_batch_id"),)
    action_id: Mapped[str] = mapped_column(ForeignKey("actions.id"), primary_key=True)
    community_id: Mapped[str] = mapped_column(String(32))
    source_batch_id: Mapped[str] = mapped_column(ForeignKey("reduction_batches.id"))
    quantity_g: Mapped[int] = mapped_column(BigInteger)
    applied_batch_id: Mapped[str | None] = mapped_column(ForeignKey("reduction_batches.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------- parks


class Park(db.Model):
    """An industrial park's carbon-offset account: grams received from batches, grams retired."""

    __tablename__ = "parks"
    __table_args__ = (
        CheckConstraint("retired_g >= 0 AND retired_g <= received_g", name="retired_within_received"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    received_g: Mapped[int] = mapped_column(BigInteger, default=0)
    retired_g: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParkTransfer(db.Model):
    """A contiguous serial sub-range of a batch moved into a park; `retired_g` of it retired, lowest first."""

    __tablename__ = "park_transfers"
    __table_args__ = (
        UniqueConstraint("batch_id", "serial_from"),
        Index("ix_park_transfers_park_serial", "park_id", "serial_from"),
        CheckConstraint("serial_to - serial_from + 1 = quantity_g", name="range_matches_quantity"),
        CheckConstraint("quantity_g > 0", name="quantity_positive"),
        CheckConstraint("retired_g >= 0 AND retired_g <= quantity_g", name="retired_in_range"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    park_id: Mapped[str] = mapped_column(ForeignKey("parks.id"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("reduction_batches.id"), index=True)
    serial_from: Mapped[int] = mapped_column(BigInteger)
    serial_to: Mapped[int] = mapped_column(BigInteger)
    quantity_g: Mapped[int] = mapped_column(BigInteger)
    retired_g: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Retirement(db.Model):
    """Grams a park retired for a purpose: final, the serials never move again."""

    __tablename__ = "park_retirements"
    __table_args__ = (Index("ix_park_retirements_park_created", "park_id", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    park_id: Mapped[str] = mapped_column(ForeignKey("parks.id"))
    quantity_g: Mapped[int] = mapped_column(BigInteger)
    purpose: Mapped[str] = mapped_column(String(200))
    beneficiary: Mapped[str | None] = mapped_column(String(200))
    inventory_year: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RetiredRange(db.Model):
    """One contiguous serial range a retirement took from one transfer."""

    __tablename__ = "park_retired_ranges"
    __table_args__ = (
        UniqueConstraint("transfer_id", "serial_from"),
        CheckConstraint("serial_to - serial_from + 1 = quantity_g", name="range_matches_quantity"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    retirement_id: Mapped[str] = mapped_column(ForeignKey("park_retirements.id"), index=True)
    transfer_id: Mapped[str] = mapped_column(ForeignKey("park_transfers.id"))
    batch_id: Mapped[str] = mapped_column(String(32))
    serial_from: Mapped[int] = mapped_column(BigInteger)
    serial_to: Mapped[int] = mapped_column(BigInteger)
    quantity_g: Mapped[int] = mapped_column(BigInteger)


class ParkInventory(db.Model):
    """A park's gross emissions of one year, so the statement shows gross, offset and net."""

    __tablename__ = "park_inventories"
    __table_args__ = (CheckConstraint("emissions_g >= 0", name="emissions_not_negative"),)
    park_id: Mapped[str] = mapped_column(ForeignKey("parks.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    emissions_g: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
