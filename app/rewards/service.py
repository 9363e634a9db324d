"""Rewards, redemption codes, redemptions and voids. Nothing here commits.

Locks are always taken in one order — the code row, then the household's and
the merchant's ledger accounts (in id order), then the reward row — so that
redemptions, voids and the expiry job never wait on each other in a circle.
"""
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from flask import current_app
from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from .. import keyring
from ..accounts import scopes
from ..accounts.models import Household, User
from ..columns import new_id, utcnow
from ..dialect import dialect_name
from ..errors import AppError, Conflict, InsufficientPoints, NotFound, validation_error
from ..paging import page_rows
from ..rows import loaded, new, write_new
from ..extensions import core, db
from ..ledger import service as ledger
from ..ledger.kinds import EntryKind
from ..transaction import refuse_keeping_writes
from ..merchants import service as merchants
from ..merchants.models import Merchant
from .models import Redemption, RedemptionCode, Reward
from ..localtime import day_bounds, local_date

CODE_DIGITS = 20


class CodeNotFound(AppError):
    status, code, title = 404, "code_not_found", "No such redemption code"


class CodeExpired(AppError):
    status, code, title = 409, "code_expired", "The redemption code has expired"


class WrongMerchant(AppError):
    status, code, title = 409, "wrong_merchant", "The code is for a reward of another merchant"


class OutOfStock(AppError):
    status, code, title = 409, "out_of_stock", "The reward is out of stock"


class LimitReached(AppError):
    status, code, title = 409, "limit_reached", "The household has reached this reward's limit"


class RewardUnavailable(AppError):
    status, code, title = 409, "reward_unavailable", "The reward is inactive or outside its validity window"


class MerchantDailyLimit(AppError):
    status, code, title = 409, "merchant_daily_limit", "The merchant has reached its daily redemption limit"


class TooManyLiveCodes(AppError):
    status, code, title = 409, "too_many_live_codes", "The household holds as many live codes as it may"


class AlreadyVoided(AppError):
    status, code, title = 409, "already_voided", "The redemption was already voided"


class VoidWindowClosed(AppError):
    status, code, title = 409, "void_window_closed", "The redemption is too old to void"


# The refusals that decide (and burn) a code; a replay answers the same one again.
REFUSALS = {cls.code: cls for cls in (
    CodeExpired, RewardUnavailable, LimitReached, OutOfStock, MerchantDailyLimit, InsufficientPoints,
)}


# ---------------------------------------------------------------- rewards


def _edits(user: User, merchant: Merchant) -> bool:
    return scopes.edits_rewards(user, merchant.id, merchant.community_id)


def merchant_for_rewards(user: User, merchant_id: str) -> Merchant:
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None or not _edits(user, merchant):
        raise NotFound("No such merchant")
    return merchant


def reward_for_staff(user: User, reward_id: str) -> Reward:
    reward = db.session.get(Reward, reward_id)
    if reward is None or not _edits(user, db.session.get(Merchant, reward.merchant_id)):
        raise NotFound("No such reward")
    return reward


def _check_window(valid_from, valid_until) -> None:
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise validation_error("valid_until", "Must be later than valid_from.")


def _in_utc(data: dict) -> dict:
    """Store and answer times in UTC, whatever offset they came with."""
    return {key: value.astimezone(timezone.utc) if isinstance(value, datetime) else value
            for key, value in data.items()}


def create_reward(merchant: Merchant, data: dict) -> Reward:
    """A reward of a merchant. Does not commit."""
    data = _in_utc(data)
    _check_window(data.get("valid_from"), data.get("valid_until"))
    reward = Reward(
        merchant_id=merchant.id, name=data["name"].strip(), points_cost=data["points_cost"], stock=data["stock"],
        per_household_limit=data.get("per_household_limit"), valid_from=data.get("valid_from"),
        valid_until=data.get("valid_until"), district_wide=data.get("district_wide", False), active=True,
    )
    db.session.add(reward)
    db.session.flush()
    return reward


