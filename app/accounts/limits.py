"""Rate limits on registration and login, shared by every way in (the API and the staff console).

A failed login counts against its phone number whichever door it came through, so the console
cannot be used to get round the API's lockout, nor the other way round.
"""
import functools

from flask import current_app, request
from flask_limiter.util import get_remote_address

from ..extensions import limiter
from ..json_body import MalformedJSON

DEFAULT_LIMITS = {
    "REGISTER_LIMIT": "60/minute",
    "REGISTER_PHONE_LIMIT": "10/hour",
    "LOGIN_LIMIT": "60/minute",
    "LOGIN_FAILURE_LIMIT": "10 per 15 minutes",
    "INVITE_FAILURE_LIMIT": "10/hour",
}


def phone_key() -> str:
    """The phone number a request names (JSON body or form), else its address: the key of per-phone limits."""
    try:
        body = request.get_json(silent=True)
    except MalformedJSON:  # refused with 400 by the route's parser; the limit keys on the address
        body = None
    phone = body.get("phone") if isinstance(body, dict) else request.form.get("phone")
    # Cut to the longest phone the schemas accept: the raw value would become the storage key.
    return f"phone:{phone[:32]}" if isinstance(phone, str) else f"ip:{get_remote_address()}"


def failed_login(response) -> bool:
    return response.status_code == 401


def failed_invite(response) -> bool:
    if response.status_code != 422:
        return False
    body = response.get_json(silent=True) or {}
    return "household_invite_code" in (body.get("errors") or {})


def limit(name: str) -> str:
    return current_app.config.get(name) or DEFAULT_LIMITS[name]


def login_limits(view):
    """The limits of a login form or route: per address, and per phone on failures (a reply of 401).

    The failure limit has one scope everywhere, so failures through any login count together.
    """
    limited = limiter.shared_limit(lambda: limit("LOGIN_FAILURE_LIMIT"), scope="login-failures", key_func=phone_key,
                                   deduct_when=failed_login)(view)
    return limiter.limit(lambda: limit("LOGIN_LIMIT"), key_func=get_remote_address)(limited)
