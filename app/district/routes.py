"""District reporting and park offsets: exports, reduction batches, parks, liability and summary."""
from flask import send_file

from ..blueprint import Blueprint
from ..auth import current_user, require_auth
from ..idempotency import idempotent
from ..paging import decode_cursor, page
from . import batches, exports, parks, reports
from .schemas import (
    BatchIn, BatchList, BatchOut, BatchQuery, ExportAccepted, ExportIn, ExportOut, InventoryIn, InventoryOut,
    LiabilityOut, ParkIn, ParkList, ParkOut, RetirementIn, RetirementOut, StatementOut, SummaryOut, SummaryQuery,
    TransferIn, TransferOut,
)

bp = Blueprint("district", __name__, description="District exports, reduction batches, park offsets, liability")

ADMIN = "district_admin"
PARK_ROLES = (ADMIN, "park_manager")


# ---------------------------------------------------------------- exports


@bp.route("/exports", methods=["POST"])
@require_auth(ADMIN)
@idempotent
@bp.arguments(ExportIn)
@bp.response(202, ExportAccepted)
def create_export(data):
    """Queue an export of quantified reductions (CSV, JSON or XLSX); small cells are folded"""
    export = exports.create_export(current_user(), data)
    return {"id": export.id, "status": "queued"}


@bp.route("/exports/<export_id>", methods=["GET"])
@require_auth(ADMIN)
@bp.response(200, ExportOut)
def get_export(export_id):
    """An export's status, progress, row count, checksum, download URL and metadata"""
    return exports.export_view(exports.get_export(export_id))


@bp.route("/exports/<export_id>/download", methods=["GET"])
@require_auth(ADMIN)
@bp.doc(responses={"200": {"description": "The file, byte for byte what checksum_sha256 covers", "content": {
    "text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object"}},
    exports.MIMETYPES["xlsx"]: {"schema": {"type": "string", "format": "binary"}}}}})
@bp.alt_response(409, description="invalid_state: not done yet")
@bp.alt_response(410, description="export_expired: removed after 30 days")
def download_export(export_id):
    """The export's file"""
    return export_file(export_id)


def export_file(export_id: str):
    """The response carrying an export's file, byte for byte (the API's and the console's download)."""
    path, mimetype, name = exports.download(exports.get_export(export_id))
    response = send_file(path, mimetype=mimetype, as_attachment=True, download_name=name, conditional=False,
                         etag=False, max_age=0)
    if mimetype in ("text/csv", "application/json"):
        response.mimetype_params["charset"] = "utf-8"
    return response


# ---------------------------------------------------------------- reduction batches


@bp.route("/reduction-batches", methods=["POST"])
@require_auth(ADMIN)
@idempotent
@bp.arguments(BatchIn)
@bp.response(201, BatchOut)
@bp.alt_response(409, description="nothing_to_batch")
def issue_batch(data):
    """Issue a community's verified, unbatched grams of a period as a serial range"""
    batch = batches.issue_batch(data["community_id"], data["period_from"], data["period_to"], current_user().id)
    return batches.batch_view(batch)


@bp.route("/reduction-batches", methods=["GET"])
@require_auth(ADMIN)
@bp.arguments(BatchQuery, location="query")
@bp.response(200, BatchList)
def list_batches(query):
    """Issued batches, newest first"""
    rows = batches.list_batches(query.get("community_id"), query["limit"], decode_cursor(query["cursor"]))
    return page(rows, query["limit"], batches.batch_view)


@bp.route("/reduction-batches/<batch_id>", methods=["GET"])
@require_auth(ADMIN)
@bp.response(200, BatchOut)
def get_batch(batch_id):
    """One batch with its serial range, deductions and what is left to transfer"""
    return batches.batch_view(batches.get_batch(batch_id))


# ---------------------------------------------------------------- parks


@bp.route("/parks", methods=["POST"])
@require_auth(ADMIN)
@idempotent
@bp.arguments(ParkIn)
@bp.response(201, ParkOut)
@bp.alt_response(409, description="park_name_taken")
def create_park(data):
    """Open an industrial park's offset account"""
    return parks.park_view(parks.create_park(data["name"]))


@bp.route("/parks", methods=["GET"])
@require_auth(*PARK_ROLES)
@bp.response(200, ParkList)
def list_parks():
    """Parks (a park manager sees only their own)"""
    return {"items": [parks.park_view(p) for p in parks.list_parks(current_user())], "next_cursor": None}


@bp.route("/parks/<park_id>", methods=["GET"])
@require_auth(*PARK_ROLES)
@bp.response(200, ParkOut)
def get_park(park_id):
    """One park's balances"""
    return parks.park_view(parks.park_for(current_user(), park_id))


@bp.route("/parks/<park_id>/transfers", methods=["POST"])
@require_auth(ADMIN)
@idempotent
@bp.arguments(TransferIn)
@bp.response(201, TransferOut)
@bp.alt_response(409, description="exceeds_available")
def transfer(data, park_id):
    """Transfer part or all of a batch (its lowest untransferred serials) into the park"""
    user = current_user()
    moved = parks.transfer(parks.park_for(user, park_id), data["batch_id"], data["quantity_g"], user.id)
    return parks.transfer_view(moved)


@bp.route("/parks/<park_id>/retirements", methods=["POST"])
@require_auth(*PARK_ROLES)
@idempotent
@bp.arguments(RetirementIn)
@bp.response(201, RetirementOut)
@bp.alt_response(409, description="exceeds_available")
def retire(data, park_id):
    """Retire grams from the park's holdings, lowest serials first; final"""
    user = current_user()
    return parks.retirement_view(parks.retire(parks.park_for(user, park_id), data, user.id))


@bp.route("/parks/<park_id>/statement", methods=["GET"])
@require_auth(*PARK_ROLES)
@bp.response(200, StatementOut)
def statement(park_id):
    """Received, retired and available grams, per batch with serial ranges; retirements; inventory"""
    return parks.statement(parks.park_for(current_user(), park_id))


@bp.route("/parks/<park_id>/inventory/<int:year>", methods=["PUT"])
@require_auth(*PARK_ROLES)
@idempotent
@bp.arguments(InventoryIn)
@bp.response(200, InventoryOut)
def set_inventory(data, park_id, year):
    """Record the park's gross emissions of a year; the statement shows gross, offset and net"""
    year = parks.inventory_year(year)
    user = current_user()
    return parks.set_inventory(parks.park_for(user, park_id), year, data["emissions_g"], user.id)


# ---------------------------------------------------------------- liability and summary


@bp.route("/district/liability", methods=["GET"])
@require_auth(ADMIN)
@bp.response(200, LiabilityOut)
def liability():
    """Outstanding and expiring points by community, 90-day redemption rate, campaign budgets"""
    return reports.liability()


@bp.route("/district/summary", methods=["GET"])
@require_auth(ADMIN)
@bp.arguments(SummaryQuery, location="query")
@bp.response(200, SummaryOut)
def summary(query):
    """Reductions and participation by month and action type, for dashboards"""
    return reports.summary(query["period_from"], query["period_to"])