def update_reward(reward: Reward, data: dict) -> Reward:
    """Change a reward; codes already issued keep the price they were issued at. Does not commit."""
    data = _in_utc(data)
    _check_window(data.get("valid_from", reward.valid_from), data.get("valid_until", reward.valid_until))
    if "name" in data:
        data = {**data, "name": data["name"].strip()}
    if "stock" in data:
        # Written in SQL: redemptions move stock in SQL, so the loaded value may be stale, and the ORM
        # would skip writing a value equal to the one it loaded.
        db.session.execute(update(Reward).where(Reward.id == reward.id).values(stock=data["stock"])
                           .execution_options(synchronize_session=False))
    for field, value in data.items():
        setattr(reward, field, value)
    reward.updated_at = utcnow()
    db.session.flush()
    return reward


def is_available(reward: Reward, merchant: Merchant, now: datetime) -> bool:
    """Active, of an active merchant, and inside its validity window."""
    return (reward.active and merchant.active
            and (reward.valid_from is None or reward.valid_from <= now)
            and (reward.valid_until is None or now < reward.valid_until))


def rewards_for_household(household: Household, limit: int, cursor) -> list[Reward]:
    """Available rewards of the household's community and district-wide ones, newest first."""
    now = utcnow()
    query = (
        select(Reward).join(Merchant, Merchant.id == Reward.merchant_id)
        .where(Reward.active.is_(True), Merchant.active.is_(True),
               or_(Reward.valid_from.is_(None), Reward.valid_from <= now),
               or_(Reward.valid_until.is_(None), Reward.valid_until > now),
               or_(Merchant.community_id == household.community_id, Reward.district_wide.is_(True)))
    )
    return page_rows(query, Reward, limit, cursor)


def rewards_of_merchant(merchant_id: str, limit: int, cursor) -> list[Reward]:
    return page_rows(select(Reward).where(Reward.merchant_id == merchant_id), Reward, limit, cursor)


def _redeemed_quantity(household_id: str, reward_id: str) -> int:
    """Units of a reward a household holds: completed, not voided redemptions."""
    return db.session.scalar(
        select(func.coalesce(func.sum(Redemption.quantity), 0)).where(
            Redemption.household_id == household_id, Redemption.reward_id == reward_id,
            Redemption.status == "completed",
        )
    )


# ---------------------------------------------------------------- codes


def _hash(digits: str) -> str:
    return hashlib.sha256(digits.encode()).hexdigest()


def _purpose(code_id: str) -> str:
    return f"redemption-code:{code_id}"


def conceal_code(reply: dict) -> dict:
    """A code reply as the idempotency store keeps it: without the digits."""
    return {**reply, "code": None}


def reveal_code(reply: dict) -> dict:
    """A stored code reply with its digits put back from the sealed code row."""
    return {**reply, "code": unseal(db.session.get(RedemptionCode, reply["id"]))}


def unseal(code: RedemptionCode) -> str:
    """The digits of a code, for its QR images."""
    return keyring.decrypt(code.code_encrypted, _purpose(code.id))


def reencrypt_codes(limit: int = 500) -> int:
    """Re-encrypt up to `limit` codes' digits that are not under the active data key; returns how many.

    Call it until it returns 0, committing each chunk. Does not commit.
    """
    ring = keyring.keyring()
    rows = db.session.scalars(
        select(RedemptionCode)
        .where(~RedemptionCode.code_encrypted.startswith(ring.active_id + ":", autoescape=True))
        .order_by(RedemptionCode.id).limit(limit).with_for_update()
    ).all()
    for code in rows:
        code.code_encrypted = ring.reencrypt(code.code_encrypted, _purpose(code.id))
    return len(rows)


