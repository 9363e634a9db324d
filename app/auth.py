"""Access tokens (PyJWT), the current user, role checks, integration signatures."""
import functools
import hashlib
import hmac
import time

import jwt
from flask import current_app, g, request
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .columns import new_id, utcnow
from .errors import Forbidden, Unauthenticated
from .extensions import db

ALGORITHMS = ["HS256"]
BEARER = {"bearerAuth": []}
SIGNATURE_SKEW = 300  # seconds either side of the server clock


def issue_access_token(user_id: str, session_id: str) -> str:
    now = utcnow()
    claims = {
        "sub": user_id,
        "sid": session_id,
        "iat": now,
        "exp": now + current_app.config["JWT_ACCESS_TTL"],
        "jti": new_id(),
        "typ": "access",
    }
    return jwt.encode(claims, current_app.config["JWT_SECRET_KEY"], algorithm=ALGORITHMS[0])


def decode_access_token(token: str) -> dict:
    try:
        claims = jwt.decode(
            token,
            current_app.config["JWT_SECRET_KEY"],
            algorithms=ALGORITHMS,
            options={"require": ["exp", "iat", "jti", "sub", "sid"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated("The access token is invalid or expired") from exc
    if claims.get("typ") != "access":
        raise Unauthenticated("Not an access token")
    return claims


def _load_user():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send 'Authorization: Bearer <access_token>'")
    claims = decode_access_token(token.strip())
    user = session_user(claims["sid"], claims["sub"])
    if user is None:
        raise Unauthenticated("This login has ended")
    g.session_id = claims["sid"]
    return user


def session_user(session_id: str, user_id: str | None = None):
    """The user of a login session that has not been revoked (and is `user_id`'s, if given), else None.

    Bearer tokens (API) and the staff console's cookie both end here.
    """
    from .accounts.models import LoginSession, User

    query = (
        select(User, LoginSession.revoked_at)
        .join(LoginSession, LoginSession.user_id == User.id)
        .options(joinedload(User.household))  # one round trip: most routes need the household
        .where(LoginSession.id == session_id)
    )
    if user_id is not None:
        query = query.where(User.id == user_id)
    row = db.session.execute(query).first()
    if row is None or row.revoked_at is not None:
        return None
    return row.User


def current_user():
    """The authenticated user of this request (require_auth must have run)."""
    return g.current_user


def require_auth(*roles: str):
    """Authenticate the bearer token; with roles, also require one of them (else 403)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = _load_user()
            if roles and user.role not in roles:
                raise Forbidden(f"This needs the role {' or '.join(roles)}")
            g.current_user = user
            return view(*args, **kwargs)

        docs = wrapper.__dict__.setdefault("_apidoc", {})
        docs.setdefault("manual_doc", {}).setdefault("security", [BEARER])
        return wrapper

    return decorator


def sign_request(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The integration signature: hex HMAC-SHA256 over timestamp, method, path and body hash.

    `path` is the request path, followed by "?" and the raw query string when there is one.
    """
    message = "\n".join([timestamp, method.upper(), path, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_path() -> str:
    """What the signature of the current request covers as its path: the path and any query string."""
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def verify_signature(secrets: str | list[str], timestamp: str, signature: str, *,
                     skew: int = SIGNATURE_SKEW) -> tuple[str, int]:
    """Check X-Timestamp (±skew s) and X-Signature of the current request against any of `secrets`, else 401.

    Returns the signature in lower case (the key under which a repeat is recognised) and the
    timestamp in Unix seconds.
    """
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        raise Unauthenticated("X-Timestamp must be Unix seconds")
    if abs(time.time() - ts) > skew:
        raise Unauthenticated("X-Timestamp is stale")
    given = (signature or "").lower()
    body = request.get_data()
    matches = False
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        expected = sign_request(secret, timestamp, request.method, signed_path(), body)
        matches |= given.isascii() and hmac.compare_digest(expected, given)
    if not matches:
        raise Unauthenticated("X-Signature does not match")
    return given, ts
