"""Merchants, their staff, settlement statements and anomaly flags."""
from flask import Response, request
from flask_smorest import Blueprint

from ..accounts import service as accounts
from ..accounts.schemas import StaffOut
from ..auth import current_user, require_auth
from ..extensions import db
from ..idempotency import idempotent
from ..schemas import PageQuery, decode_cursor, page
from . import anomalies as anomalies_service
from . import service
from .schemas import (
    AnomalyList, AnomalyOut, AnomalyQuery, ResolveIn, MerchantIn, MerchantList, MerchantOut, MerchantPatch, MerchantStaffIn, SettlementOut,
    SettlementQuery,
)

bp = Blueprint("merchants", __name__, description="Merchants, merchant staff, settlement and anomaly flags")


@bp.route("/merchants", methods=["POST"])
@require_auth("district_admin", "community_staff")
@idempotent
@bp.arguments(MerchantIn)
@bp.response(201, MerchantOut)
def create_merchant(data):
    """Add a merchant to a community"""
    return service.merchant_view(service.create_merchant(current_user(), data))


@bp.route("/merchants", methods=["GET"])
@require_auth("district_admin", "community_staff", "merchant_staff")
@bp.arguments(PageQuery, location="query")
@bp.response(200, MerchantList)
def list_merchants(query):
    """Merchants I look after (my own, for merchant staff), newest first"""
    rows = service.list_merchants(current_user(), query["limit"], decode_cursor(query["cursor"]))
    return page(rows, query["limit"], service.merchant_view)


@bp.route("/merchants/<merchant_id>", methods=["GET"])
@require_auth("district_admin", "community_staff", "merchant_staff")
@bp.response(200, MerchantOut)
def get_merchant(merchant_id):
    """One merchant"""
    return service.merchant_view(service.merchant_for(current_user(), merchant_id))


@bp.route("/merchants/<merchant_id>", methods=["PATCH"])
@require_auth("district_admin", "community_staff")
@bp.arguments(MerchantPatch)
@bp.response(200, MerchantOut)
def update_merchant(data, merchant_id):
    """Rename or (de)activate a merchant, or set its daily redemption limit"""
    merchant = service.update_merchant(service.merchant_for(current_user(), merchant_id, manage=True), data)
    db.session.commit()
    return service.merchant_view(merchant)


@bp.route("/merchants/<merchant_id>/staff", methods=["POST"])
@require_auth("district_admin", "community_staff")
@idempotent
@bp.arguments(MerchantStaffIn)
@bp.response(201, StaffOut)
def add_staff(data, merchant_id):
    """Create a merchant_staff account of this merchant"""
    merchant = service.merchant_for(current_user(), merchant_id, manage=True)
    return accounts.me_view(service.add_staff(merchant, data))


@bp.route("/merchant/settlement", methods=["GET"])
@require_auth("merchant_staff")
@bp.arguments(SettlementQuery, location="query")
@bp.response(200, SettlementOut, description="JSON, or CSV (UTF-8 with a BOM) with ?format=csv or Accept: text/csv")
@bp.doc(responses={"200": {"description": "JSON, or CSV (UTF-8 with a BOM) with ?format=csv or Accept: text/csv",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SettlementOut"}},
                                        "text/csv": {"schema": {"type": "string"}}}}})
def settlement(query):
    """My merchant's statement for a month (Asia/Shanghai): redeemed, voided and net points"""
    report = service.settlement(current_user().merchant_id, query.get("month") or service.current_month())
    if query.get("format", "csv" if _wants_csv() else "json") == "csv":
        return _csv(report)
    return report


def _wants_csv() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/csv"])
    return best == "text/csv"


def _csv(report: dict) -> Response:
    response = Response(service.settlement_csv(report), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="settlement-{report["month"]}.csv"'
    response.mimetype_params["charset"] = "utf-8"
    return response


@bp.route("/merchant-anomalies", methods=["GET"])
@require_auth("community_staff", "district_admin")
@bp.arguments(AnomalyQuery, location="query")
@bp.response(200, AnomalyList)
def anomalies(query):
    """Households redeeming unusually often at one merchant in a day (my communities), newest first"""
    rows = service.list_anomalies(current_user(), query["limit"], decode_cursor(query["cursor"]), query["state"])
    return page(rows, query["limit"], service.anomaly_view)


@bp.route("/merchant-anomalies/<flag_id>/resolve", methods=["POST"])
@require_auth("community_staff")
@idempotent
@bp.arguments(ResolveIn)
@bp.response(200, AnomalyOut)
@bp.alt_response(409, description="invalid_state: already resolved")
def resolve_anomaly(data, flag_id):
    """Close an anomaly flag of my communities with a note"""
    return service.anomaly_view(anomalies_service.resolve_flag(flag_id, current_user(), data["note"]))
