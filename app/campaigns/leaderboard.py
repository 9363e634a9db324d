"""Campaign leaderboards: households ranked by campaign points (actions and check-ins, net of reversals).

The database is the source of truth: `campaign_awards`, numbered per campaign by `seq`. Without
REDIS_URL the ranking is one SQL query. With it, a Redis sorted set per campaign holds the same
ranking — score −points, so that ascending order is points desc, then household id asc, exactly
the SQL order — beside the `seq` of the last award it includes.

The set is kept current after commit, never before: a transaction that records awards stages one
job per campaign through the jobs outbox, and the job applies the awards past the set's `seq`
with ZINCRBY, in a Lua script that first checks the `seq` (so a job run twice, late or out of
order changes nothing). A read catches up the same way before it answers, and rebuilds the set
from the database when its key is missing (Redis flushed or restarted) or ahead of the database.
If Redis fails, the read answers from SQL. Either way the answer is the same.
"""
import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import event, func, or_, select
from sqlalchemy.orm import Session

from .. import jobs
from ..accounts.models import User
from ..extensions import db
from ..redis_client import redis_client
from .models import CampaignAward

log = logging.getLogger("app.campaigns.leaderboard")
STAGED = "campaign_leaderboards_staged"
JOB = "campaigns.leaderboard"

APPLY = """
local current = redis.call('GET', KEYS[2])
if current ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do
  local score = redis.call('ZINCRBY', KEYS[1], -tonumber(ARGV[i + 1]), ARGV[i])
  if tonumber(score) >= 0 then redis.call('ZREM', KEYS[1], ARGV[i]) end
end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""
REBUILD = """
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do redis.call('ZADD', KEYS[1], -tonumber(ARGV[i + 1]), ARGV[i]) end
redis.call('SET', KEYS[2], ARGV[1])
return 1
"""


@dataclass
class Entry:
    rank: int
    household_id: str
    points: int
    name_masked: str = ""


@dataclass
class Ranking:
    entries: list[Entry]
    my_rank: int | None
    my_points: int
    source: str


def keys(campaign_id: str) -> tuple[str, str]:
    """The sorted set and its seq; the hash tag keeps both in one slot of a Redis cluster."""
    return f"sjc:leaderboard:{{{campaign_id}}}", f"sjc:leaderboard:{{{campaign_id}}}:seq"


_scripts: dict = {}


def client():
    """The Redis client of REDIS_URL, or None when Redis is not configured."""
    return redis_client()


def _run(redis, source: str, keys_: tuple[str, str], args: list[str]):
    """A Lua script by its SHA (EVALSHA, loaded once per client)."""
    script = _scripts.get((id(redis), source))
    if script is None:
        script = _scripts[(id(redis), source)] = redis.register_script(source)
    return script(keys=list(keys_), args=args)


# ---------------------------------------------------------------- after commit


def stage(campaign_id: str) -> None:
    """After this transaction commits, bring the campaign's sorted set up to date (a job, once per campaign)."""
    if not current_app.config.get("REDIS_URL"):
        return
    staged = db.session.info.setdefault(STAGED, set())
    if campaign_id not in staged:
        staged.add(campaign_id)
        jobs.enqueue(JOB, campaign_id=campaign_id)


@event.listens_for(Session, "after_commit")
def _forget_on_commit(session):
    session.info.pop(STAGED, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session, previous_transaction):
    # A rolled-back savepoint took its job row with it: stage again if another award comes.
    session.info.pop(STAGED, None)


def sync_job(campaign_id: str) -> None:
    """Job: catch the campaign's sorted set up with the committed awards."""
    redis = client()
    if redis is not None:
        sync(redis, campaign_id)


# ---------------------------------------------------------------- Redis


def _db_seq(campaign_id: str) -> int:
    return int(db.session.scalar(
        select(func.coalesce(func.max(CampaignAward.seq), 0)).where(CampaignAward.campaign_id == campaign_id)))


def _totals(campaign_id: str, after: int, upto: int) -> list[tuple[str, int]]:
    """Each household's points from the awards with after < seq <= upto (committed, immutable)."""
    rows = db.session.execute(
        select(CampaignAward.household_id, func.sum(CampaignAward.points))
        .where(CampaignAward.campaign_id == campaign_id, CampaignAward.seq > after, CampaignAward.seq <= upto)
        .group_by(CampaignAward.household_id)
    ).all()
    return [(household, int(points)) for household, points in rows]


