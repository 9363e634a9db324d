"""The only code that moves points.

Every movement is a transfer: two entries, one negative and one positive,
each appended to its account's hash chain, of a kind from `kinds.EntryKind`.
The balance changes by a guarded UPDATE that also checks the chain head, so no
balance of a household, merchant or campaign goes below zero under any
interleaving. None of these functions commit.

The lock order, the one rule that keeps concurrent transfers from deadlocking:
every account a transaction will touch is locked through `lock()` (or, for a
transfer, by `transfer` itself), in ONE statement, in account-id order, before
anything is written; ids follow from (kind, owner, shard), so callers name the
accounts of every party up front (a wallet with its issuance shard, a campaign
budget with the wallets it pays). A transaction that needs more accounts later
locks them in a second pass only if none of them sorts before one it holds.
`_next_entry` (and `_append`) refuse to write to an account this transaction
has not locked. On SQLite the write transaction already holds the database lock.

Round trips: the locked rows are kept for the rest of the transaction (no second
read); a transfer is one guarded UPDATE of both accounts and one INSERT of both
entries, plus the point lots it spends or adds, all pre-built Core statements. On
PostgreSQL the UPDATE, the entries, a credited household's new lot and a debited
household's lot spending are one statement (a data-modifying WITH that writes the
rows only when both balances moved).
"""
import functools
import hashlib
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import (BigInteger, String, and_, bindparam, case, cast, event, func, insert, literal_column, or_, select,
                        union_all, update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ..columns import new_id, utcnow
from ..dialect import dialect_insert_for, dialect_name
from ..errors import Conflict, InsufficientPoints
from ..paging import page_rows
from ..rows import loaded, new, set_loaded
from ..extensions import core, db
from .kinds import EntryKind, totals_delta
from .models import GENESIS, SYSTEM_KINDS, LedgerAccount, LedgerEntry, LotUse, PointLot

SYSTEM_SHARDS = 16
SYSTEM_OWNER = "district"


# ---------------------------------------------------------------- accounts


@functools.lru_cache(maxsize=65536)
def account_id(kind: str, owner_id: str, shard: int = 0) -> str:
    """The id of an account follows from what it is, so finding it needs no search (a batch asks
    for the same few hundred ids a thousand times: each is hashed once)."""
    return hashlib.sha256(f"{kind}\x1f{owner_id}\x1f{shard}".encode()).hexdigest()[:32]


def ensure_account(kind: str, owner_id: str, shard: int = 0) -> LedgerAccount:
    """The account of (kind, owner), created if missing; safe under concurrent creation."""
    key = account_id(kind, owner_id, shard)
    held = db.session.info.get(LOCKED_ROWS)
    if held and key in held:
        return held[key]  # locked in this transaction: the row as it stands
    found = db.session.get(LedgerAccount, key)  # the identity map answers repeat look-ups
    if found is not None:
        return found
    try:
        with db.session.begin_nested():
            account = LedgerAccount(id=key, kind=kind, owner_id=owner_id, shard=shard)
            db.session.add(account)
        return account
    except IntegrityError:
        return db.session.get(LedgerAccount, key, populate_existing=True)


def system_account(kind: str, spread_key: str) -> LedgerAccount:
    """One shard of the issuance or expiry account, chosen by a stable hash of `spread_key`."""
    assert kind in SYSTEM_KINDS
    return ensure_account(kind, SYSTEM_OWNER, _shard(spread_key))


def _shard(spread_key: str) -> int:
    return zlib.crc32(spread_key.encode()) % SYSTEM_SHARDS


def _new_account(key: str, kind: str, owner_id: str, shard: int = 0, *, created_at: datetime) -> dict:
    return {"id": key, "kind": kind, "owner_id": owner_id, "shard": shard, "balance": 0, "clawback": 0,
            "seq": 0, "head_hash": GENESIS, "earned": 0, "redeemed": 0, "created_at": created_at}


def account_of(kind: str, owner_id: str) -> LedgerAccount:
    """The account of an owner (household, merchant, campaign)."""
    return ensure_account(kind, owner_id)


def household_parties(household_id: str) -> list[tuple]:
    """The accounts a credit to a household touches: its wallet and its issuance shard."""
    return [("household", household_id), issuance_party(household_id)]


def issuance_party(spread_key: str) -> tuple:
    """The issuance shard a stable hash of `spread_key` picks (a household's id, or a batch's key)."""
    return ("issuance", SYSTEM_OWNER, _shard(spread_key))


def lock_households(household_ids, *others: tuple) -> None:
    """Lock these households' wallets and issuance shards (and `others`) up front, in one pass.

    For a transaction that credits several households (an integration batch):
    crediting them one by one would lock shards in an order that differs between
    two such transactions, and they could deadlock. Does not commit.
    """
    parties = [party for h in sorted(set(household_ids)) for party in household_parties(h)]
    if parties or others:
        lock(*parties, *others)


def lock(*parties) -> list[LedgerAccount]:
    """The one way to lock accounts: (kind, owner_id[, shard]) tuples or accounts, in one statement, in id order.

    Missing accounts are created by that same statement. Returns the locked rows in the order asked.
    Does not commit.
    """
    owners = [(p.kind, p.owner_id, p.shard) if isinstance(p, LedgerAccount) else p for p in parties]
    ids = [account_id(*owner) for owner in owners]
    held = _held()
    wanted = sorted({key: owner for owner, key in zip(owners, ids) if key not in held}.items())
    if wanted:
        # One upsert, rows in id order: each row is created (and so ours) or, existing, locked as an UPDATE
        # locks it — creating and locking interleaved in the one global order, so no two transactions wait
        # for each other in a circle. (Locking first and creating what was missing afterwards would hold a
        # later row while waiting for an earlier one: that deadlocks against a transaction locking both.)
        now = utcnow()
        rows = [_new_account(key, *owner, created_at=now) for key, owner in wanted]
        dialect = dialect_name()
        if dialect == "postgresql" and len(rows) <= LOCK_ROWS_PREBUILT:
            # The same multi-row INSERT, built once per row count with numbered parameters, so that it
            # is a pre-built statement (app/driver.py) rather than one SQLAlchemy compiles on each use.
            returned = core(_lock_or_create_rows(len(rows)),
                            {f"{name}_{i}": value for i, row in enumerate(rows) for name, value in row.items()})
        else:
            returned = core(_lock_or_create(dialect), rows)
        for row in returned:
            _hold(loaded(LedgerAccount, row._asdict()))  # the row as locked, over any copy held before
    return [held[key] for key in ids]


LOCK_ROWS_PREBUILT = 4  # a credit locks 2 accounts, a campaign's part 1 more, a redemption 2


@functools.cache
def _lock_or_create_rows(count: int):
    """PostgreSQL: `_lock_or_create` for exactly `count` rows, their values named `<column>_<row>`."""
    accounts = LedgerAccount.__table__
    statement = dialect_insert_for("postgresql", accounts).values(
        [{c.key: bindparam(f"{c.key}_{i}", type_=c.type) for c in accounts.c} for i in range(count)])
    return statement.on_conflict_do_update(
        index_elements=[accounts.c.id], set_={"id": statement.excluded.id},
    ).returning(*accounts.c)


@functools.cache
def _lock_or_create(dialect: str):
    """INSERT … ON CONFLICT (id) DO UPDATE SET id = id RETURNING the row: each row, in the order given,
    is created or locked. Core, its rows returned in any order (they are matched by id): then
    SQLAlchemy sends several as one multi-row INSERT, one round trip (the ORM's bulk INSERT could
    send one a row); `rows.loaded` makes them session objects.
    """
    accounts = LedgerAccount.__table__
    statement = dialect_insert_for(dialect, accounts)
    return statement.on_conflict_do_update(
        index_elements=[accounts.c.id], set_={"id": statement.excluded.id},
    ).returning(*accounts.c)


# ---------------------------------------------------------------- transfers


def entry_hash(prev_hash: str, entry: LedgerEntry) -> str:
    return chain_hash(prev_hash, entry.id, entry.transfer_id, entry.account_id, entry.seq, entry.amount,
                      entry.balance_after, entry.kind, entry.ref_type, entry.ref_id, entry.actor_id, entry.reason,
                      entry.created_at.isoformat())


def chain_hash(prev_hash: str, id_: str, transfer_id: str, account_id_: str, seq: int, amount: int,
               balance_after: int, kind: str, ref_type: str, ref_id: str, actor_id: str | None,
               reason: str | None, created_at: str) -> str:
    """An entry's hash: its fields and the previous entry's hash (`created_at` in ISO 8601, as
    `datetime.isoformat` writes it), so that a changed or missing entry breaks its account's chain."""
    fields = [
        prev_hash, id_, transfer_id, account_id_, str(seq), str(amount), str(balance_after), kind, ref_type, ref_id,
        actor_id or "", reason or "", created_at,
    ]
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


@dataclass
class Transfer:
    id: str
    amount: int
    debit_entry: LedgerEntry
    credit_entry: LedgerEntry


_LOCK_ROWS = (
    select(LedgerAccount)
    .where(LedgerAccount.id.in_(bindparam("ids", expanding=True)))
    .order_by(LedgerAccount.id)
    .with_for_update()
    .execution_options(populate_existing=True)
)


def _lock(account_ids: list[str]) -> dict[str, LedgerAccount]:
    """Lock accounts in id order; accounts this transaction already locked are not asked for again.

    Returns the locked rows that exist (a missing account is left out).
    """
    held = _held()
    wanted = sorted(set(account_ids).difference(held))
    if wanted:
        for row in db.session.scalars(_LOCK_ROWS, {"ids": wanted}):
            _hold(row)
    # Our lock makes the kept rows current: every change since went through this module.
    return {key: held[key] for key in account_ids if key in held}


# session.info keys: the ids of the accounts this transaction locked (a set), and those rows by id —
# kept, so that later look-ups in the transaction need no round trip and the rows outlive the identity
# map's weak references.
LOCKED = "ledger_locked_accounts"
LOCKED_ROWS = "ledger_locked_rows"


def _held() -> dict[str, LedgerAccount]:
    return db.session.info.setdefault(LOCKED_ROWS, {})


def _hold(row: LedgerAccount) -> None:
    db.session.info.setdefault(LOCKED, set()).add(row.id)
    _held()[row.id] = row


def mark_locked(account_ids) -> None:
    """Record accounts this transaction has locked by a statement of its own (`bulk.lock_households`)."""
    db.session.info.setdefault(LOCKED, set()).update(account_ids)


def _forget_locks(session) -> None:
    session.info.pop(LOCKED, None)
    session.info.pop(LOCKED_ROWS, None)


@event.listens_for(Session, "after_commit")
def _locks_released(session):
    _forget_locks(session)


@event.listens_for(Session, "after_soft_rollback")
def _locks_released_on_rollback(session, previous_transaction):
    # A rolled-back savepoint releases the locks taken inside it, and expires what it changed.
    _forget_locks(session)


@event.listens_for(Session, "after_transaction_end")
def _locks_released_at_the_end(session, transaction):
    if transaction.parent is None:  # the whole transaction ended, however (commit, rollback, close)
        _forget_locks(session)


def _next_entry(account: LedgerAccount, amount: int, transfer_id: str, now: datetime, fields: dict) -> LedgerEntry:
    """The entry that follows an account's chain head (not yet written)."""
    assert account.id in db.session.info.get(LOCKED, ()), f"ledger account {account.id} written without its lock"
    entry = new(
        LedgerEntry, id=new_id(), transfer_id=transfer_id, account_id=account.id, seq=account.seq + 1,
        amount=amount, balance_after=account.balance + amount, created_at=now,
        prev_hash=account.head_hash, **fields,
    )
    entry.hash = entry_hash(account.head_hash, entry)
    return entry


_ACCOUNTS, _ENTRIES, _LOTS = LedgerAccount.__table__, LedgerEntry.__table__, PointLot.__table__
_ENTRY_COLUMNS = [column.key for column in _ENTRIES.columns]


def _move_statement(guard_debit: bool):
    """Both sides of a transfer in one UPDATE, each row guarded by the seq it was read at (and the
    debit by its balance), returning the ids it changed."""
    a = _ACCOUNTS.c
    # Named unlike any column of the tables a statement built on this one updates (the point lots have
    # an `amount`): app/driver.py and Core compile an UPDATE for the names given, and would SET it.
    amount = bindparam("b_amount", type_=BigInteger)
    debit_row = and_(a.id == bindparam("debit_id"), a.seq == bindparam("debit_seq"))
    if guard_debit:
        debit_row = and_(debit_row, a.balance >= amount)
    is_debit = a.id == bindparam("debit_id")
    return (
        update(_ACCOUNTS)
        .where(or_(debit_row, and_(a.id == bindparam("credit_id"), a.seq == bindparam("credit_seq"))))
        .values(balance=a.balance + case((is_debit, -amount), else_=amount), seq=a.seq + 1,
                head_hash=case((is_debit, bindparam("debit_hash")), else_=bindparam("credit_hash")),
                earned=a.earned + case((is_debit, bindparam("debit_earned", type_=BigInteger)),
                                       else_=bindparam("credit_earned", type_=BigInteger)),
                redeemed=a.redeemed + case((is_debit, bindparam("debit_redeemed", type_=BigInteger)),
                                           else_=bindparam("credit_redeemed", type_=BigInteger)))
        .returning(a.id)
    )


def _move_writing_entries(guard_debit: bool, with_lot: bool, spends: bool | None = None):
    """PostgreSQL: the same UPDATE, and in the same statement (a data-modifying WITH) the INSERT of
    both entries (parameters `<column>_debit`, `<column>_credit`) and, `with_lot`, of the credited
    household's new point lot (`<column>_lot`), written only when the UPDATE changed both rows.
    Returns the ids it changed, as the UPDATE alone does.

    `spends` (a household debit; True to spend exactly the lot `b_lot`): the statement also
    spends the debited household's lots (`_consume_ctes`, parameters `b_account`, `b_amount`,
    `b_transfer`), again only when both rows changed, and returns (id, remaining, take): each changed
    account's id with NULLs, then (id, remaining after, take) of each lot it took from."""
    moved = _move_statement(guard_debit).cte("moved")
    changed_both = select(func.count()).select_from(moved).scalar_subquery() == literal_column("2")

    def row(table, suffix):
        return select(*[bindparam(f"{column.key}_{suffix}", type_=column.type).label(column.key)
                        for column in table.columns]).where(changed_both)

    writes = [insert(_ENTRIES).from_select(
        _ENTRY_COLUMNS, union_all(row(_ENTRIES, "debit"), row(_ENTRIES, "credit"))).cte("entries")]
    if with_lot:
        writes.append(insert(_LOTS).from_select([column.key for column in _LOTS.columns], row(_LOTS, "lot")).cte("lot"))
    if spends is None:
        return select(moved.c.id).add_cte(*writes)
    spent, uses = _consume_ctes(spends, gate=changed_both)
    nothing = cast(None, BigInteger)
    return union_all(select(moved.c.id, nothing, nothing).add_cte(*writes, uses),
                     select(spent.c.id, spent.c.remaining, spent.c.take))


_MOVE = {True: _move_statement(guard_debit=True), False: _move_statement(guard_debit=False)}
_MOVE_WRITING = {(guard, lot): _move_writing_entries(guard, lot) for guard in (True, False) for lot in (True, False)}
_INSERT_ENTRIES = insert(_ENTRIES)
_INSERT_LOT = insert(_LOTS)


def _move(debit: LedgerAccount, credit: LedgerAccount, amount: int, debit_entry: LedgerEntry,
          credit_entry: LedgerEntry, lot: dict | None = None, from_lot: str | None = None) -> None:
    """Write both entries (and `lot`, a new point lot's row) and move both cached balances, totals and
    chain heads; a household debit also spends its lots, those expiring first first (or exactly
    `from_lot`), and records which. One statement on PostgreSQL; on SQLite (no INSERT inside WITH) two,
    three with a lot, then the spending's three."""
    debit_totals = totals_delta(debit_entry.kind, debit_entry.amount)
    credit_totals = totals_delta(credit_entry.kind, credit_entry.amount)
    params = {
        "b_amount": amount, "debit_id": debit.id, "debit_seq": debit.seq, "debit_hash": debit_entry.hash,
        "credit_id": credit.id, "credit_seq": credit.seq, "credit_hash": credit_entry.hash,
        "debit_earned": debit_totals[0], "debit_redeemed": debit_totals[1],
        "credit_earned": credit_totals[0], "credit_redeemed": credit_totals[1],
    }
    entries = [{key: getattr(entry, key) for key in _ENTRY_COLUMNS} for entry in (debit_entry, credit_entry)]
    guard_debit = debit.kind not in SYSTEM_KINDS
    spends = debit.kind == "household"
    together = dialect_name() == "postgresql"
    takes = None
    if together:
        rows = zip(("debit", "credit", "lot"), [*entries, lot or {}])
        params.update({f"{key}_{suffix}": value for suffix, row in rows for key, value in row.items()})
        if spends:
            db.session.flush()  # lots the session changed (a restore) are read as changed
            params.update(b_account=debit.id, b_transfer=debit_entry.transfer_id)
            if from_lot is not None:
                params["b_lot"] = from_lot
            result = core(_MOVE_SPENDING[lot is not None, from_lot is not None], params).all()
            changed = {lot_id for lot_id, _, take in result if take is None}
            takes = [(lot_id, remaining + take, take) for lot_id, remaining, take in result if take is not None]
        else:
            changed = set(core(_MOVE_WRITING[guard_debit, lot is not None], params).scalars())
    else:
        changed = set(core(_MOVE[guard_debit], params).scalars())
    # Either failure leaves the caller's transaction to roll back, whatever the other row did (no
    # entry was written then, no lot spent).
    if debit.id not in changed:
        raise InsufficientPoints()
    if credit.id not in changed:
        raise Conflict("The account changed concurrently; retry")
    for account, entry, totals in ((debit, debit_entry, debit_totals), (credit, credit_entry, credit_totals)):
        _mirror(account, entry, totals)
    if not together:
        core(_INSERT_ENTRIES, entries)
        if lot is not None:
            core(_INSERT_LOT, lot)
    if spends:
        _spent(takes if together else _consume_lots(debit.id, amount, debit_entry.transfer_id, from_lot), amount)


def _append(account: LedgerAccount, amount: int, transfer_id: str, now: datetime, **fields) -> LedgerEntry:
    """Append one entry to an account's chain and move its cached balance, guarded (one side at a time;
    `transfer` writes both sides together)."""
    entry = _next_entry(account, amount, transfer_id, now, fields)
    earned, redeemed = totals = totals_delta(entry.kind, amount)
    guard = [LedgerAccount.id == account.id, LedgerAccount.seq == account.seq]
    if account.kind not in SYSTEM_KINDS and amount < 0:
        guard.append(LedgerAccount.balance >= -amount)
    changed = db.session.execute(
        update(LedgerAccount)
        .where(*guard)
        .values(balance=LedgerAccount.balance + amount, seq=entry.seq, head_hash=entry.hash,
                earned=LedgerAccount.earned + earned, redeemed=LedgerAccount.redeemed + redeemed)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        if amount < 0:
            raise InsufficientPoints()
        raise Conflict("The account changed concurrently; retry")
    _mirror(account, entry, totals)
    db.session.add(entry)
    return entry


def _mirror(account: LedgerAccount, entry: LedgerEntry, totals: tuple[int, int]) -> None:
    """Mirror an UPDATE that appended `entry` on the kept row, without making the ORM write it again."""
    set_loaded(account, {"balance": entry.balance_after, "seq": entry.seq, "head_hash": entry.hash,
                         "earned": account.earned + totals[0], "redeemed": account.redeemed + totals[1]})


def transfer(
    debit: LedgerAccount,
    credit: LedgerAccount,
    amount: int,
    *,
    kind: str,
    ref_type: str,
    ref_id: str,
    actor_id: str | None = None,
    reason: str | None = None,
    restores: str | None = None,
    from_lot: str | None = None,
    expires_at: datetime | None = None,
) -> Transfer:
    """Move `amount` points from `debit` to `credit`; raise InsufficientPoints if `debit` cannot pay.

    `restores` names an earlier transfer whose consumed lots this credit gives
    back (a void, a refund); `from_lot` makes a household debit take exactly
    that lot (expiry). Does not commit.
    """
    if not isinstance(amount, int) or amount <= 0:
        raise ValueError("a transfer moves a positive whole number of points")
    if debit.id == credit.id:
        raise ValueError("a transfer needs two accounts")
    kind = EntryKind(kind).value  # refuses a kind the vocabulary does not define
    locked = _lock([debit.id, credit.id])
    debit, credit = locked[debit.id], locked[credit.id]
    if debit.kind not in SYSTEM_KINDS and debit.balance < amount:
        raise InsufficientPoints(f"The account holds {debit.balance} points, {amount} are needed")
    now = utcnow()
    transfer_id = new_id()
    fields = dict(kind=kind, ref_type=ref_type, ref_id=str(ref_id), actor_id=actor_id, reason=reason)
    debit_entry = _next_entry(debit, -amount, transfer_id, now, fields)
    credit_entry = _next_entry(credit, amount, transfer_id, now, fields)
    new_lot = (_new_lot(credit.id, amount, transfer_id, now, expires_at)
               if credit.kind == "household" and restores is None else None)
    _move(debit, credit, amount, debit_entry, credit_entry, new_lot, from_lot)  # with a new lot, the lots spent
    if credit.kind == "household" and restores is not None:
        _restore_lots(credit.id, amount, transfer_id, now, restores, expires_at)
    return Transfer(transfer_id, amount, debit_entry, credit_entry)


def _consume_lots(account_id: str, amount: int, transfer_id: str, from_lot: str | None) -> list[tuple[str, int, int]]:
    """SQLite: spend the lots that expire first (or exactly `from_lot`) and record which, as PostgreSQL's
    `_MOVE_SPENDING` does: a locking read, then the lots' UPDATE and the uses' INSERT. Returns (lot id,
    remaining before, points taken) of each lot taken from."""
    db.session.flush()  # lots the session changed (a restore) are read as changed
    params = {"account_id": account_id} if from_lot is None else {"account_id": account_id, "lot_id": from_lot}
    takes = _takes(core(_OPEN_LOTS[from_lot is not None], params).all(), amount)  # locked
    if takes:
        core(_TAKE_FROM_LOT, [{"lot_id": lot_id, "take": take} for lot_id, _, take in takes])
        core(_INSERT_LOT_USES, [{"id": new_id(), "lot_id": lot_id, "transfer_id": transfer_id, "amount": take}
                                for lot_id, _, take in takes])
    return takes


def _spent(takes: list[tuple[str, int, int]], amount: int) -> None:
    """Check that the lots taken from paid `amount`, and leave the lots this session holds as taken."""
    if sum(take for _, _, take in takes) < amount:
        # Balance and lots disagree: the invariant check would flag it; refuse rather than go on (what
        # was written rolls back with the caller's transaction).
        raise Conflict("The household's point lots do not cover its balance")
    for lot_id, remaining, take in takes:
        held = db.session.identity_map.get(identity_key(PointLot, lot_id))
        if held is not None:  # a lot this session has loaded: as the UPDATE left it
            set_committed_value(held, "remaining", remaining - take)


def _takes(lots, amount: int) -> list[tuple[str, int, int]]:
    """(lot id, remaining before, points taken) of the open lots, expiring first first, until `amount` is paid."""
    left, takes = amount, []
    for lot_id, remaining in lots:
        if left == 0:
            break
        take = min(remaining, left)
        takes.append((lot_id, remaining, take))
        left -= take
    return takes


def _open_lots(one: bool, account: str = "account_id", lot: str = "lot_id"):
    """(id, remaining) of an account's open lots, those expiring first first, locked; `account` and
    `lot` name the parameters."""
    lots = _LOTS.c
    query = select(lots.id, lots.remaining).where(lots.account_id == bindparam(account), lots.remaining > 0)
    if one:
        query = query.where(lots.id == bindparam(lot))
    return query.order_by(lots.expires_at, lots.id).with_for_update()


def _consume_ctes(one: bool, gate=None):
    """PostgreSQL: `_takes` over `_open_lots` (the same rows, locked), the lots' UPDATE ("spent",
    returning (id, remaining after, take) of each lot it took from) and the uses' INSERT ("uses"), as
    CTEs of one statement; `gate`, a condition, lets them take only when it holds. A use's id is 32
    random hex characters, as `new_id` makes them (from gen_random_uuid: its 122 random bits)."""
    # Parameters named unlike any column: a statement that holds an UPDATE or INSERT is compiled for the
    # names it is given (app/driver.py), and a column's name would become one more value to SET.
    lots, amount = _LOTS.c, bindparam("b_amount", type_=BigInteger)
    locked = _open_lots(one, account="b_account", lot="b_lot").add_columns(lots.expires_at).cte("open_lots")
    paid_through = func.sum(locked.c.remaining).over(order_by=(locked.c.expires_at, locked.c.id))
    paid_before = cast(paid_through, BigInteger) - locked.c.remaining  # sum() of bigint is numeric
    ranked = select(locked.c.id, locked.c.remaining, paid_before.label("before")).cte("ranked")
    taking = ranked.c.before < amount if gate is None else and_(ranked.c.before < amount, gate)
    takes = select(ranked.c.id, func.least(ranked.c.remaining, amount - ranked.c.before).label("take")) \
        .where(taking).cte("takes")
    spent = (update(_LOTS).where(lots.id == takes.c.id).values(remaining=lots.remaining - takes.c.take)
             .returning(lots.id, lots.remaining, takes.c.take).cte("spent"))
    use_id = func.replace(cast(func.gen_random_uuid(), String), "-", "")
    uses = insert(LotUse.__table__).from_select(
        ["id", "lot_id", "transfer_id", "amount"],
        select(use_id, spent.c.id, bindparam("b_transfer", type_=String), spent.c.take)).cte("uses")
    return spent, uses


_OPEN_LOTS = {False: _open_lots(one=False), True: _open_lots(one=True)}
# A household debit's move and spending, one statement (with a new lot for the credit side or not)
_MOVE_SPENDING = {(lot, one): _move_writing_entries(True, lot, spends=one) for lot in (True, False) for one in (True, False)}
_TAKE_FROM_LOT = (update(_LOTS).where(_LOTS.c.id == bindparam("lot_id"))
                  .values(remaining=_LOTS.c.remaining - bindparam("take", type_=BigInteger)))
_INSERT_LOT_USES = insert(LotUse.__table__)


def _new_lot(account_id, amount, transfer_id, now, expires_at) -> dict:
    """The row of a new lot of `amount` points, expiring at `expires_at` or POINTS_EXPIRY_MONTHS on."""
    if expires_at is None:
        expires_at = _add_months(now, current_app.config["POINTS_EXPIRY_MONTHS"])
    return {"id": new_id(), "account_id": account_id, "transfer_id": transfer_id,
            "amount": amount, "remaining": amount, "expires_at": expires_at, "created_at": now}


def _restore_lots(account_id, amount, transfer_id, now, restores, expires_at) -> None:
    """Give back the lots the `restores` transfer consumed; what they cannot take back is a new lot."""
    left = amount
    uses = db.session.scalars(
        select(LotUse).where(LotUse.transfer_id == restores, LotUse.amount > 0).order_by(LotUse.id)
    ).all()
    for use in uses:
        if left == 0:
            break
        lot = db.session.get(PointLot, use.lot_id, with_for_update=True)
        back = min(use.amount, left, lot.amount - lot.remaining)
        if back <= 0:
            continue
        lot.remaining += back
        left -= back
        db.session.add(LotUse(lot_id=lot.id, transfer_id=transfer_id, amount=-back))
    if left:
        core(_INSERT_LOT, _new_lot(account_id, left, transfer_id, now, expires_at))


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28,
                           31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1])
    return moment.replace(year=year, month=month, day=day)


