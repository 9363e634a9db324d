"""Merchants, their staff and anomaly flags."""

from ..blueprint import Blueprint
from ..accounts.schemas import StaffOut
from ..auth import current_user, require_auth
from ..idempotency import idempotent
from ..paging import decode_cursor, page
from ..schemas import PageQuery
from ..transaction import transactional
from . import anomalies as anomalies_service
from . import service
from .schemas import (
    AnomalyList, AnomalyOut, AnomalyQuery, MerchantIn, MerchantList, MerchantOut, MerchantPatch, MerchantStaffIn,
    ResolveIn,
)

bp = Blueprint("merchants", __name__, description="Merchants, merchant staff and anomaly flags")


@bp.route("/merchants", methods=["POST"])
@require_auth("district_admin", "community_staff")
@idempotent
@bp.arguments(MerchantIn)
@bp.response(201, MerchantOut)
def create_merchant(data):
    """Add a merchant to a community"""
    return service.create_merchant(current_user(), data)


@bp.route("/merchants", methods=["GET"])
@require_auth("district_admin", "community_staff", "merchant_staff")
@bp.arguments(PageQuery, location="query")
@bp.response(200, MerchantList)
def list_merchants(query):
    """Merchants I look after (my own, for merchant staff), newest first"""
    rows = service.list_merchants(current_user(), query["limit"], decode_cursor(query["cursor"]))
    return page(rows, query["limit"])


@bp.route("/merchants/<merchant_id>", methods=["GET"])
@require_auth("district_admin", "community_staff", "merchant_staff")
@bp.response(200, MerchantOut)
def get_merchant(merchant_id):
    """One merchant"""
    return service.merchant_for(current_user(), merchant_id)


@bp.route("/merchants/<merchant_id>", methods=["PATCH"])
@require_auth("district_admin", "community_staff")
@transactional
@bp.arguments(MerchantPatch)
@bp.response(200, MerchantOut)
def update_merchant(data, merchant_id):
    """Rename or (de)activate a merchant, or set its daily redemption limit"""
    merchant = service.update_merchant(service.merchant_for(current_user(), merchant_id, manage=True), data)
    return merchant


@bp.route("/merchants/<merchant_id>/staff", methods=["POST"])
@require_auth("district_admin", "community_staff")
@idempotent
@bp.arguments(MerchantStaffIn)
@bp.response(201, StaffOut)
def add_staff(data, merchant_id):
    """Create a merchant_staff account of this merchant"""
    merchant = service.merchant_for(current_user(), merchant_id, manage=True)
    return service.add_staff(merchant, data)


@bp.route("/merchant-anomalies", methods=["GET"])
@require_auth("community_staff", "district_admin")
@bp.arguments(AnomalyQuery, location="query")
@bp.response(200, AnomalyList)
def anomalies(query):
    """Households redeeming unusually often at one merchant in a day (my communities), newest first"""
    rows = service.list_anomalies(current_user(), query["limit"], decode_cursor(query["cursor"]), query["state"])
    return page(rows, query["limit"])


@bp.route("/merchant-anomalies/<flag_id>/resolve", methods=["POST"])
@require_auth("community_staff")
@idempotent
@bp.arguments(ResolveIn)
@bp.response(200, AnomalyOut)
@bp.alt_response(409, description="invalid_state: already resolved")
def resolve_anomaly(data, flag_id):
    """Close an anomaly flag of my communities with a note"""
    return anomalies_service.resolve_flag(flag_id, current_user(), data["note"])
