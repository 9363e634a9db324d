"""One error shape for every failure: RFC 9457 problem details."""
import json
import logging
import uuid

from flask import Response, current_app, g, has_app_context, request
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from werkzeug.exceptions import HTTPException

from .i18n import localise_problem

log = logging.getLogger("app.errors")

PROBLEM_JSON = "application/problem+json"
DATABASE_RETRY_AFTER = 5  # seconds: a dropped connection is replaced on the next checkout


class AppError(Exception):
    """A business rule said no; subclasses name the condition."""

    status, code, title = 400, "bad_request", "Bad request"

    def __init__(self, detail=None, **extra):
        super().__init__(detail or self.title)
        self.detail, self.extra = detail or self.title, extra


class ValidationFailed(AppError):
    """422 naming the field: `ValidationFailed({"field": ["message"]})`."""

    status, code, title = 422, "validation_error", "The request has invalid fields"

    def __init__(self, errors: dict, detail=None, **extra):
        super().__init__(detail, errors=errors, **extra)


class Unauthenticated(AppError):
    status, code, title = 401, "unauthenticated", "Authentication required"


class InvalidCredentials(AppError):
    status, code, title = 401, "invalid_credentials", "Wrong phone number or password"


class Forbidden(AppError):
    status, code, title = 403, "forbidden", "Your role may not do this"


