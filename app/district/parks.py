"""Parks' offset accounts: transfers of batch sub-ranges in, retirements out, the statement.

Every amount is guarded inside its write: a transfer advances the batch's `transferred_g` with
`UPDATE … WHERE transferred_g + q <= quantity_g`, a retirement the park's `retired_g` with
`UPDATE … WHERE received_g - retired_g >= q`; each row lock is held to the commit, so concurrent
requests take exactly what is there and the rest get 409 exceeds_available. Lock order: batch, then
park, then the park's transfer rows (serial order).
"""
import re
from collections import defaultdict

from sqlalchemy import select, update

from ..errors import AppError, Forbidden, NotFound, validation_error
from ..extensions import db
from ..localtime import today
from .batches import serial_label
from .schemas import YEAR
from .models import Park, ParkInventory, ParkTransfer, ReductionBatch, RetiredRange, Retirement


class ExceedsAvailable(AppError):
    status, code, title = 409, "exceeds_available", "More grams than are available"


class ParkNameTaken(AppError):
    status, code, title = 409, "park_name_taken", "A park with this name exists"


def create_park(name: str) -> Park:
    """A new park with an empty offset account. Does not commit."""
    name = name.strip()
    if db.session.scalar(select(Park.id).where(Park.name == name)) is not None:
        raise ParkNameTaken()
    park = Park(name=name, received_g=0, retired_g=0)
    db.session.add(park)
    db.session.flush()
    return park


def park_for(user, park_id: str) -> Park:
    """The park if the caller may see it: any for a district admin, only their own for a park manager."""
    if user.role not in ("district_admin", "park_manager"):
        raise Forbidden()
    park = db.session.get(Park, park_id) if len(park_id) <= 32 else None
    if park is None or (user.role == "park_manager" and user.park_id != park.id):
        raise NotFound("No such park")
    return park


def list_parks(user) -> list[Park]:
    query = select(Park).order_by(Park.created_at, Park.id)
    if user.role == "park_manager":
        query = query.where(Park.id == user.park_id)
    return db.session.scalars(query).all()