def create_code(user: User, reward_id: str, quantity: int) -> tuple[RedemptionCode, str]:
    """A new code for a reward; it reserves nothing, but refuses what would certainly fail.

    Returns the row and its digits (shown once here; only their hash is looked up). Does not commit.
    """
    household = db.session.scalar(select(Household).where(Household.id == user.household_id).with_for_update())
    reward = db.session.get(Reward, reward_id)
    merchant = db.session.get(Merchant, reward.merchant_id) if reward is not None else None
    if merchant is None or not (reward.district_wide or merchant.community_id == household.community_id):
        raise NotFound("No such reward")
    now = utcnow()
    if not is_available(reward, merchant, now):
        raise RewardUnavailable()
    live = db.session.scalar(select(func.count()).select_from(RedemptionCode).where(
        RedemptionCode.household_id == household.id, RedemptionCode.state == "live",
        RedemptionCode.expires_at > now,
    ))
    if live >= current_app.config["REDEMPTION_CODES_LIVE_MAX"]:
        raise TooManyLiveCodes()
    if reward.stock < quantity:
        raise OutOfStock()
    if reward.per_household_limit is not None and (
        _redeemed_quantity(household.id, reward.id) + quantity > reward.per_household_limit
    ):
        raise LimitReached()
    cost = reward.points_cost * quantity
    balance = ledger.account_of("household", household.id).balance
    if balance < cost:
        raise InsufficientPoints(f"The household holds {balance} points, {cost} are needed")
    digits = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    code = RedemptionCode(
        id=new_id(), code_hash=_hash(digits), household_id=household.id, created_by=user.id,
        reward_id=reward.id, merchant_id=merchant.id, quantity=quantity, points_cost=cost, state="live",
        expires_at=now + timedelta(seconds=current_app.config["REDEMPTION_CODE_TTL_SECONDS"]), created_at=now,
    )
    code.code_encrypted = keyring.encrypt(digits, _purpose(code.id))
    code.digits = digits
    db.session.add(code)
    db.session.flush()
    return code, digits


def code_of_household(code_id: str, household_id: str) -> RedemptionCode:
    code = db.session.get(RedemptionCode, code_id)
    if code is None or code.household_id != household_id:
        raise NotFound("No such redemption code")
    return code


# ---------------------------------------------------------------- redemption


@dataclass
class Outcome:
    """What a submitted code came to: a redemption, new or replayed."""

    redemption: Redemption
    created: bool


def _digits(raw: str) -> str:
    digits = re.sub(r"[\s-]", "", raw)
    if not re.fullmatch(r"[0-9]{%d}" % CODE_DIGITS, digits):
        raise CodeNotFound()
    return digits


def _find_code(raw: str) -> RedemptionCode:
    code = db.session.scalar(select(RedemptionCode).where(RedemptionCode.code_hash == _hash(_digits(raw)))
                             .execution_options(populate_existing=True))
    if code is None:
        raise CodeNotFound()
    return code


def _replay(code: RedemptionCode, merchant_id: str) -> Outcome:
    """A decided code: the deciding merchant gets the same answer again, any other wrong_merchant."""
    if code.merchant_id != merchant_id:
        raise WrongMerchant()
    if code.state == "used":
        return Outcome(db.session.get(Redemption, code.redemption_id), created=False)
    raise REFUSALS[code.refusal_code]()


# The claim: a live code of this merchant becomes used, naming the redemption it will be, in one
# statement that also reads the code. A code it does not claim is read again to say why.
# Core, its row made the session's object (as the ORM's populate_existing would) by `rows.loaded`.
_CODES = RedemptionCode.__table__
_CLAIM = (
    update(_CODES)
    .where(_CODES.c.code_hash == bindparam("b_hash"), _CODES.c.state == "live",
           _CODES.c.merchant_id == bindparam("b_merchant"))
    .values(state="used", decided_at=bindparam("b_now"), redemption_id=bindparam("b_redemption"))
    .returning(*_CODES.c)
)


