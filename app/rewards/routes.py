"""Rewards, redemption codes, redemptions and merchants' settlement statements."""
from flask import Response, current_app, request

from ..auth import current_user, require_auth
from .. import qr
from ..blueprint import Blueprint
from ..extensions import limiter
from ..localtime import current_month
from ..merchants.schemas import SettlementOut, SettlementQuery
from ..idempotency import idempotent
from ..paging import decode_cursor, page
from ..schemas import PageQuery
from ..transaction import transactional
from . import history, service, settlement as statements
from .history_schemas import CodeList, CodePreviewOut, CodeQuery, HouseholdRedemptionList, RedemptionHistoryQuery
from .schemas import (
    CodeIn, CodeOut, RedeemIn, RedemptionList, RedemptionOut, RedemptionQuery, RewardIn, RewardList, RewardOut,
    RewardPatch, VoidIn,
)

bp = Blueprint("rewards", __name__, description="Merchants, rewards, redemption codes and redemptions")

DEFAULT_CODE_LIMIT = "30/minute"
DEFAULT_PREVIEW_LIMIT = "60/minute"


def _code_limit() -> str:
    return current_app.config.get("REDEMPTION_CODE_LIMIT") or DEFAULT_CODE_LIMIT


def _preview_limit() -> str:
    return current_app.config.get("CODE_PREVIEW_LIMIT") or DEFAULT_PREVIEW_LIMIT


def _merchant_key() -> str:
    return f"merchant:{current_user().merchant_id}"


def _household_key() -> str:
    return f"household:{current_user().household_id}"


def _image(data: bytes, mimetype: str) -> Response:
    response = Response(data, mimetype=mimetype)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/merchants/<merchant_id>/rewards", methods=["POST"])
@require_auth("merchant_staff", "community_staff")
@idempotent
@bp.arguments(RewardIn)
@bp.response(201, RewardOut)
def create_reward(data, merchant_id):
    """Publish a reward of a merchant"""
    merchant = service.merchant_for_rewards(current_user(), merchant_id)
    return service.create_reward(merchant, data)


@bp.route("/rewards/<reward_id>", methods=["PATCH"])
@require_auth("merchant_staff", "community_staff")
@transactional
@bp.arguments(RewardPatch)
@bp.response(200, RewardOut)
def update_reward(data, reward_id):
    """Change a reward's name, price, stock, limit or window, or (de)activate it"""
    reward = service.update_reward(service.reward_for_staff(current_user(), reward_id), data)
    return reward


@bp.route("/rewards", methods=["GET"])
@require_auth("resident")
@bp.arguments(PageQuery, location="query")
@bp.response(200, RewardList)
def list_rewards(query):
    """Rewards my household can redeem now: its community's and district-wide ones"""
    rows = service.rewards_for_household(current_user().household, query["limit"], decode_cursor(query["cursor"]))
    return page(rows, query["limit"])


@bp.route("/merchant/rewards", methods=["GET"])
@require_auth("merchant_staff")
@bp.arguments(PageQuery, location="query")
@bp.response(200, RewardList)
def merchant_rewards(query):
    """My merchant's rewards, active or not"""
    rows = service.rewards_of_merchant(current_user().merchant_id, query["limit"], decode_cursor(query["cursor"]))
    return page(rows, query["limit"])


@bp.route("/redemption-codes", methods=["POST"])
@require_auth("resident")
@limiter.limit(_code_limit, key_func=_household_key, scope="redemption-codes")
@idempotent(conceal=service.conceal_code, reveal=service.reveal_code)
@bp.arguments(CodeIn)
@bp.response(201, CodeOut)
@bp.alt_response(409, description="insufficient_points, out_of_stock, limit_reached, reward_unavailable "
                                  "or too_many_live_codes")
def create_code(data):
    """A short-lived code (digits and QR) to show the merchant; it reserves nothing"""
    code, _ = service.create_code(current_user(), data["reward_id"], data["quantity"])
    return code


@bp.route("/redemption-codes/<code_id>/qr.png", methods=["GET"])
@require_auth("resident")
@bp.response(200, content_type="image/png", description="A QR code holding the 20 digits")
@bp.doc(responses={"200": {"description": "A QR code holding the 20 digits",
                            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}})
def code_png(code_id):
    """My code as a PNG QR image"""
    code = service.code_of_household(code_id, current_user().household_id)
    return _image(qr.qr_png(service.unseal(code)), "image/png")


@bp.route("/redemption-codes/<code_id>/qr.svg", methods=["GET"])
@require_auth("resident")
@bp.response(200, content_type="image/svg+xml", description="A QR code holding the 20 digits")
@bp.doc(responses={"200": {"description": "A QR code holding the 20 digits",
                            "content": {"image/svg+xml": {"schema": {"type": "string"}}}}})
