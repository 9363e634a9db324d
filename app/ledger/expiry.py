"""Points expiry: lots past their expiry date move to the expiry account.

Run daily (`flask --app app points expire`, or the job "ledger.expire_points").
Each lot is expired by one `from_lot` transfer of what it still holds; the lot
is then empty, so a second run — or a concurrent one — finds nothing to do.
"""
from datetime import datetime

from sqlalchemy import select

from ..columns import utcnow
from ..extensions import db
from .. import jobs
from ..transaction import transaction
from . import service as ledger
from .kinds import EntryKind
from .models import LedgerAccount, PointLot

BATCH_SIZE = 200


def expire_points(now: datetime | None = None, batch_size: int = BATCH_SIZE) -> int:
    """Expire every lot whose expiry time has passed; return how many lots were expired.

    One unit of work per batch (this function owns them: the job is "chunked"). The
    household accounts of a batch are locked first (skipping those another
    transaction holds, which a later pass picks up), then their expiry shards in
    id order, then each lot — the order every transfer locks in.
    """
    now = now or utcnow()
    expired = 0
    while True:
        with transaction():
            jobs.keep_alive()  # run as a job: renew its lease with each batch
            batch = _due(now, batch_size, skip_locked=True) or _due(now, batch_size, skip_locked=False)
            if not batch:
                return expired
            shards = {owner: ledger.system_account("expiry", owner) for _, _, owner in batch}
            ledger.lock(*shards.values())
            for lot_id, account_id, owner in batch:
                expired += _expire_lot(lot_id, db.session.get(LedgerAccount, account_id), shards[owner], now)


def _due(now: datetime, limit: int, *, skip_locked: bool) -> list[tuple[str, str, str]]:
    """(lot id, account id, household id) of lots due to expire, their household accounts locked."""
    rows = db.session.execute(
        select(PointLot.id, LedgerAccount.id, LedgerAccount.owner_id)
        .join(LedgerAccount, LedgerAccount.id == PointLot.account_id)
        .where(PointLot.expires_at <= now, PointLot.remaining > 0)
        .order_by(LedgerAccount.id, PointLot.expires_at, PointLot.id)
        .limit(limit)
        .with_for_update(of=LedgerAccount, skip_locked=skip_locked)
    ).all()
    return [tuple(row) for row in rows]


def _expire_lot(lot_id: str, wallet: LedgerAccount, sink: LedgerAccount, now: datetime) -> int:
    lot = db.session.scalar(
        select(PointLot).where(PointLot.id == lot_id).with_for_update().execution_options(populate_existing=True)
    )
    if lot.remaining <= 0 or lot.expires_at > now:  # spent or expired meanwhile
        return 0
    ledger.transfer(wallet, sink, lot.remaining, kind=EntryKind.EXPIRY, ref_type="lot", ref_id=lot.id,
                    reason="Points expired", from_lot=lot.id)
    return 1


def expire_points_job(now: str | None = None) -> None:
    """The daily expiry job; `now` (ISO 8601) only for a catch-up run."""
    expire_points(datetime.fromisoformat(now) if now else None)
