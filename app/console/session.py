"""The console's login: a server-side login session row referenced from a signed cookie.

The row is the same `LoginSession` the API's tokens belong to, so revoking it (logout, or anything
that revokes logins) ends the console login too. The cookie holds only the session id, signed and
timestamped with SECRET_KEY; it is HttpOnly and SameSite=Lax.
"""
from flask import current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ..accounts import service as accounts
from ..accounts.models import User
from ..auth import session_user

COOKIE = "sjc_console"
SALT = "sjc-console-session"
MAX_AGE_SECONDS = 12 * 3600  # a working day; then the staff member logs in again
LOGOUT_REASON = "console_logout"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def cookie_value(session_id: str) -> str:
    return _serializer().dumps(session_id)


def session_id() -> str | None:
    """The session id the request's cookie names, if the signature holds and it is not too old."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        value = _serializer().loads(raw, max_age=current_app.config.get("CONSOLE_SESSION_SECONDS", MAX_AGE_SECONDS))
    except BadSignature:  # includes SignatureExpired
        return None
    return value if isinstance(value, str) else None


def current_user() -> User | None:
    """The user of the cookie's login session, if it is still live."""
    sid = session_id()
    return session_user(sid) if sid else None


def begin(user: User) -> str:
    """Open a login session for `user`; returns the cookie value. Does not commit."""
    return cookie_value(accounts.open_session(user).id)


def end() -> None:
    """Revoke the cookie's login session. Does not commit."""
    sid = session_id()
    if sid:
        accounts.revoke_session(sid, LOGOUT_REASON)


def set_cookie(response, value: str) -> None:
    response.set_cookie(COOKIE, value, max_age=current_app.config.get("CONSOLE_SESSION_SECONDS", MAX_AGE_SECONDS),
                        path="/console/", httponly=True, samesite="Lax",
                        secure=current_app.config.get("CONSOLE_COOKIE_SECURE", False))


def clear_cookie(response) -> None:
    response.delete_cookie(COOKIE, path="/console/", httponly=True, samesite="Lax",
                           secure=current_app.config.get("CONSOLE_COOKIE_SECURE", False))
