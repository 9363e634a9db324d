"""Accounts, append-only entries (hash-chained per account) and expiring point lots."""
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..columns import UTCDateTime, new_id, utcnow
from ..extensions import db

SYSTEM_KINDS = ("issuance", "expiry")
OWNED_KINDS = ("household", "merchant", "campaign")
GENESIS = "0" * 64


class LedgerAccount(db.Model):
    """A points account; `balance` is a cache of its entries, kept in the same transaction.

    System accounts (issuance, expiry) are split into shards so that no single
    row is locked by every credit in the district.
    """

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # Not a unique key: the id is a hash of these three (service.account_id), so the primary key
        # already allows one row each. A second unique index deadlocked two transactions creating the
        # same account at once (INSERT … ON CONFLICT (id) waits on any other unique index while holding
        # its speculative insertion; migration 0011).
        Index("ix_ledger_accounts_kind_owner_id_shard", "kind", "owner_id", "shard"),
        CheckConstraint("balance >= 0 OR kind IN ('issuance', 'expiry')", name="balance_not_negative"),
        CheckConstraint("clawback >= 0", name="clawback_not_negative"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(12))
    owner_id: Mapped[str] = mapped_column(String(32))
    shard: Mapped[int] = mapped_column(Integer, default=0)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    clawback: Mapped[int] = mapped_column(BigInteger, default=0)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    head_hash: Mapped[str] = mapped_column(String(64), default=GENESIS)
    # Caches of its entries like `balance`, kept by the same statements: the sum of its earning entries,
    # and minus the sum of its redeeming ones (a wallet's lifetime earned and redeemed, read without
    # summing its history).
    earned: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    redeemed: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerEntry(db.Model):
    """One side of a transfer. Never updated or deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("account_id", "seq"),
        Index("ix_ledger_entries_ref", "ref_type", "ref_id"),
        Index("ix_ledger_entries_account_created", "account_id", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    transfer_id: Mapped[str] = mapped_column(String(32), index=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(30))
    ref_type: Mapped[str] = mapped_column(String(30))
    ref_id: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class PointLot(db.Model):
    """Points credited to a household together, expiring together."""

    __tablename__ = "point_lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_in_range"),
        Index("ix_point_lots_account_expiry", "account_id", "expires_at"),
        Index("ix_point_lots_expiry_open", "expires_at", "remaining"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.id"))
    transfer_id: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LotUse(db.Model):
    """Which lots a debit consumed (positive) or a compensating credit restored (negative)."""

    __tablename__ = "lot_uses"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    lot_id: Mapped[str] = mapped_column(ForeignKey("point_lots.id"), index=True)
    transfer_id: Mapped[str] = mapped_column(String(32), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