def code_svg(code_id):
    """My code as an SVG QR image"""
    code = service.code_of_household(code_id, current_user().household_id)
    return _image(qr.qr_svg(service.unseal(code)), "image/svg+xml")


@bp.route("/merchant/redemptions", methods=["POST"])
@require_auth("merchant_staff")
@idempotent
@bp.arguments(RedeemIn)
@bp.response(201, RedemptionOut)
@bp.alt_response(200, schema=RedemptionOut, description="This merchant already redeemed the code: the same redemption")
@bp.alt_response(404, description="code_not_found")
@bp.alt_response(409, description="code_expired, insufficient_points, out_of_stock, limit_reached, "
                                  "reward_unavailable, merchant_daily_limit (the code is burned) or wrong_merchant")
def redeem(data):
    """Redeem a resident's code at my merchant"""
    user = current_user()
    outcome = service.redeem_code(data["code"], user.merchant_id, user.id)
    return outcome.redemption, 201 if outcome.created else 200


@bp.route("/merchant/redemptions", methods=["GET"])
@require_auth("merchant_staff")
@bp.arguments(RedemptionQuery, location="query")
@bp.response(200, RedemptionList)
def list_redemptions(query):
    """My merchant's redemptions, newest first"""
    rows = service.redemptions_of_merchant(current_user().merchant_id, query["limit"],
                                           decode_cursor(query["cursor"]), query["status"])
    return page(rows, query["limit"])


@bp.route("/merchant/redemptions/<redemption_id>/void", methods=["POST"])
@require_auth("merchant_staff")
@idempotent
@bp.arguments(VoidIn)
@bp.response(200, RedemptionOut)
@bp.alt_response(409, description="already_voided or void_window_closed")
def void(data, redemption_id):
    """Void a redemption of my merchant: the household's points and the stock come back"""
    user = current_user()
    return service.void_redemption(redemption_id, user.merchant_id, user.id, data["reason"])


@bp.route("/merchant/settlement", methods=["GET"])
@require_auth("merchant_staff")
@bp.arguments(SettlementQuery, location="query")
@bp.response(200, SettlementOut, description="JSON, or CSV (UTF-8 with a BOM) with ?format=csv or Accept: text/csv")
@bp.doc(responses={"200": {"description": "JSON, or CSV (UTF-8 with a BOM) with ?format=csv or Accept: text/csv",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SettlementOut"}},
                                        "text/csv": {"schema": {"type": "string"}}}}})
def settlement(query):
    """My merchant's statement for a month (Asia/Shanghai): redeemed, voided and net points"""
    report = statements.settlement(current_user().merchant_id, query.get("month") or current_month())
    if query.get("format", "csv" if _wants_csv() else "json") == "csv":
        return _csv(report)
    return report


def _wants_csv() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


def _csv(report: dict) -> Response:
    response = Response(statements.settlement_csv(report), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="settlement-{report["month"]}.csv"'
    response.mimetype_params["charset"] = "utf-8"
    return response


# ---------------------------------------------------------------- what residents and cashiers read


@bp.route("/redemption-codes", methods=["GET"])
@require_auth("resident")
@bp.arguments(CodeQuery, location="query")
@bp.response(200, CodeList)
def list_codes(query):
    """My household's redemption codes, newest first: live, used, expired or burned"""
    rows = history.household_codes(current_user().household_id, query["limit"], decode_cursor(query["cursor"]),
                                   query["status"])
    reply = page(rows, query["limit"])
    return {**reply, "items": history.code_items(reply["items"])}


@bp.route("/redemptions", methods=["GET"])
@require_auth("resident")
@bp.arguments(RedemptionHistoryQuery, location="query")
@bp.response(200, HouseholdRedemptionList)
def household_redemptions(query):
    """My household's redemptions at every merchant, newest first"""
    rows = history.household_redemptions(current_user().household_id, query["limit"],
                                         decode_cursor(query["cursor"]), query["status"])
    return page(rows, query["limit"])


@bp.route("/merchant/codes/<code>", methods=["GET"])
@require_auth("merchant_staff")
@limiter.limit(_preview_limit, key_func=_merchant_key, scope="code-preview")
@bp.response(200, CodePreviewOut)
@bp.alt_response(404, description="code_not_found: unknown, malformed or another merchant's code")
def preview_code(code):
    """What redeeming this code here would give, before redeeming: burns and reserves nothing"""
    return history.preview_code(code, current_user().merchant_id)
