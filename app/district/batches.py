"""Reduction batches: verified grams of a community and period, issued once, as a serial range.

Each action enters at most one batch (the primary key of reduction_batch_actions). Issuance for one
community is serialised on that community's row, locks the actions it takes (so a concurrent reversal
waits for it and then sees the batch), nets the community's pending reversal deductions, and takes
its serials from one global counter advanced in a single guarded statement, so ranges never overlap.
"""
from datetime import date, timedelta

from sqlalchemy import exists, insert, literal, select, update

from ..accounts.models import Community
from ..activities.models import Action, FactorRow, FactorSet
from ..columns import UTCDateTime, utcnow
from ..errors import AppError, NotFound, validation_error
from ..dialect import dialect_insert
from ..extensions import db
from ..localtime import day_start
from .models import BatchAction, BatchDeduction, ReductionBatch, SerialCounter

SERIAL_SPACE = "reduction"
INSERT_CHUNK = 1000


class NothingToBatch(AppError):
    status, code, title = 409, "nothing_to_batch", "No verified grams are waiting for a batch"


def deduct_reversal(action) -> None:
    """If a reversed action was batched, owe its grams to the community's next batch. Does not commit.

    One statement; the reversal holds the action's lock, which issuance also takes, so a batch being
    issued concurrently is either seen here or does not take the action.
    """
    db.session.execute(
        insert(BatchDeduction).from_select(
            ["action_id", "community_id", "source_batch_id", "quantity_g", "created_at"],
            select(BatchAction.action_id, literal(action.community_id), BatchAction.batch_id,
                   BatchAction.reduction_g, literal(utcnow(), type_=UTCDateTime()))
            .where(BatchAction.action_id == action.id),
        )
    )


def issue_batch(community_id: str, period_from: date, period_to: date, actor_id: str | None) -> ReductionBatch:
    """Batch every approved, verified, unbatched action of the community in the period. Does not commit.

    Pending deductions of the community are netted; when they leave nothing (or there is nothing),
    409 nothing_to_batch and nothing changes: the actions wait for a later, larger batch.
    """
    # Serialises issuance per community; FOR NO KEY UPDATE does not block inserts that reference it.
    community = db.session.scalar(
        select(Community.id).where(Community.id == community_id).with_for_update(key_share=True)
    )
    if community is None:
        raise validation_error("community_id", "No such community.")
    rows = db.session.execute(
        select(Action.id, Action.reduction_g, FactorSet.code)
        .join(FactorRow, FactorRow.id == Action.factor_id)
        .join(FactorSet, FactorSet.id == FactorRow.factor_set_id)
        .where(Action.community_id == community_id, Action.status == "approved", Action.verified.is_(True),
               Action.occurred_at >= day_start(period_from),
               Action.occurred_at < day_start(period_to + timedelta(days=1)),
               ~exists().where(BatchAction.action_id == Action.id))
        .order_by(Action.id)
        .with_for_update(of=Action)
    ).all()
    deductions = db.session.execute(
        select(BatchDeduction.action_id, BatchDeduction.source_batch_id, BatchDeduction.quantity_g)
        .where(BatchDeduction.community_id == community_id, BatchDeduction.applied_batch_id.is_(None))
        .order_by(BatchDeduction.created_at, BatchDeduction.action_id)
        .with_for_update()
    ).all()
    gross = sum(r.reduction_g for r in rows)
    deducted = sum(d.quantity_g for d in deductions)
    if not rows or gross - deducted <= 0:
        detail = "No approved, verified action of this community in the period is waiting for a batch"
        if rows:
            detail = (f"{gross} g are waiting, but {deducted} g of reversed batched actions must come off "
                      f"the next batch first; issue a batch over a longer period")
        raise NothingToBatch(detail, gross_g=gross, pending_deductions_g=deducted)
    quantity = gross - deducted
    serial_from = _allocate(quantity)
    batch = ReductionBatch(
        community_id=community_id, period_from=period_from, period_to=period_to,
        vintage=period_from.year, serial_from=serial_from, serial_to=serial_from + quantity - 1,
        gross_g=gross, deducted_g=deducted, quantity_g=quantity, action_count=len(rows),
        factor_sets=",".join(sorted({r.code for r in rows})), transferred_g=0, created_by=actor_id,
    )
    db.session.add(batch)
    db.session.flush()
    for start in range(0, len(rows), INSERT_CHUNK):
        db.session.execute(insert(BatchAction), [
            {"action_id": r.id, "batch_id": batch.id, "reduction_g": r.reduction_g}
            for r in rows[start:start + INSERT_CHUNK]
        ])
    if deductions:
        db.session.execute(
            update(BatchDeduction)
            .where(BatchDeduction.action_id.in_([d.action_id for d in deductions]))
            .values(applied_batch_id=batch.id)
            .execution_options(synchronize_session=False)
        )
    batch.deductions = [{"action_id": d.action_id, "batch_id": d.source_batch_id, "quantity_g": d.quantity_g}
                        for d in deductions]
    return batch


def _allocate(quantity: int) -> int:
    """The first of `quantity` fresh serials: one upsert advances the counter under its row lock."""
    statement = dialect_insert(SerialCounter).values(
        name=SERIAL_SPACE, next_serial=1 + quantity)
    statement = statement.on_conflict_do_update(
        index_elements=["name"], set_={"next_serial": SerialCounter.next_serial + quantity},
    ).returning(SerialCounter.next_serial)
    after = db.session.execute(statement).scalar_one()
    return after - quantity


def get_batch(batch_id: str) -> ReductionBatch:
    batch = db.session.get(ReductionBatch, batch_id)
    if batch is None:
        raise NotFound("No such reduction batch")
    return batch


def list_batches(community_id: str | None, limit: int, cursor) -> list[ReductionBatch]:
    from ..paging import page_rows

    query = select(ReductionBatch)
    if community_id:
        query = query.where(ReductionBatch.community_id == community_id)
    return page_rows(query, ReductionBatch, limit, cursor)


def serial_label(batch: ReductionBatch, serial_from: int | None = None, serial_to: int | None = None) -> str:
    """SJ-<vintage>-<community>-<first>-<last>; the community is the first 8 characters of its id."""
    first = batch.serial_from if serial_from is None else serial_from
    last = batch.serial_to if serial_to is None else serial_to
    return f"SJ-{batch.vintage}-{batch.community_id[:8].upper()}-{first}-{last}"


def batch_view(batch: ReductionBatch) -> dict:
    deductions = getattr(batch, "deductions", None)
    if deductions is None:
        deductions = [
            {"action_id": d.action_id, "batch_id": d.source_batch_id, "quantity_g": d.quantity_g}
            for d in db.session.scalars(
                select(BatchDeduction).where(BatchDeduction.applied_batch_id == batch.id)
                .order_by(BatchDeduction.created_at, BatchDeduction.action_id))
        ]
    return {
        "id": batch.id, "community_id": batch.community_id, "period_from": batch.period_from,
        "period_to": batch.period_to, "vintage": batch.vintage, "serial_from": batch.serial_from,
        "serial_to": batch.serial_to, "serial_label": serial_label(batch), "quantity_g": batch.quantity_g,
        "gross_g": batch.gross_g, "deducted_g": batch.deducted_g, "deductions": deductions,
        "action_count": batch.action_count, "factor_sets": [c for c in batch.factor_sets.split(",") if c],
        "transferred_g": batch.transferred_g, "available_g": batch.quantity_g - batch.transferred_g,
        "created_at": batch.created_at,
    }