def redeem_code(raw_code: str, merchant_id: str, actor_id: str) -> Outcome:
    """Turn a code into exactly one redemption, or burn it with the refusal that decided it.

    The claim, the checks, the debit, the merchant credit and the stock
    decrement share the caller's transaction. Every refusal is decided before
    anything but the claim is written, so a refusal burns the code and is raised
    with `refuse_keeping_writes` (the owner commits the burn) and nothing else;
    no savepoint is needed. Does not commit.
    """
    code_hash = _hash(_digits(raw_code))
    now = utcnow()
    redemption_id = new_id()
    db.session.flush()  # as the ORM's statement would autoflush
    together = dialect_name() == "postgresql"  # SQLite has no UPDATE inside WITH
    claimed = core(_CLAIM_WITH_REWARD if together else _CLAIM, {
        "b_hash": code_hash, "b_merchant": merchant_id, "b_now": now, "b_redemption": redemption_id}).first()
    reward = None
    if claimed is None:
        code = None
    elif together:
        code, reward = _claimed(claimed._mapping)
    else:
        code = loaded(RedemptionCode, claimed._asdict())
    if code is None:  # unknown, decided (maybe by a scan that got there first), or another merchant's
        code = _find_code(raw_code)
        if code.state != "live":
            return _replay(code, merchant_id)
        if code.merchant_id != merchant_id:
            raise WrongMerchant()  # the code stays live for its own merchant
        raise Conflict()  # live and ours, yet not claimed: cannot happen while claims are single statements
    try:
        reward, merchant, wallet, till, household_today = _decide(code, now, reward)
    except tuple(REFUSALS.values()) as refusal:
        db.session.execute(
            update(RedemptionCode).where(RedemptionCode.id == code.id)
            .values(state="burned", refusal_code=refusal.code, redemption_id=None, decided_at=now)
            .execution_options(synchronize_session=False)
        )
        refuse_keeping_writes(refusal)
    return Outcome(_complete(code, redemption_id, reward, merchant, wallet, till, household_today, actor_id, now),
                   created=True)


def _counts_statement(merchant_total: bool):
    """One read of what a redemption's limits and anomaly flag need, under the two ledger locks:
    the household's completed units of this reward, its redemptions at this merchant today (any
    status) and, when the merchant has a daily limit, the merchant's completed redemptions today."""
    r = Redemption.__table__.c
    household, reward_id = bindparam("household_id"), bindparam("reward_id")
    merchant_id, start, end = bindparam("merchant_id"), bindparam("start"), bindparam("end")
    today = and_(r.merchant_id == merchant_id, r.created_at >= start, r.created_at < end)
    held = and_(r.household_id == household, r.reward_id == reward_id)
    columns = [
        func.coalesce(func.sum(r.quantity).filter(held, r.status == "completed"), 0),
        func.count().filter(today, r.household_id == household),
    ]
    if merchant_total:
        columns.append(func.count().filter(today, r.status == "completed"))
        scope = or_(held, today)
    else:
        scope = and_(r.household_id == household, or_(r.reward_id == reward_id, today))
    return select(*columns).select_from(Redemption.__table__).where(scope)


def _take_stock_statement(capped: bool, limited: bool):
    """The usual redemption in one statement, under the same two ledger locks: the reward's stock taken
    where it suffices and the household's limit (`capped`) and the merchant's daily limit (`limited`)
    still allow it, returning the household's redemptions at this merchant today (any status). No
    row: something refuses, and `_decide` reads the counts to say what."""
    r = Redemption.__table__.c
    household, reward_id, quantity = bindparam("b_household"), bindparam("b_reward"), bindparam("b_quantity")
    today = and_(r.merchant_id == bindparam("b_merchant"), r.created_at >= bindparam("b_start"),
                 r.created_at < bindparam("b_end"))

    def counted(column, *where):
        return select(column).select_from(Redemption.__table__).where(*where).scalar_subquery()

    # Parameters named unlike any column of rewards: app/driver.py compiles an UPDATE for the names it is given.
    guard = [_REWARDS.c.id == reward_id, _REWARDS.c.stock >= quantity]
    if capped:
        held = counted(func.coalesce(func.sum(r.quantity), 0), r.household_id == household, r.reward_id == reward_id,
                       r.status == "completed")
        guard.append(held + quantity <= bindparam("b_limit"))
    if limited:
        guard.append(counted(func.count(), today, r.status == "completed") < bindparam("b_daily"))
    return (update(_REWARDS).where(*guard).values(stock=_REWARDS.c.stock - quantity)
            .returning(counted(func.count(), today, r.household_id == household)))


_COUNTS = {True: _counts_statement(merchant_total=True), False: _counts_statement(merchant_total=False)}
_STOCK_FOR_CHECK = select(Reward.stock).where(Reward.id == bindparam("reward_id")).with_for_update()
_REWARDS = Reward.__table__
_TAKE_STOCK = (update(_REWARDS).where(_REWARDS.c.id == bindparam("reward_id"), _REWARDS.c.stock >= bindparam("quantity"))
               .values(stock=_REWARDS.c.stock - bindparam("quantity")))