class NotFound(AppError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(AppError):
    status, code, title = 409, "conflict", "The request conflicts with the current state"


class UnsupportedMediaType(AppError):
    status, code, title = 415, "unsupported_media_type", "Unsupported media type"


class InvalidState(AppError):
    status, code, title = 409, "invalid_state", "The object is not in a state that allows this"


class InsufficientPoints(AppError):
    status, code, title = 409, "insufficient_points", "Not enough points"


class IdempotencyKeyReused(AppError):
    status, code, title = 422, "idempotency_key_reused", "This Idempotency-Key was used with another request"


class IdempotencyInProgress(AppError):
    status, code, title = 409, "idempotency_in_progress", "A request with this Idempotency-Key is still running"


def is_write_conflict(exc: Exception) -> bool:
    """A deadlock, a serialisation failure or SQLite's busy lock: the same request may succeed on retry."""
    text = str(getattr(exc, "orig", exc)).lower()
    return "deadlock" in text or "could not serialize" in text or "database is locked" in text


def validation_error(field: str, message: str) -> ValidationFailed:
    return ValidationFailed({field: [message]})


def problem(status, code, title, detail=None, headers=None, **extra) -> Response:
    body = {"type": f"/problems/{code}", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    body.update(extra)
    # Title, detail and field messages in the caller's language (app/i18n.py); `code` never changes.
    body, language = localise_problem(body, check_catalogue=has_app_context()
                                      and current_app.config.get("I18N_CHECK_CATALOGUE", False))
    response = Response(json.dumps(body, ensure_ascii=False), status, headers=headers, mimetype=PROBLEM_JSON)
    response.headers["Content-Language"] = language
    response.vary.add("Accept-Language")
    return response


def app_error_response(error: AppError) -> Response:
    return problem(error.status, error.code, error.title, error.detail, **error.extra)


HTTP_CODES = {
    400: ("malformed_json", "Malformed request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "The request has invalid fields"),
    429: ("rate_limited", "Too many requests"),
}


def flatten_messages(messages, prefix: str = "") -> dict:
    """marshmallow/webargs {"records": {3: {"quantity": [...]}}} → {"records.3.quantity": [...]}."""
    out = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, dict):
                out.update(flatten_messages(value, path))
            else:
                out[path] = [str(m) for m in value] if isinstance(value, list) else [str(value)]
    else:
        out[prefix or "body"] = [str(m) for m in messages] if isinstance(messages, list) else [str(messages)]
    return out


def _webargs_errors(exc: HTTPException) -> dict | None:
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if not messages:
        return None
    merged = {}
    for location, fields in messages.items():
        # The location ("json", "query", ...) is not part of the field path.
        flat = flatten_messages(fields)
        merged.update({("body" if k == "_schema" and location == "json" else k): v for k, v in flat.items()})
    return merged


def http_error_response(exc: HTTPException) -> Response:
    status = exc.code or 500
    code, title = HTTP_CODES.get(status, ("http_error", exc.name))
    headers = {}
    if status == 405 and exc.get_response().headers.get("Allow"):
        headers["Allow"] = exc.get_response().headers["Allow"]
    if status == 429:
        headers["Retry-After"] = str(_retry_after(exc))
        return problem(429, code, title, "Rate limit exceeded; retry later", headers=headers)
    if status == 422:
        errors = _webargs_errors(exc) or {}
        return problem(422, code, title, "Some fields are invalid; `errors` names each one", errors=errors)
    if status == 400:
        errors = _webargs_errors(exc)
        detail = "The request body is not valid JSON" if errors is not None else exc.description
        return problem(400, code, title, detail, headers=headers)
    detail = exc.description if status < 500 else None
    return problem(status, code, title, detail, headers=headers)


def _retry_after(exc) -> int:
    """Seconds until the breached window resets (the limiter knows), else the window's length."""
    import time

    from .extensions import limiter

    try:
        current = limiter.current_limit
        if current is not None and current.reset_at:
            return max(1, int(current.reset_at - time.time()) + 1)
        return max(1, int(exc.limit.limit.get_expiry()))
    except Exception:  # no limit in context (e.g. a 429 raised by hand)
        return 60


def register_error_handlers(app) -> None:
    """Route every failure through `problem`."""

    @app.before_request
    def _request_id():
        g.request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex

    @app.before_request
    def _refuse_nul():
        # PostgreSQL text cannot hold NUL: an id with one names nothing, a query value with one is invalid.
        if "\x00" in request.path:
            raise NotFound()
        for name, value in request.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                raise validation_error(name, "Must not contain NUL characters.")

    @app.after_request
    def _echo_request_id(response):
        response.headers.setdefault("X-Request-Id", g.get("request_id", ""))
        return response

    @app.errorhandler(AppError)
    def _app_error(error):
        from .extensions import db

        db.session.rollback()
        return app_error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        return http_error_response(exc)

    @app.errorhandler(IntegrityError)
    def _integrity(exc):
        from .extensions import db

        db.session.rollback()
        log.warning("integrity conflict request_id=%s: %s", g.get("request_id"), exc.orig.__class__.__name__)
        return problem(409, "conflict", "The request conflicts with the current state",
                       "A concurrent change got there first; retry")

    @app.errorhandler(DataError)
    def _data_error(exc):
        # Safety net: validation should have refused the value (too long, out of range, NUL) first.
        from .extensions import db

        db.session.rollback()
        log.warning("value refused by the database request_id=%s: %s", g.get("request_id"), exc.orig.__class__.__name__)
        return problem(422, "validation_error", "The request has invalid fields",
                       "A value is too long, out of range or cannot be stored",
                       errors={"body": ["A value is too long, out of range or cannot be stored."]})

    @app.errorhandler(OperationalError)
    def _operational(exc):
        from .extensions import db

        db.session.rollback()
        if is_write_conflict(exc):
            log.warning("write conflict request_id=%s", g.get("request_id"))
            return problem(409, "conflict", "The request conflicts with a concurrent one", "Retry the request")
        log.exception("database error request_id=%s", g.get("request_id"))
        return _database_unavailable()

    @app.errorhandler(DBAPIError)
    def _dbapi_error(exc):
        # A driver error on a connection that died (e.g. "the connection is closed"): as OperationalError.
        if exc.connection_invalidated:
            from .extensions import db

            db.session.rollback()
            log.exception("database connection lost request_id=%s", g.get("request_id"))
            return _database_unavailable()
        return _unexpected(exc)

    def _database_unavailable():
        # Nothing of the unit of work was committed; the same request may be sent again.
        return problem(503, "database_unavailable", "The database is unavailable", "Retry later",
                       headers={"Retry-After": str(DATABASE_RETRY_AFTER)})

    @app.errorhandler(Exception)
    def _unexpected(exc):
        from .extensions import db

        db.session.rollback()
        log.exception("unhandled error request_id=%s", g.get("request_id"))
        return problem(500, "internal_error", "Internal server error",
                       f"Something went wrong; quote request id {g.get('request_id')}")
