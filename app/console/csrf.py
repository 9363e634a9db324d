"""CSRF protection for every console form: a per-session token in a hidden field, checked on every POST.

The token is an HMAC of the login session id (or, before login, of a random pre-login cookie) under
SECRET_KEY: nothing to store, and a token of one session is worthless in another.
"""
import hashlib
import hmac
import secrets

from flask import current_app, g, request
from werkzeug.exceptions import BadRequest

from . import session

FIELD = "csrf_token"
PRE_LOGIN_COOKIE = "sjc_console_pre"


class CSRFFailed(BadRequest):
    description = "The form has expired or did not come from this console; reload the page and try again."


def _key() -> str | None:
    return session.session_id() or request.cookies.get(PRE_LOGIN_COOKIE) or g.get("pre_login_key")


def _token_for(key: str) -> str:
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, f"console-csrf\x1f{key}".encode(), hashlib.sha256).hexdigest()


def token() -> str:
    """The token for this request's forms; before login, a pre-login cookie is set to tie it to."""
    key = _key()
    if key is None:
        g.pre_login_key = key = secrets.token_urlsafe(32)
    return _token_for(key)


def check() -> None:
    """Refuse (400) a POST whose token is missing or not this session's."""
    key = _key()
    given = request.form.get(FIELD, "")
    # compare_digest takes str of ASCII only (a TypeError, so a 500, for "é"): compare the bytes
    if not key or not given or not hmac.compare_digest(_token_for(key).encode(), given.encode()):
        raise CSRFFailed()


def set_pre_login_cookie(response):
    if g.get("pre_login_key"):
        response.set_cookie(PRE_LOGIN_COOKIE, g.pre_login_key, path="/console/", httponly=True, samesite="Lax",
                            secure=current_app.config.get("CONSOLE_COOKIE_SECURE", False))
    return response
