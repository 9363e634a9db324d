"""Campaigns: drafts, activation and end, check-in codes, check-ins, stats and leaderboards."""
from flask import Response

from ..blueprint import Blueprint
from ..auth import current_user, require_auth
from ..errors import app_error_response
from ..idempotency import idempotent
from ..paging import decode_cursor, page
from ..qr import qr_png
from ..schemas import NoBody, PageQuery
from . import service
from .schemas import (
    CampaignIn, CampaignList, CampaignOut, CampaignPatch, CampaignQuery, CheckinCodeIn, CheckinCodeList,
    CheckinCodeOut, CheckinIn, CheckinOut, LeaderboardOut, LeaderboardQuery, StatsOut,
)

bp = Blueprint("campaigns", __name__, description="Campaigns: multipliers, bonuses, budgets, check-ins, leaderboards")

VIEWERS = ("resident", "community_staff", "district_admin")


@bp.route("/campaigns", methods=["POST"])
@require_auth("community_staff")
@idempotent
@bp.arguments(CampaignIn)
@bp.response(201, CampaignOut)
def create_campaign(data):
    """Create a draft campaign in my communities"""
    return service.campaign_view(service.create_campaign(current_user(), data))


@bp.route("/campaigns", methods=["GET"])
@require_auth(*VIEWERS)
@bp.arguments(CampaignQuery, location="query")
@bp.response(200, CampaignList)
def list_campaigns(query):
    """Campaigns of my communities: residents the active ones (or ended on request), staff any status"""
    rows = service.list_campaigns(current_user(), status=query["status"], limit=query["limit"],
                                  cursor=decode_cursor(query["cursor"]))
    result = page(rows, query["limit"])
    result["items"] = service.campaign_views(result["items"])
    return result


@bp.route("/campaigns/<campaign_id>", methods=["GET"])
@require_auth(*VIEWERS)
@bp.response(200, CampaignOut)
def get_campaign(campaign_id):
    """One campaign"""
    return service.campaign_view(service.campaign_for(current_user(), campaign_id))


@bp.route("/campaigns/<campaign_id>", methods=["PATCH"])
@require_auth("community_staff")
@idempotent
@bp.arguments(CampaignPatch)
@bp.response(200, CampaignOut)
@bp.alt_response(409, description="invalid_state: only a draft can be edited")
def update_campaign(data, campaign_id):
    """Edit a draft campaign"""
    return service.campaign_view(service.update_campaign(campaign_id, current_user(), data))


@bp.route("/campaigns/<campaign_id>/activate", methods=["POST"])
@require_auth("community_staff")
@idempotent
@bp.arguments(NoBody, required=False)
@bp.response(200, CampaignOut)
@bp.alt_response(409, description="invalid_state")
def activate_campaign(_, campaign_id):
    """Activate a draft: its budget moves from issuance into the campaign's account"""
    return service.campaign_view(service.activate_campaign(campaign_id, current_user()))


@bp.route("/campaigns/<campaign_id>/end", methods=["POST"])
@require_auth("community_staff")
@idempotent
@bp.arguments(NoBody, required=False)
@bp.response(200, CampaignOut)
@bp.alt_response(409, description="invalid_state")
def end_campaign(_, campaign_id):
    """End an active campaign: what is left of its budget returns to issuance"""
    return service.campaign_view(service.end_campaign(campaign_id, current_user()))


@bp.route("/campaigns/<campaign_id>/checkin-codes", methods=["POST"])
@require_auth("community_staff")
@idempotent(conceal=service.conceal_code, reveal=service.reveal_code)
@bp.arguments(CheckinCodeIn)
@bp.response(201, CheckinCodeOut)
@bp.alt_response(409, description="invalid_state: the campaign is not active")
def create_checkin_code(data, campaign_id):
    """A check-in code for an event of an active campaign (text and PNG QR)"""
    row, code, refusal = service.create_checkin_code(campaign_id, current_user(), data["points"],
                                                     data["valid_minutes"])
    if refusal is not None:
        return app_error_response(refusal)  # returned, not raised: the lazy end must commit
    return service.code_view(row, code)


@bp.route("/campaigns/<campaign_id>/checkin-codes", methods=["GET"])
@require_auth("community_staff")
@bp.arguments(PageQuery, location="query")
@bp.response(200, CheckinCodeList)
def list_checkin_codes(query, campaign_id):
    """The campaign's check-in codes, newest first"""
    campaign = service.campaign_for(current_user(), campaign_id)
    rows = service.codes_of_campaign(campaign, query["limit"], decode_cursor(query["cursor"]))
    return page(rows, query["limit"], service.code_view)


@bp.route("/campaigns/<campaign_id>/checkin-codes/<code_id>/qr.png", methods=["GET"])
@require_auth("community_staff")
@bp.response(200, content_type="image/png", description="A QR code holding the 16 characters of the code")
@bp.doc(responses={"200": {"description": "A QR code holding the 16 characters of the code",
                            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}})
def checkin_code_png(campaign_id, code_id):
    """A check-in code as a PNG QR image, to print or show at the event"""
    campaign = service.campaign_for(current_user(), campaign_id)
    row = service.code_of_campaign(campaign, code_id)
    response = Response(qr_png(service.code_view(row)["code"]), mimetype="image/png")
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/checkins", methods=["POST"])
@require_auth("resident")
@idempotent
@bp.arguments(CheckinIn)
@bp.response(201, CheckinOut)
@bp.alt_response(404, description="code_not_found: unknown code, or a campaign outside my community")
@bp.alt_response(409, description="already_checked_in, code_expired, budget_exhausted or invalid_state "
                                  "(the campaign is not active)")
def check_in(data):
    """Check my household in at an event with its code: once per household and code"""
    checkin, refusal = service.check_in(current_user(), data["code"])
    if refusal is not None:
        return app_error_response(refusal)  # returned, not raised: the lazy end must commit
    return checkin


@bp.route("/campaigns/<campaign_id>/stats", methods=["GET"])
@require_auth("community_staff", "district_admin")
@bp.response(200, StatsOut)
def campaign_stats(campaign_id):
    """Participants, actions, grams, points paid and budget left"""
    return service.stats(service.campaign_for(current_user(), campaign_id))


@bp.route("/campaigns/<campaign_id>/leaderboard", methods=["GET"])
@require_auth(*VIEWERS)
@bp.arguments(LeaderboardQuery, location="query")
@bp.response(200, LeaderboardOut)
def campaign_leaderboard(query, campaign_id):
    """Households ranked by campaign points (names masked); residents also see their own rank"""
    user = current_user()
    return service.campaign_leaderboard(service.campaign_for(user, campaign_id), user, query["limit"])