def rebuild(redis, campaign_id: str, upto: int | None = None) -> None:
    """Replace the sorted set with the ranking of the database's awards (up to seq `upto`)."""
    upto = _db_seq(campaign_id) if upto is None else upto
    args = [str(upto)]
    for household, points in _totals(campaign_id, 0, upto):
        if points > 0:
            args += [household, str(points)]
    _run(redis, REBUILD, keys(campaign_id), args)


def sync(redis, campaign_id: str) -> None:
    """Bring the sorted set to the database's last award: apply what is missing, or rebuild."""
    target = _db_seq(campaign_id)
    board, seq_key = keys(campaign_id)
    for _ in range(3):
        held = redis.get(seq_key)
        if held is None or int(held) > target:
            rebuild(redis, campaign_id, target)
            return
        held = int(held)
        if held == target:
            return
        args = [str(held), str(target)]
        for household, delta in _totals(campaign_id, held, target):
            if delta:
                args += [household, str(delta)]
        if _run(redis, APPLY, (board, seq_key), args):
            return
    rebuild(redis, campaign_id, target)  # others keep moving it: settle on the database's state


def _from_redis(redis, campaign_id: str, limit: int, household_id: str | None) -> Ranking:
    sync(redis, campaign_id)
    board, _ = keys(campaign_id)
    pipe = redis.pipeline(transaction=True)
    pipe.zrange(board, 0, limit - 1, withscores=True)
    if household_id:
        pipe.zrank(board, household_id)
        pipe.zscore(board, household_id)
    replies = pipe.execute()
    entries = [Entry(index + 1, member.decode(), int(-score)) for index, (member, score) in enumerate(replies[0])]
    my_rank = my_points = None
    if household_id:
        rank, score = replies[1], replies[2]
        my_rank = rank + 1 if rank is not None else None
        my_points = int(-score) if score is not None else None
    if household_id and my_points is None:
        my_points = _household_points(campaign_id, household_id)  # 0, or net negative: unranked
    return Ranking(entries, my_rank, my_points or 0, "redis")


# ---------------------------------------------------------------- SQL


def _household_points(campaign_id: str, household_id: str) -> int:
    return int(db.session.scalar(
        select(func.coalesce(func.sum(CampaignAward.points), 0))
        .where(CampaignAward.campaign_id == campaign_id, CampaignAward.household_id == household_id)))


def _from_sql(campaign_id: str, limit: int, household_id: str | None) -> Ranking:
    points = func.sum(CampaignAward.points)
    totals = (
        select(CampaignAward.household_id.label("household_id"), points.label("points"))
        .where(CampaignAward.campaign_id == campaign_id)
        .group_by(CampaignAward.household_id).having(points > 0)
    ).subquery()
    rows = db.session.execute(
        select(totals.c.household_id, totals.c.points)
        .order_by(totals.c.points.desc(), totals.c.household_id).limit(limit)
    ).all()
    entries = [Entry(index + 1, household, int(score)) for index, (household, score) in enumerate(rows)]
    my_rank, my_points = None, 0
    if household_id:
        my_points = _household_points(campaign_id, household_id)
        if my_points > 0:
            ahead = db.session.scalar(select(func.count()).select_from(totals).where(or_(
                totals.c.points > my_points,
                (totals.c.points == my_points) & (totals.c.household_id < household_id))))
            my_rank = int(ahead) + 1
    return Ranking(entries, my_rank, my_points, "sql")


# ---------------------------------------------------------------- reading


def mask(name: str | None) -> str:
    """First character and two stars: 王家 → 王**."""
    return (name or "?").strip()[:1] + "**"


def _names(household_ids: list[str]) -> dict[str, str]:
    """Each household's first member's display name, masked."""
    if not household_ids:
        return {}
    names: dict[str, str] = {}
    for household, name in db.session.execute(
        select(User.household_id, User.display_name).where(User.household_id.in_(household_ids))
        .order_by(User.created_at, User.id)
    ).all():
        names.setdefault(household, mask(name))
    return names


def ranking(campaign_id: str, limit: int, household_id: str | None = None, *, source: str | None = None) -> Ranking:
    """The top `limit` households and the rank of `household_id`; from Redis when configured, else SQL.

    `source` forces "redis" or "sql" (tests compare them).
    """
    redis = client() if source != "sql" else None
    result = None
    if redis is not None:
        try:
            result = _from_redis(redis, campaign_id, limit, household_id)
        except Exception:  # Redis down or refusing: the database answers the same
            if source == "redis":
                raise
            log.warning("leaderboard of campaign %s read from SQL: Redis failed", campaign_id, exc_info=True)
    if result is None:
        result = _from_sql(campaign_id, limit, household_id)
    names = _names([e.household_id for e in result.entries])
    for entry in result.entries:
        entry.name_masked = names.get(entry.household_id, "?**")
    return result