_TAKE_STOCK_WITHIN_LIMITS = {(capped, limited): _take_stock_statement(capped, limited)
                             for capped in (True, False) for limited in (True, False)}


_MERCHANTS = Merchant.__table__
_REWARD_WITH_MERCHANT = (
    select(*_REWARDS.c, *[column.label(f"merchant__{column.key}") for column in _MERCHANTS.c])
    .join_from(_REWARDS, _MERCHANTS, _MERCHANTS.c.id == _REWARDS.c.merchant_id)
    .where(_REWARDS.c.id == bindparam("reward_id"))
)


# PostgreSQL: the claim and, in the same statement, the claimed code's reward with its merchant (what
# `_decide` reads next): a code, a reward and a merchant row in one.
_CLAIMED = _CLAIM.cte("claimed")
_CLAIM_WITH_REWARD = (
    select(*_CLAIMED.c, *[column.label(f"reward__{column.key}") for column in _REWARDS.c],
           *[column.label(f"merchant__{column.key}") for column in _MERCHANTS.c])
    .join_from(_CLAIMED, _REWARDS, _REWARDS.c.id == _CLAIMED.c.reward_id)
    .join(_MERCHANTS, _MERCHANTS.c.id == _REWARDS.c.merchant_id)
)


def _claimed(row) -> tuple[RedemptionCode, Reward]:
    """The claimed code and its reward (with its merchant) as the session's objects."""
    return loaded(RedemptionCode, {c.key: row[c.key] for c in _CODES.c}), _reward_from_row(row, "reward__")


def _reward_from_row(row, prefix: str) -> Reward:
    """The reward and its merchant of a row that holds both; one the session already holds is
    returned as it is held."""
    merchant = loaded(Merchant, {c.key: row[f"merchant__{c.key}"] for c in _MERCHANTS.c}, refresh=False)
    reward = loaded(Reward, {c.key: row[f"{prefix}{c.key}"] for c in _REWARDS.c}, refresh=False)
    if "merchant" not in reward.__dict__:
        set_committed_value(reward, "merchant", merchant)
    return reward


def _reward_with_merchant(reward_id: str) -> Reward:
    """The reward with its merchant, in one pre-built statement (what `db.session.get` with the joined
    merchant reads); one the session already holds is returned as it is held."""
    held = db.session.identity_map.get(identity_key(Reward, reward_id))
    if held is not None:
        return held
    return _reward_from_row(core(_REWARD_WITH_MERCHANT, {"reward_id": reward_id}).one()._mapping, "")


def _decide(code: RedemptionCode, now: datetime, reward: Reward | None):
    """Every refusal, in order, before anything is written; the stock is taken last, guarded.
    `reward`: the code's, when the claim read it. Returns the reward, its merchant, the two locked
    accounts and the household's redemptions at this merchant today before this one."""
    if code.expires_at <= now:
        raise CodeExpired()
    reward = reward or _reward_with_merchant(code.reward_id)
    merchant = reward.merchant
    if not is_available(reward, merchant, now):
        raise RewardUnavailable()
    # Locked up front: serialises this household's limit and this merchant's daily count.
    wallet, till = ledger.lock(("household", code.household_id), ("merchant", merchant.id))
    start, end = day_bounds(local_date(now))
    limited = merchant.daily_redemption_limit is not None
    db.session.flush()  # redemptions this unit of work made count
    if wallet.balance >= code.points_cost:
        household_today = core(_TAKE_STOCK_WITHIN_LIMITS[reward.per_household_limit is not None, limited], {
            "b_household": code.household_id, "b_reward": reward.id, "b_merchant": merchant.id, "b_start": start,
            "b_end": end, "b_quantity": code.quantity, "b_limit": reward.per_household_limit,
            "b_daily": merchant.daily_redemption_limit}).scalar()
        if household_today is not None:
            return reward, merchant, wallet, till, household_today
    # Refused (or the stock just came back with a void): the counts, read to say why, in order.
    held, household_today, *merchant_today = core(_COUNTS[limited], {
        "household_id": code.household_id, "reward_id": reward.id, "merchant_id": merchant.id,
        "start": start, "end": end}).one()
    if reward.per_household_limit is not None and held + code.quantity > reward.per_household_limit:
        raise LimitReached()
    over_daily = limited and merchant_today[0] >= merchant.daily_redemption_limit
    poor = wallet.balance < code.points_cost
    if over_daily or poor:
        # Refused either way; out of stock is said first, as when the stock is taken before these checks.
        if db.session.scalar(_STOCK_FOR_CHECK, {"reward_id": reward.id}) < code.quantity:
            raise OutOfStock()
        if over_daily:
            raise MerchantDailyLimit()
        raise InsufficientPoints(f"The account holds {wallet.balance} points, {code.points_cost} are needed")
    taken = core(_TAKE_STOCK, {"reward_id": reward.id, "quantity": code.quantity}).rowcount
    if not taken:
        raise OutOfStock()
    return reward, merchant, wallet, till, int(household_today)


