"""The household wallet: balance and entries."""

from ..auth import current_user, require_auth
from ..blueprint import Blueprint
from ..district import rollups
from ..paging import decode_cursor, page
from ..schemas import PageQuery
from . import service
from .schemas import EntryList, WalletOut

bp = Blueprint("wallet", __name__, description="Household wallet and its ledger entries")


@bp.route("/wallet", methods=["GET"])
@require_auth("resident")
@bp.response(200, WalletOut)
def wallet():
    """My household's points, reductions and what expires soon"""
    household_id = current_user().household_id
    # One statement: the wallet's figures and the household's reductions.
    return {"household_id": household_id,
            **service.wallet_summary(household_id, rollups.REDUCTION_COLUMNS, {"household_id": household_id})}


@bp.route("/wallet/entries", methods=["GET"])
@require_auth("resident")
@bp.arguments(PageQuery, location="query")
@bp.response(200, EntryList)
def wallet_entries(query):
    """My household's ledger entries, newest first"""
    account = service.account_of("household", current_user().household_id)
    rows = service.entries_page(account.id, query["limit"], decode_cursor(query["cursor"]))
    return page(rows, query["limit"], lambda e: {
        "id": e.id, "amount": e.amount, "kind": e.kind, "ref": f"{e.ref_type}:{e.ref_id}",
        "balance_after": e.balance_after, "created_at": e.created_at,
    })