def transfer(park: Park, batch_id: str, quantity_g: int, actor_id: str | None) -> ParkTransfer:
    """Move the batch's lowest untransferred `quantity_g` serials into the park. Does not commit."""
    batch = db.session.get(ReductionBatch, batch_id) if len(batch_id) <= 32 else None
    if batch is None:
        raise validation_error("batch_id", "No such reduction batch.")
    after = db.session.execute(
        update(ReductionBatch)
        .where(ReductionBatch.id == batch.id, ReductionBatch.transferred_g + quantity_g <= ReductionBatch.quantity_g)
        .values(transferred_g=ReductionBatch.transferred_g + quantity_g)
        .returning(ReductionBatch.transferred_g)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if after is None:
        left = db.session.scalar(select(ReductionBatch.quantity_g - ReductionBatch.transferred_g)
                                 .where(ReductionBatch.id == batch.id))
        raise ExceedsAvailable(f"The batch has {left} g left to transfer; {quantity_g} g were asked",
                               available_g=int(left))
    db.session.execute(
        update(Park).where(Park.id == park.id).values(received_g=Park.received_g + quantity_g)
        .execution_options(synchronize_session=False)
    )
    first = batch.serial_from + after - quantity_g
    moved = ParkTransfer(park_id=park.id, batch_id=batch.id, serial_from=first, serial_to=first + quantity_g - 1,
                         quantity_g=quantity_g, retired_g=0, created_by=actor_id)
    db.session.add(moved)
    db.session.flush()
    db.session.refresh(batch)
    return moved


def transfer_view(moved: ParkTransfer) -> dict:
    batch = db.session.get(ReductionBatch, moved.batch_id)
    return {
        "id": moved.id, "park_id": moved.park_id, "batch_id": moved.batch_id, "quantity_g": moved.quantity_g,
        "serial_from": moved.serial_from, "serial_to": moved.serial_to,
        "serial_label": serial_label(batch, moved.serial_from, moved.serial_to),
        "batch_available_g": batch.quantity_g - batch.transferred_g, "created_at": moved.created_at,
    }


def retire(park: Park, data: dict, actor_id: str | None) -> Retirement:
    """Retire the park's lowest available serials: final, they never move again. Does not commit."""
    quantity = data["quantity_g"]
    taken = db.session.execute(
        update(Park).where(Park.id == park.id, Park.received_g - Park.retired_g >= quantity)
        .values(retired_g=Park.retired_g + quantity).execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        db.session.refresh(park)
        raise ExceedsAvailable(f"The park holds {park.received_g - park.retired_g} g available; {quantity} g were asked",
                               available_g=park.received_g - park.retired_g)
    retirement = Retirement(
        park_id=park.id, quantity_g=quantity, purpose=data["purpose"].strip(),
        beneficiary=(data.get("beneficiary") or "").strip() or None,
        inventory_year=data.get("inventory_year") or today().year, created_by=actor_id,
    )
    db.session.add(retirement)
    db.session.flush()
    blocks = db.session.scalars(
        select(ParkTransfer).where(ParkTransfer.park_id == park.id, ParkTransfer.retired_g < ParkTransfer.quantity_g)
        .order_by(ParkTransfer.serial_from).with_for_update().execution_options(populate_existing=True)
    ).all()
    left = quantity
    for block in blocks:
        if left == 0:
            break
        take = min(left, block.quantity_g - block.retired_g)
        first = block.serial_from + block.retired_g
        db.session.add(RetiredRange(retirement_id=retirement.id, transfer_id=block.id, batch_id=block.batch_id,
                                    serial_from=first, serial_to=first + take - 1, quantity_g=take))
        block.retired_g += take
        left -= take
    if left:  # the park's counters and its transfer rows disagree: refuse rather than retire less
        raise ExceedsAvailable("The park's holdings do not cover its available balance")
    db.session.flush()
    db.session.refresh(park)
    return retirement


def retirement_view(retirement: Retirement) -> dict:
    ranges = db.session.scalars(
        select(RetiredRange).where(RetiredRange.retirement_id == retirement.id).order_by(RetiredRange.serial_from)
    ).all()
    batches = {b.id: b for b in db.session.scalars(
        select(ReductionBatch).where(ReductionBatch.id.in_({r.batch_id for r in ranges})))}
    return {
        "id": retirement.id, "park_id": retirement.park_id, "quantity_g": retirement.quantity_g,
        "purpose": retirement.purpose, "beneficiary": retirement.beneficiary,
        "inventory_year": retirement.inventory_year, "created_at": retirement.created_at,
        "ranges": [{"batch_id": r.batch_id, "serial_from": r.serial_from, "serial_to": r.serial_to,
                    "quantity_g": r.quantity_g,
                    "serial_label": serial_label(batches[r.batch_id], r.serial_from, r.serial_to)} for r in ranges],
    }


def inventory_year(value: int | str) -> int:
    """The year of a park's inventory, 2000 to 2999 (YEAR), else a 422 on `year`: an int from the API's
    path, or the console form's text, which must be four ASCII digits ("²" is isdigit() yet no int())."""
    if isinstance(value, str):
        value = int(value) if re.fullmatch(r"[0-9]{4}", value.strip()) else 0
    if not YEAR.min <= value <= YEAR.max:
        raise validation_error("year", f"Must be between {YEAR.min} and {YEAR.max}.")
    return value


def set_inventory(park: Park, year: int, emissions_g: int, actor_id: str | None) -> ParkInventory:
    """A park's gross emissions of a year, replacing an earlier figure. Does not commit."""
    row = db.session.get(ParkInventory, (park.id, year), with_for_update=True)
    if row is None:
        row = ParkInventory(park_id=park.id, year=year, emissions_g=emissions_g, updated_by=actor_id)
        db.session.add(row)
    else:
        from ..columns import utcnow

        row.emissions_g, row.updated_by, row.updated_at = emissions_g, actor_id, utcnow()
    db.session.flush()
    return inventory_view(park, [row])[0]


def inventory_view(park: Park, rows: list[ParkInventory] | None = None) -> list[dict]:
    if rows is None:
        rows = db.session.scalars(select(ParkInventory).where(ParkInventory.park_id == park.id)
                                  .order_by(ParkInventory.year)).all()
    offsets = defaultdict(int)
    for year, grams in db.session.execute(
        select(Retirement.inventory_year, db.func.sum(Retirement.quantity_g))
        .where(Retirement.park_id == park.id).group_by(Retirement.inventory_year)
    ):
        offsets[year] = int(grams)
    return [{"year": r.year, "emissions_g": r.emissions_g, "offset_g": offsets[r.year],
             "net_g": r.emissions_g - offsets[r.year]} for r in rows]


def statement(park: Park) -> dict:
    """Received, retired and available grams, per batch with serial ranges, retirements and inventory."""
    db.session.refresh(park)
    transfers = db.session.scalars(
        select(ParkTransfer).where(ParkTransfer.park_id == park.id).order_by(ParkTransfer.serial_from)
    ).all()
    batches = {b.id: b for b in db.session.scalars(
        select(ReductionBatch).where(ReductionBatch.id.in_({t.batch_id for t in transfers})))}
    per_batch: dict[str, dict] = {}
    for t in transfers:
        batch = batches[t.batch_id]
        entry = per_batch.setdefault(t.batch_id, {
            "batch_id": batch.id, "serial_label": serial_label(batch), "community_id": batch.community_id,
            "vintage": batch.vintage, "factor_sets": [c for c in batch.factor_sets.split(",") if c],
            "received_g": 0, "retired_g": 0, "available_g": 0,
            "received_ranges": [], "retired_ranges": [], "available_ranges": [],
        })
        entry["received_g"] += t.quantity_g
        entry["retired_g"] += t.retired_g
        entry["available_g"] += t.quantity_g - t.retired_g
        entry["received_ranges"].append(_range(t.serial_from, t.serial_to, t.created_at))
        if t.retired_g:
            entry["retired_ranges"].append(_range(t.serial_from, t.serial_from + t.retired_g - 1))
        if t.retired_g < t.quantity_g:
            entry["available_ranges"].append(_range(t.serial_from + t.retired_g, t.serial_to))
    retirements = db.session.scalars(
        select(Retirement).where(Retirement.park_id == park.id).order_by(Retirement.created_at, Retirement.id)
    ).all()
    return {
        "park_id": park.id, "name": park.name, "received_g": park.received_g, "retired_g": park.retired_g,
        "available_g": park.received_g - park.retired_g, "batches": list(per_batch.values()),
        "retirements": [retirement_view(r) for r in retirements], "inventory": inventory_view(park),
    }


def _range(first: int, last: int, at=None) -> dict:
    item = {"serial_from": first, "serial_to": last, "quantity_g": last - first + 1}
    if at is not None:
        item["transferred_at"] = at
    return item


def park_view(park: Park) -> dict:
    return {"id": park.id, "name": park.name, "received_g": park.received_g, "retired_g": park.retired_g,
            "available_g": park.received_g - park.retired_g, "created_at": park.created_at}