# ---------------------------------------------------------------- household credits and clawbacks


def award(household_id: str, amount: int, *, kind: str, ref_type: str, ref_id: str,
          actor_id: str | None = None, reason: str | None = None, source: LedgerAccount | None = None) -> int:
    """Credit a household from issuance (or `source`), withholding any outstanding clawback.

    Returns the points that reached the wallet. Does not commit.
    """
    if amount <= 0:
        return 0
    wallet = account_of("household", household_id)
    source = source or system_account("issuance", household_id)
    transfer(source, wallet, amount, kind=kind, ref_type=ref_type, ref_id=ref_id, actor_id=actor_id, reason=reason)
    owed = wallet.clawback
    if owed <= 0:
        return amount
    withheld = min(owed, amount)
    transfer(wallet, system_account("issuance", household_id), withheld, kind=EntryKind.CLAWBACK_RECOVERY,
             ref_type=ref_type, ref_id=ref_id, actor_id=actor_id, reason="Withheld against an earlier reversal")
    _change_clawback(wallet, -withheld)
    return amount - withheld


def take_back(household_id: str, amount: int, *, kind: str, ref_type: str, ref_id: str,
              actor_id: str | None = None, reason: str | None = None, to: LedgerAccount | None = None) -> int:
    """Debit up to `amount` from a household; what it no longer holds becomes a clawback.

    Returns the points actually taken now. Does not commit.
    """
    if amount <= 0:
        return 0
    wallet = account_of("household", household_id)
    target = to or system_account("issuance", household_id)
    wallet = _lock([wallet.id, target.id])[wallet.id]  # both, in id order, before reading the balance
    take = min(wallet.balance, amount)
    if take:
        transfer(wallet, target, take, kind=kind,
                 ref_type=ref_type, ref_id=ref_id, actor_id=actor_id, reason=reason)
    if amount - take:
        _change_clawback(wallet, amount - take)
    return take


