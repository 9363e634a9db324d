"""Signed requests already received: a repeated X-Signature within its timestamp window is refused.

Every signature is a row of `seen_signatures` inserted only if absent in the request's own
transaction: of two concurrent identical requests the second waits for the first and is refused
once that one commits (a first request that rolls back leaves nothing, so its retry is not
refused). With REDIS_URL it is also a key set only if absent (SET NX), expiring when its timestamp
window closes, and either store having seen it refuses it; so a replay is refused whether or not
Redis answered for the first request. Expired rows are pruned now and then by the requests themselves.
"""
import logging
import secrets
from datetime import datetime

from flask import current_app
from sqlalchemy import String, delete
from sqlalchemy.orm import Mapped, mapped_column

from .columns import UTCDateTime, utcnow
from .dialect import insert_ignoring_conflicts
from .errors import Unauthenticated
from .extensions import db
from .redis_client import redis_client

log = logging.getLogger("app.replay")

PRUNE_ONE_IN = 50  # about one signed request in this many deletes the expired rows
REPEATED = "This signed request was already received"


class SeenSignature(db.Model):
    """An X-Signature received, kept until its timestamp window has closed."""

    __tablename__ = "seen_signatures"
    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


def claim_signature(signature: str, expires_at: datetime) -> None:
    """Note `signature` as received until `expires_at`; 401 if it already was. Does not commit."""
    new_in_redis = _claim_in_redis(signature, expires_at)  # None: no Redis, or Redis failed
    if not _claim_in_database(signature, expires_at) or new_in_redis is False:
        raise Unauthenticated(REPEATED)


_redis = redis_client  # a name of this module's own, so that a test can stand a failing Redis in


def _claim_in_redis(signature: str, expires_at: datetime) -> bool | None:
    """True if newly set, False if already there, None without (working) Redis."""
    client = _redis()
    if client is None:
        return None
    key = f"{current_app.config.get('RATELIMIT_KEY_PREFIX', 'sjc')}:seen-signature:{signature}"
    seconds = max(1, int((expires_at - utcnow()).total_seconds()) + 1)
    try:
        return bool(client.set(key, 1, nx=True, ex=seconds))
    except Exception:  # Redis down: the database still holds every signature
        log.warning("signature replay check on the database alone: Redis failed", exc_info=True)
        return None


def _claim_in_database(signature: str, expires_at: datetime) -> bool:
    now = utcnow()
    if secrets.randbelow(PRUNE_ONE_IN) == 0:
        prune_seen_signatures(now)
    inserted = db.session.scalar(
        insert_ignoring_conflicts(SeenSignature).values(signature=signature, expires_at=expires_at)
        .returning(SeenSignature.signature)
    )
    return inserted is not None


def prune_seen_signatures(now: datetime | None = None) -> int:
    """Delete the signatures whose window has closed; returns how many. Does not commit."""
    result = db.session.execute(delete(SeenSignature).where(SeenSignature.expires_at < (now or utcnow())))
    return result.rowcount