def _complete(code: RedemptionCode, redemption_id: str, reward: Reward, merchant: Merchant, wallet, till,
              household_today: int, actor_id: str, now: datetime) -> Redemption:
    """The writes of a decided redemption; any failure here rolls the whole unit of work back."""
    moved = ledger.transfer(wallet, till, code.points_cost, kind=EntryKind.REDEMPTION, ref_type="redemption",
                            ref_id=redemption_id, actor_id=actor_id)
    redemption = new(
        Redemption, id=redemption_id, code_id=code.id, merchant_id=merchant.id, reward_id=reward.id,
        household_id=code.household_id, quantity=code.quantity, points=code.points_cost, status="completed",
        transfer_id=moved.id, redeemed_by=actor_id, created_at=now,
    )
    write_new(redemption)  # one pre-built INSERT
    set_committed_value(redemption, "reward", reward)  # the reply names it: no second read
    set_committed_value(redemption, "merchant", merchant)
    merchants.flag_if_unusual(code.household_id, merchant, household_today + 1, now)  # this one included
    return redemption


def redemptions_of_merchant(merchant_id: str, limit: int, cursor, status: str | None = None) -> list[Redemption]:
    query = select(Redemption).where(Redemption.merchant_id == merchant_id)
    if status is not None:
        query = query.where(Redemption.status == status)
    return page_rows(query, Redemption, limit, cursor)


# ---------------------------------------------------------------- voids


def void_redemption(redemption_id: str, merchant_id: str, actor_id: str, reason: str) -> Redemption:
    """Undo a redemption within the void window: points back to the household's lots, stock back.

    Does not commit.
    """
    redemption = db.session.get(Redemption, redemption_id)
    if redemption is None or redemption.merchant_id != merchant_id:
        raise NotFound("No such redemption")
    now = utcnow()
    if redemption.status == "voided":
        raise AlreadyVoided()
    if now - redemption.created_at > timedelta(seconds=current_app.config["VOID_WINDOW_SECONDS"]):
        raise VoidWindowClosed()
    changed = db.session.execute(
        update(Redemption).where(Redemption.id == redemption.id, Redemption.status == "completed")
        .values(status="voided", voided_at=now, voided_by=actor_id, void_reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:  # a concurrent void won
        raise AlreadyVoided()
    moved = ledger.transfer(
        ledger.account_of("merchant", merchant_id), ledger.account_of("household", redemption.household_id),
        redemption.points, kind=EntryKind.REDEMPTION_VOID, ref_type="redemption", ref_id=redemption.id,
        actor_id=actor_id, reason=reason, restores=redemption.transfer_id,
    )
    db.session.execute(update(Reward).where(Reward.id == redemption.reward_id)
                       .values(stock=Reward.stock + redemption.quantity).execution_options(synchronize_session=False))
    db.session.execute(update(Redemption).where(Redemption.id == redemption.id)
                       .values(void_transfer_id=moved.id).execution_options(synchronize_session=False))
    return db.session.scalar(select(Redemption).where(Redemption.id == redemption.id)
                             .execution_options(populate_existing=True))
