"""Idempotency-Key for every value-creating POST.

A key is scoped to (caller, method, path). The claim is committed first, so a
concurrent request with the same key sees it and gets 409. The stored reply
is written in the same transaction as the business change, so a success is
never recorded without its effects nor its effects without the reply; a
refusal (a 4xx business error) is stored after the rollback. A claim left
`running` by a crashed process committed nothing and is taken over after
`STALE_AFTER`.
"""
import functools
import hashlib
import json
from datetime import datetime, timedelta

from flask import Response, g, make_response, request
from sqlalchemy import LargeBinary, SmallInteger, String, delete, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .columns import UTCDateTime, utcnow
from .errors import AppError, IdempotencyInProgress, IdempotencyKeyReused, ValidationFailed, app_error_response
from .extensions import db

KEEP_FOR = timedelta(hours=24)
STALE_AFTER = timedelta(minutes=2)
HEADER = "Idempotency-Key"


class IdempotencyRecord(db.Model):
    __tablename__ = "idempotency_records"
    scope_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))  # running | done
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
    """Insert a running claim and commit it; return the existing record instead if there is one."""
    now = utcnow()
    try:
        db.session.execute(insert(IdempotencyRecord).values(
            scope_hash=scope, request_hash=body_hash, state="running", created_at=now))
        db.session.commit()
        return None
    except IntegrityError:
        db.session.rollback()
    existing = db.session.get(IdempotencyRecord, scope, populate_existing=True)
    if existing is None:  # expired and swept between our insert and read
        return _claim(scope, body_hash)
    if existing.created_at < now - KEEP_FOR or (
        existing.state == "running" and existing.created_at < now - STALE_AFTER
    ):
        taken = db.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope_hash == scope, IdempotencyRecord.created_at == existing.created_at)
            .values(request_hash=body_hash, state="running", status=None, body=None, created_at=now)
        ).rowcount
        db.session.commit()
        if taken:
            return None
        existing = db.session.get(IdempotencyRecord, scope, populate_existing=True)
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
    """Make a POST idempotent under `Idempotency-Key`; the decorator commits the unit of work.

    Place it below `require_auth` and above `arguments`/`response`. The view must not commit.
    `conceal` takes a secret out of a success reply before it is stored (a live redemption code)
    and `reveal` puts it back on replay.
    """
    if view is None:
        return functools.partial(idempotent, conceal=conceal, reveal=reveal)

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            response = _call(view, args, kwargs)
            db.session.commit()
            return response
        if not key or len(key) > 255:
            raise ValidationFailed({HEADER: ["Must be 1 to 255 characters."]})
        scope, body_hash = _hashes(key)
        existing = _claim(scope, body_hash)
        if existing is not None:
            if existing.request_hash != body_hash:
                raise IdempotencyKeyReused()
            if existing.state != "done":
                raise IdempotencyInProgress()
            return _replay(existing, reveal)
        try:
            response = _call(view, args, kwargs)
        except AppError as error:
            db.session.rollback()
            response = app_error_response(error)
            _store(scope, response)
            db.session.commit()
            return response
        except BaseException:
            db.session.rollback()
            db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.scope_hash == scope))
            db.session.commit()
            raise
        _store(scope, response, conceal)
        db.session.commit()
        return response

    wrapper.__dict__.setdefault("_apidoc", {}).setdefault("manual_doc", {}).setdefault(
        "parameters", []
    ).append({"in": "header", "name": HEADER, "required": False, "schema": {"type": "string", "maxLength": 255}})
    return wrapper


def _call(view, args, kwargs) -> Response:
    return make_response(view(*args, **kwargs))


def sweep_expired() -> int:
    """Delete records older than 24 h. Does not commit."""
    return db.session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < utcnow() - KEEP_FOR)
    ).rowcount