def _change_clawback(wallet: LedgerAccount, delta: int) -> None:
    assert wallet.id in db.session.info.get(LOCKED, ()), f"clawback of {wallet.id} changed without its lock"
    db.session.execute(
        update(LedgerAccount).where(LedgerAccount.id == wallet.id)
        .values(clawback=LedgerAccount.clawback + delta)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(wallet, "clawback", wallet.clawback + delta)


# ---------------------------------------------------------------- reading


def _wallet_columns() -> tuple:
    """The wallet's cached figures and its points expiring before `soon`, labelled by their reply fields:
    scalar subqueries on the wallet's row (by `wallet_id`), so a household never credited reads as 0."""
    a, lots = _ACCOUNTS.c, _LOTS.c
    wallet_id = bindparam("wallet_id")

    def cached(column, label):
        return func.coalesce(select(column).where(a.id == wallet_id).scalar_subquery(), 0).label(label)

    expiring = (select(func.coalesce(func.sum(lots.remaining), 0))
                .where(lots.account_id == wallet_id, lots.remaining > 0, lots.expires_at <= bindparam("soon"))
                .scalar_subquery())
    return (cached(a.balance, "balance"), cached(a.clawback, "clawback_points"), cached(a.earned, "lifetime_earned"),
            cached(a.redeemed, "lifetime_redeemed"), expiring.label("expiring_30d"))


_WALLET_COLUMNS = _wallet_columns()


@functools.lru_cache(maxsize=8)  # keyed by the columns' identity: callers pass module constants
def _wallet_statement(more: tuple):
    return select(*_WALLET_COLUMNS, *more)


def wallet_summary(household_id: str, more: tuple = (), more_params: dict | None = None) -> dict:
    """Balance, clawback, lifetime earned and redeemed, points expiring within 30 days.

    One pre-built statement, always one row; reading creates nothing. `more`: further labelled scalar
    columns (a module's constant tuple, so the statement is built once) read in the same statement,
    with their parameters; their values are added to the reply as whole numbers.
    """
    db.session.flush()  # lots this session changed (a restore) are read as changed; free when none
    row = core(_wallet_statement(more), {"wallet_id": account_id("household", household_id),
                                         "soon": utcnow() + timedelta(days=30), **(more_params or {})}).one()
    figures = {key: int(value) for key, value in row._mapping.items()}
    figures["lifetime_redeemed"] = max(figures["lifetime_redeemed"], 0)
    return figures


def entries_page(account_id: str, limit: int, cursor: tuple[datetime, str] | None):
    """An account's entries, newest first (limit + 1 rows for paging)."""
    return page_rows(select(LedgerEntry).where(LedgerEntry.account_id == account_id), LedgerEntry, limit, cursor)


# ---------------------------------------------------------------- verification


def verify() -> list[str]:
    """Recompute every chain, balance, transfer and lot total; return what differs (empty when sound)."""
    problems: list[str] = []
    # populate_existing: read what the database holds, not objects this session loaded earlier.
    accounts = db.session.scalars(
        select(LedgerAccount).order_by(LedgerAccount.id).execution_options(populate_existing=True)
    ).all()
    for account in accounts:
        prev, balance, seq, earned, redeemed = GENESIS, 0, 0, 0, 0
        entries = db.session.execute(
            select(LedgerEntry).where(LedgerEntry.account_id == account.id).order_by(LedgerEntry.seq)
            .execution_options(yield_per=2000, populate_existing=True)
        ).scalars()
        label = f"account {account.id} ({account.kind} {account.owner_id}#{account.shard})"
        for entry in entries:
            seq += 1
            balance += entry.amount
            earned_delta, redeemed_delta = totals_delta(entry.kind, entry.amount)
            earned, redeemed = earned + earned_delta, redeemed + redeemed_delta
            if entry.seq != seq:
                problems.append(f"{label}: entry {entry.id} has seq {entry.seq}, expected {seq} (entry missing)")
                seq = entry.seq
            if entry.prev_hash != prev:
                problems.append(f"{label}: entry {entry.id} does not follow the previous entry's hash")
            if entry_hash(entry.prev_hash, entry) != entry.hash:
                problems.append(f"{label}: entry {entry.id} was altered (hash mismatch)")
            if entry.balance_after != balance:
                problems.append(f"{label}: entry {entry.id} balance_after {entry.balance_after}, recomputed {balance}")
            prev = entry.hash
        if seq != account.seq or prev != account.head_hash:
            problems.append(f"{label}: chain head differs from the account (entries removed or added)")
        if balance != account.balance:
            problems.append(f"{label}: cached balance {account.balance}, entries sum to {balance}")
        if (earned, redeemed) != (account.earned, account.redeemed):
            problems.append(f"{label}: cached earned/redeemed {account.earned}/{account.redeemed}, "
                            f"entries sum to {earned}/{redeemed}")
        if account.kind == "household":
            lots = db.session.scalar(
                select(func.coalesce(func.sum(PointLot.remaining), 0)).where(PointLot.account_id == account.id)
            )
            if int(lots) != account.balance:
                problems.append(f"{label}: open lots hold {lots} points, balance is {account.balance}")
    unbalanced = db.session.execute(
        select(LedgerEntry.transfer_id, func.sum(LedgerEntry.amount), func.count())
        .group_by(LedgerEntry.transfer_id)
        .having((func.sum(LedgerEntry.amount) != 0) | (func.count() != 2))
    ).all()
    for transfer_id, total, count in unbalanced:
        problems.append(f"transfer {transfer_id}: {count} entries summing to {total}, expected 2 summing to 0")
    return problems
