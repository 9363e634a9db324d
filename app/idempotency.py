"""Idempotency-Key for every value-creating POST, inside the request's one unit of work.

A key is scoped to (caller, method, path). The key is claimed by an `INSERT … ON
CONFLICT DO NOTHING` in the business transaction itself, so a concurrent request
with the same key waits on the first one's row lock and then replays its reply;
a process that dies holding a claim rolls it back with everything else. The
reply is stored in the same transaction as the business change. A refusal is
stored too: the business part runs in a savepoint that the refusal rolls back,
while the claim stays held, so no retry can turn a stored refusal into a success.
"""
import functools
import hashlib
import json
from datetime import datetime, timedelta

from flask import Response, g, make_response, request
from sqlalchemy import LargeBinary, SmallInteger, String, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from .columns import UTCDateTime, utcnow
from .dialect import insert_ignoring_conflicts
from .errors import AppError, IdempotencyInProgress, IdempotencyKeyReused, ValidationFailed, app_error_response
from .extensions import db
from .transaction import mark_owner, transaction

KEEP_FOR = timedelta(hours=24)
HEADER = "Idempotency-Key"


class IdempotencyRecord(db.Model):
    __tablename__ = "idempotency_records"
    scope_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))  # running (only ever seen inside its transaction) | done
    status: Mapped[int | None] = mapped_column(SmallInteger)
    content_type: Mapped[str | None] = mapped_column(String(80))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


def _hashes(key: str) -> tuple[str, str]:
    user = g.get("current_user")
    caller = user.id if user is not None else g.get("caller_id", "anonymous")
    scope = hashlib.sha256("\x1f".join([caller, request.method, request.path, key]).encode()).hexdigest()
    body = hashlib.sha256(request.get_data()).hexdigest()
    return scope, body


def _claim(scope: str, body_hash: str) -> IdempotencyRecord | None:
    """Claim the key in this transaction; return the earlier record instead if it holds one.

    On PostgreSQL the INSERT waits while another transaction holds the same key, and
    then sees its committed reply. A record older than KEEP_FOR is taken over.
    """
    now = utcnow()
    claimed = db.session.scalar(
        insert_ignoring_conflicts(IdempotencyRecord).values(
            scope_hash=scope, request_hash=body_hash, state="running", created_at=now)
        .returning(IdempotencyRecord.scope_hash)
    )
    if claimed is not None:
        return None
    existing = db.session.scalar(
        select(IdempotencyRecord).where(IdempotencyRecord.scope_hash == scope).with_for_update()
        .execution_options(populate_existing=True)
    )
    if existing is None:  # swept between the two statements
        return _claim(scope, body_hash)
    if existing.created_at < now - KEEP_FOR:
        existing.request_hash, existing.state, existing.status, existing.body = body_hash, "running", None, None
        existing.created_at = now
        db.session.flush()
        return None
    return existing


def _store(scope: str, response: Response, conceal=None) -> None:
    body = response.get_data()
    if conceal is not None and response.status_code < 300 and response.is_json:
        body = json.dumps(conceal(response.get_json()), ensure_ascii=False).encode()
    db.session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.scope_hash == scope)
        .values(state="done", status=response.status_code, content_type=response.content_type, body=body)
    )


def _replay(record: IdempotencyRecord, reveal=None) -> Response:
    body = record.body
    if reveal is not None and record.status < 300:
        body = json.dumps(reveal(json.loads(body)), ensure_ascii=False).encode()
    replay = Response(body, record.status, content_type=record.content_type)
    replay.headers["Idempotent-Replayed"] = "true"
    return replay


def idempotent(view=None, *, conceal=None, reveal=None):
    """Own the request's unit of work and make it idempotent under `Idempotency-Key`.

    Place it below `require_auth` and above `arguments`/`response`. The view must not commit.
    `conceal` takes a secret out of a success reply before it is stored (a live redemption code)
    and `reveal` puts it back on replay.
    """
    if view is None:
        return functools.partial(idempotent, conceal=conceal, reveal=reveal)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is not None and (not key or len(key) > 255):
            raise ValidationFailed({HEADER: ["Must be 1 to 255 characters."]})
        with transaction():
            if key is None:
                return make_response(view(*args, **kwargs))
            scope, body_hash = _hashes(key)
            existing = _claim(scope, body_hash)
            if existing is not None:
                if existing.request_hash != body_hash:
                    raise IdempotencyKeyReused()
                if existing.state != "done":
                    raise IdempotencyInProgress()
                return _replay(existing, reveal)
            response = _keyed_call(view, args, kwargs, scope)
            _store(scope, response, conceal)
            return response

    mark_owner(wrapper)
    wrapper.__dict__.setdefault("_apidoc", {}).setdefault("manual_doc", {}).setdefault(
        "parameters", []
    ).append({"in": "header", "name": HEADER, "required": False, "schema": {"type": "string", "maxLength": 255}})
    return wrapper


def _keyed_call(view, args, kwargs, scope: str) -> Response:
    """The view in a savepoint: a refusal undoes its writes but not the claim, and is stored."""
    savepoint = db.session.begin_nested()
    try:
        response = make_response(view(*args, **kwargs))
    except AppError as error:
        if getattr(error, "keep_writes", False):
            savepoint.commit()
        else:
            savepoint.rollback()
        _store(scope, app_error_response(error))
        error.keep_writes = True  # the claim and the stored refusal commit
        raise
    except BaseException:
        if savepoint.is_active:
            savepoint.rollback()
        raise
    savepoint.commit()
    return response


def sweep_expired() -> int:
    """Delete records older than 24 h. Does not commit."""
    return db.session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - KEEP_FOR)
    ).rowcount
