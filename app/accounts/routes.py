"""Accounts: communities, registration, login, tokens, staff."""
from flask import current_app, request
from flask_limiter.util import get_remote_address

from ..auth import current_user, require_auth
from ..blueprint import Blueprint
from ..extensions import limiter
from ..json_body import MalformedJSON
from ..idempotency import idempotent
from ..schemas import NoBody
from ..transaction import transactional
from . import service
from .schemas import (
    CommunityList, InviteCodeOut, LoginIn, MeOut, RefreshIn, RegisterIn, StaffIn, StaffOut, TokensOut,
)

bp = Blueprint("accounts", __name__, description="Communities, residents, households, staff and tokens")


def _phone_key() -> str:
    try:
        body = request.get_json(silent=True)
    except MalformedJSON:  # refused with 400 by the route's parser; the limit keys on the address
        body = None
    phone = body.get("phone") if isinstance(body, dict) else None
    # Cut to the longest phone the schemas accept: the raw value would become the storage key.
    return f"phone:{phone[:32]}" if isinstance(phone, str) else f"ip:{get_remote_address()}"


def _failed_login(response) -> bool:
    return response.status_code == 401


def _failed_invite(response) -> bool:
    if response.status_code != 422:
        return False
    body = response.get_json(silent=True) or {}
    return "household_invite_code" in (body.get("errors") or {})


def _limit(name: str) -> str:
    return current_app.config.get(name) or DEFAULT_LIMITS[name]


DEFAULT_LIMITS = {
    "REGISTER_LIMIT": "60/minute",
    "REGISTER_PHONE_LIMIT": "10/hour",
    "LOGIN_LIMIT": "60/minute",
    "LOGIN_FAILURE_LIMIT": "10 per 15 minutes",
    "INVITE_FAILURE_LIMIT": "10/hour",
}


@bp.route("/communities", methods=["GET"])
@bp.response(200, CommunityList)
def communities():
    """Every community of the district, in the order created"""
    return {"items": service.list_communities(), "next_cursor": None}


@bp.route("/auth/register", methods=["POST"])
@limiter.limit(lambda: _limit("REGISTER_LIMIT"), key_func=get_remote_address)
@limiter.limit(lambda: _limit("REGISTER_PHONE_LIMIT"), key_func=_phone_key)
@limiter.limit(lambda: _limit("INVITE_FAILURE_LIMIT"), key_func=get_remote_address,
               deduct_when=_failed_invite, scope="invite-failures")
@transactional
@bp.arguments(RegisterIn)
@bp.response(201, TokensOut)
@bp.alt_response(409, response="CONFLICT", description="phone_taken or household_full")
def register(data):
    """Register a resident into a new household, or join one by invite code"""
    user, tokens = service.register(data)
    return service.session_reply(user, tokens)


@bp.route("/auth/login", methods=["POST"])
@limiter.limit(lambda: _limit("LOGIN_LIMIT"), key_func=get_remote_address)
@limiter.limit(lambda: _limit("LOGIN_FAILURE_LIMIT"), key_func=_phone_key, deduct_when=_failed_login,
               scope="login-failures")
@transactional
@bp.arguments(LoginIn)
@bp.response(200, TokensOut)
def login(data):
    """Log in with phone and password"""
    user, tokens = service.login(data["phone"], data["password"])
    return service.session_reply(user, tokens)


@bp.route("/auth/refresh", methods=["POST"])
@transactional
@bp.arguments(RefreshIn)
@bp.response(200, TokensOut)
def refresh(data):
    """Trade a refresh token for a new pair; a reused token revokes the whole login"""
    user, tokens = service.refresh(data["refresh_token"])
    return service.session_reply(user, tokens)


@bp.route("/auth/logout", methods=["POST"])
@require_auth()
@transactional
@bp.arguments(NoBody, required=False)
@bp.response(204)
def logout(_):
    """End this login: its access and refresh tokens stop working"""
    from flask import g

    service.revoke_session(g.session_id, "logout")


@bp.route("/me", methods=["GET"])
@require_auth()
@bp.response(200, MeOut)
def me():
    """Who am I: roles, household and scopes"""
    return current_user()


@bp.route("/households/invite-code", methods=["POST"])
@require_auth("resident")
@idempotent
@bp.arguments(NoBody, required=False)
@bp.response(200, InviteCodeOut)
def invite_code(_):
    """A fresh invite code for my household; the old one stops working"""
    household = service.new_invite_code(current_user().household)
    return {"invite_code": household.invite_code, "expires_at": household.invite_expires_at}


@bp.route("/admin/staff", methods=["POST"])
@require_auth("district_admin")
@idempotent
@bp.arguments(StaffIn)
@bp.response(201, StaffOut)
def create_staff(data):
    """Create a staff account (district admin only)"""
    user = service.create_staff(data)
    return user
