"""Green actions: factors, logging, review, appeals, staff-assisted logging and household cards."""
from flask import Response, request

from ..blueprint import Blueprint
from ..auth import current_user, require_auth
from ..errors import UnsupportedMediaType
from ..idempotency import idempotent
from ..paging import decode_cursor, page
from ..schemas import NoBody
from . import factors as methodology, preview, review, service
from .preview_schemas import AllowancesOut, ReviewActionList
from .schemas import (
    ActionIn, ActionList, ActionOut, ActionQuery, AppealIn, FactorSetIn, FactorSetList, FactorSetSummaryOut,
    FactorsOut, ReasonIn, ReviewQuery, StaffActionIn, load_strict,
)

bp = Blueprint("activities", __name__, description="Factor sets, green actions, review and integrations")

FACTOR_SET_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": FactorSetIn},
        "text/csv": {"schema": {"type": "string", "description": "The columns of factors.csv, one factor set"}},
    },
}


# ---------------------------------------------------------------- factors


@bp.route("/factors", methods=["GET"])
@bp.response(200, FactorsOut)
def factors():
    """The factor set in force today, with every row"""
    return methodology.factors_in_force()


@bp.route("/factor-sets", methods=["GET"])
@require_auth("district_admin")
@bp.response(200, FactorSetList)
def factor_sets():
    """Every factor set, drafts included, latest first"""
    return {"items": methodology.list_factor_sets(), "next_cursor": None}


@bp.route("/factor-sets", methods=["POST"])
@require_auth("district_admin")
@idempotent
@bp.doc(requestBody=FACTOR_SET_BODY)
@bp.response(201, FactorSetSummaryOut)
@bp.alt_response(415, description="unsupported_media_type")
def create_factor_set():
    """Load a draft factor set from JSON or from a CSV body (Content-Type text/csv)"""
    if request.mimetype == "text/csv":
        factor_set = methodology.create_factor_set_from_csv(request.get_data(), current_user().id)
    elif not request.is_json:
        raise UnsupportedMediaType("Send the factor set as JSON (Content-Type: application/json) or as CSV "
                                   "(Content-Type: text/csv)")
    else:
        factor_set = methodology.create_factor_set(load_strict(FactorSetIn(), request.get_json()), current_user().id)
    return factor_set


@bp.route("/factor-sets/<code>", methods=["GET"])
@require_auth("district_admin")
@bp.response(200, FactorsOut)
def factor_set(code):
    """One factor set with every row"""
    found = methodology.get_factor_set(code)
    return {"factor_set": found, "factors": found.rows}


@bp.route("/factor-sets/<code>/publish", methods=["POST"])
@require_auth("district_admin")
@idempotent
@bp.arguments(NoBody, required=False)
@bp.response(200, FactorSetSummaryOut)
@bp.alt_response(409, description="invalid_state or effective_from_taken")
def publish_factor_set(_, code):
    """Publish a draft factor set; from then on it is immutable"""
    return methodology.publish_factor_set(code, current_user().id)


# ---------------------------------------------------------------- residents


@bp.route("/actions", methods=["POST"])
@require_auth("resident")
@idempotent
@bp.arguments(ActionIn)
@bp.response(201, ActionOut)
def report_action(data):
    """Report a green action of mine (pending until staff approve, unless self-approvable)"""
    return service.report_action(current_user(), data)


@bp.route("/actions", methods=["GET"])
@require_auth("resident")
@bp.arguments(ActionQuery, location="query")
@bp.response(200, ActionList)
def household_actions(query):
    """My household's actions, newest first"""
    rows = service.household_actions(current_user().household_id, status=query["status"], limit=query["limit"],
                                     cursor=decode_cursor(query["cursor"]))
    return page(rows, query["limit"])


@bp.route("/actions/<action_id>", methods=["GET"])
@require_auth("resident", "community_staff", "district_admin")
@bp.response(200, ActionOut)
def action(action_id):
    """One action with its receipt"""
    return service.get_action(action_id, current_user())


@bp.route("/actions/<action_id>/appeal", methods=["POST"])
@require_auth("resident")
@idempotent
@bp.arguments(AppealIn)
@bp.response(200, ActionOut)
@bp.alt_response(409, description="already_appealed or invalid_state")
def appeal_action(data, action_id):
    """Appeal a rejected action, once: it goes back to review"""
    return review.appeal_action(action_id, current_user(), data["note"])


@bp.route("/wallet/allowances", methods=["GET"])
@require_auth("resident")
@bp.response(200, AllowancesOut)
def wallet_allowances():
    """What my household's caps still allow today and this month, per factor row in force"""
    return preview.household_allowances(current_user().household_id)


# ---------------------------------------------------------------- community staff


@bp.route("/review/actions", methods=["GET"])
@require_auth("community_staff")
@bp.arguments(ReviewQuery, location="query")
@bp.response(200, ReviewActionList)
def review_queue(query):
    """Actions of my communities awaiting review (or in another status), oldest first; each with `review`"""
    rows = service.review_queue(current_user(), status=query["status"], community_id=query["community_id"],
                                limit=query["limit"], cursor=decode_cursor(query["cursor"]))
    reply = page(rows, query["limit"])
    return {**reply, "items": preview.review_items(reply["items"])}


@bp.route("/review/actions/<action_id>/approve", methods=["POST"])
@require_auth("community_staff")
@idempotent
@bp.arguments(NoBody, required=False)
@bp.response(200, ActionOut)
@bp.alt_response(409, description="invalid_state")
def approve_action(_, action_id):
    """Approve a pending action: value it and credit the household"""
    return review.approve_action(action_id, current_user())


@bp.route("/review/actions/<action_id>/reject", methods=["POST"])
@require_auth("community_staff")
@idempotent
@bp.arguments(ReasonIn)
@bp.response(200, ActionOut)
@bp.alt_response(409, description="invalid_state")
def reject_action(data, action_id):
    """Reject a pending action with a reason"""
    return review.reject_action(action_id, current_user(), data["reason"])


@bp.route("/review/actions/<action_id>/reverse", methods=["POST"])
@require_auth("community_staff")
@idempotent
@bp.arguments(ReasonIn)
@bp.response(200, ActionOut)
@bp.alt_response(409, description="invalid_state")
def reverse_action(data, action_id):
    """Reverse an approved action: points taken back, what was spent becomes a clawback"""
    return review.reverse_action(action_id, current_user(), data["reason"])


@bp.route("/staff/actions", methods=["POST"])
@require_auth("community_staff")
@idempotent
@bp.arguments(StaffActionIn)
@bp.response(201, ActionOut)
def record_staff_action(data):
    """Log an action for a household by its card (residents without a smartphone); approved at once"""
    return service.record_staff_action(current_user(), data)


@bp.route("/households/<household_id>/card.png", methods=["GET"])
@require_auth("resident", "community_staff", "district_admin")
@bp.response(200, {"type": "string", "format": "binary"}, content_type="image/png",
             description="A printable card with the household's QR code")
def household_card(household_id):
    """The household card to print: a QR code of its card number"""
    png = service.household_card_png(household_id, current_user())
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, no-store"})
