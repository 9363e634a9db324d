"""Accounts: communities, registration, login, tokens, staff."""
from flask_limiter.util import get_remote_address

from ..auth import current_user, require_auth
from ..blueprint import Blueprint
from ..extensions import limiter
from ..idempotency import idempotent
from ..schemas import NoBody
from ..transaction import transactional
from . import service
from .limits import failed_invite, limit, login_limits, phone_key
from .schemas import (
    CommunityList, InviteCodeOut, LoginIn, MeOut, RefreshIn, RegisterIn, StaffIn, StaffOut, TokensOut,
)

bp = Blueprint("accounts", __name__, description="Communities, residents, households, staff and tokens")


@bp.route("/communities", methods=["GET"])
@bp.response(200, CommunityList)
def communities():
    """Every community of the district, in the order created"""
    return {"items": service.list_communities(), "next_cursor": None}


@bp.route("/auth/register", methods=["POST"])
@limiter.limit(lambda: limit("REGISTER_LIMIT"), key_func=get_remote_address)
@limiter.limit(lambda: limit("REGISTER_PHONE_LIMIT"), key_func=phone_key)
@limiter.limit(lambda: limit("INVITE_FAILURE_LIMIT"), key_func=get_remote_address,
               deduct_when=failed_invite, scope="invite-failures")
@transactional
@bp.arguments(RegisterIn)
@bp.response(201, TokensOut)
@bp.alt_response(409, response="CONFLICT", description="phone_taken or household_full")
def register(data):
    """Register a resident into a new household, or join one by invite code"""
    user, tokens = service.register(data)
    return service.session_reply(user, tokens)


@bp.route("/auth/login", methods=["POST"])
@login_limits
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
