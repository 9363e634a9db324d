"""Community staff pages: review queue and appeals, staff-assisted logging, household cards, campaigns,
merchants and their rewards, anomaly flags.

Every page calls the service the matching API route calls, inside one unit of work per form; the
console adds no rule of its own. Form fields are loaded through the API's own input schemas
(`forms.load_form`), so a bad field is the same 422 the API gives, shown as a page.
"""
import json

from flask import Response, flash, g, render_template, request, url_for
from sqlalchemy import select

from ..accounts import service as accounts
from ..accounts.models import Community
from ..activities import factors as methodology, preview, review, service as activities
from ..activities.schemas import ReasonIn, StaffActionIn
from ..campaigns import service as campaigns
from ..campaigns.schemas import CampaignIn, CheckinCodeIn
from ..errors import AppError
from ..extensions import db
from ..merchants import anomalies, service as merchants
from ..merchants.schemas import ResolveIn
from ..paging import decode_cursor, page
from ..qr import qr_png
from ..rewards import service as rewards
from ..rewards.schemas import RewardIn
from ..transaction import refuse_keeping_writes, transactional
from . import back_to, bp, pages
from .forms import load_form

STAFF = "community_staff"
PAGE_SIZE = 20
CARDS_PER_PAGE = 24
REVIEW_STATUSES = ("pending", "approved", "rejected", "reversed")

pages.add_nav("console.review_queue", "Review queue", STAFF)
pages.add_nav("console.staff_log", "Log by card", STAFF)
pages.add_nav("console.household_cards", "Household cards", STAFF)
pages.add_nav("console.campaigns", "Campaigns", STAFF)
pages.add_nav("console.merchants", "Merchants", STAFF)
pages.add_nav("console.anomalies", "Anomaly flags", STAFF)


def _me():
    return g.console_user


def _communities() -> dict[str, Community]:
    ids = _me().community_ids
    return {c.id: c for c in db.session.scalars(select(Community).where(Community.id.in_(ids)))} if ids else {}


def _cursor():
    return decode_cursor(request.args.get("cursor") or None)


# ---------------------------------------------------------------- review queue and appeals


@bp.get("/review")
@pages.allow(STAFF)
def review_queue():
    """Actions of my communities awaiting review (appeals marked), each with evidence and its receipt."""
    status = request.args.get("status", "pending")
    if status not in REVIEW_STATUSES:
        status = "pending"
    rows = activities.review_queue(_me(), status=status, community_id=None, limit=PAGE_SIZE, cursor=_cursor())
    found = page(rows, PAGE_SIZE)
    items = preview.review_items(found["items"])
    receipts = {item.id: json.loads(item.receipt) if item.receipt else None for item in items}
    return render_template("console/staff/review.html", items=items, receipts=receipts, status=status,
                           statuses=REVIEW_STATUSES, next_cursor=found["next_cursor"], communities=_communities())


@bp.post("/review/<action_id>/approve")
@pages.allow(STAFF)
@transactional
def approve(action_id):
    """Approve a pending action (or accept its appeal): valued and credited by the review service."""
    action = review.approve_action(action_id, _me())
    flash_message("Approved: %(points)s points credited to household card %(card)s.", points=action.points,
                  card=_card_of(action.household_id))
    return back_to("console.review_queue")


@bp.post("/review/<action_id>/reject")
@pages.allow(STAFF)
@transactional
def reject(action_id):
    """Reject a pending action (or uphold the rejection of an appeal) with a reason the resident sees."""
    data = load_form(ReasonIn(), {"reason": "text"})
    review.reject_action(action_id, _me(), data["reason"])
    flash_message("Rejected; the household sees the reason.")
    return back_to("console.review_queue")


def _card_of(household_id: str) -> str:
    from ..accounts.models import Household

    household = db.session.get(Household, household_id)
    return household.card_number if household else ""


def flash_message(message: str, category: str = "info", **values) -> None:
    """Flash a console text (a msgid, with values); base.html shows it translated, as problem messages are."""
    flash(message % values if values else message, category)


# ---------------------------------------------------------------- staff-assisted logging by card


def _staff_rows():
    """Factor rows in force today that staff may record, or [] when none is published."""
    try:
        rows = methodology.factors_in_force()["factors"]
    except AppError:
        return []
    return [row for row in rows if "staff" in row.source_list]


@bp.get("/log")
@pages.allow(STAFF)
def staff_log():
    """Log an action for a household by its card: typed, or scanned with the laptop camera."""
    return render_template("console/staff/log.html", rows=_staff_rows(), card=request.args.get("card", ""))


@bp.post("/log")
@pages.allow(STAFF)
@transactional
def staff_log_submit():
    """Through the API's staff-assisted path: the same schema, the same service, approved at once."""
    kind = request.form.get("factor", "")
    action_type, _, rest = kind.partition("|")
    variant, _, unit = rest.partition("|")
    extra = {"action_type": action_type, "unit": unit}
    if variant:
        extra["variant"] = variant
    data = load_form(StaffActionIn(), {"household_card": "str", "quantity": "str", "occurred_at": "datetime",
                                       "note": "text", "evidence": "text"}, **extra)
    action = activities.record_staff_action(_me(), data)
    flash_message("Logged for household card %(card)s: %(points)s points.", points=action.points,
                  card=_card_of(action.household_id))
    return back_to("console.staff_log")


# ---------------------------------------------------------------- household cards


@bp.get("/cards")
@pages.allow(STAFF)
def household_cards():
    """Household cards of my communities, laid out to print (QR code and number)."""
    rows = accounts.households_in(_me().community_ids, CARDS_PER_PAGE, _cursor())
    found = page(rows, CARDS_PER_PAGE)
    return render_template("console/staff/cards.html", households=found["items"], next_cursor=found["next_cursor"],
                           communities=_communities())


@bp.get("/cards/<household_id>.png")
@pages.allow(STAFF)
def household_card_png(household_id):
    """The same card image the API serves (GET /households/<id>/card.png)."""
    png = activities.household_card_png(household_id, _me())
    return Response(png, mimetype="image/png", headers={"Cache-Control": "private, no-store"})


# ---------------------------------------------------------------- campaigns


@bp.get("/campaigns", endpoint="campaigns")
@pages.allow(STAFF)
def campaigns_page():
    """Campaigns of my communities (any status) and the form for a new draft."""
    rows = campaigns.list_campaigns(_me(), status=None, limit=PAGE_SIZE, cursor=_cursor())
    found = page(rows, PAGE_SIZE)
    return render_template("console/staff/campaigns.html", campaigns=campaigns.campaign_views(found["items"]),
                           next_cursor=found["next_cursor"], communities=_communities(), rows=_staff_rows_all())


def _staff_rows_all():
    try:
        return methodology.factors_in_force()["factors"]
    except AppError:
        return []


@bp.post("/campaigns")
@pages.allow(STAFF)
@transactional
def create_campaign():
    """A draft campaign, through the API's schema and service."""
    communities = request.form.getlist("community_ids") or list(_me().community_ids)
    action_types = request.form.getlist("action_types")
    data = load_form(CampaignIn(), {"name": "text", "description": "text", "starts_at": "datetime",
                                    "ends_at": "datetime", "multiplier": "str", "bonus_points": "int",
                                    "budget_points": "int", "per_household_cap": "int"},
                     community_ids=communities, action_types=action_types)
    campaign = campaigns.create_campaign(_me(), data)
    flash_message("Campaign %(name)s saved as a draft.", name=campaign.name)
    return back_to("console.campaign", campaign_id=campaign.id)


@bp.get("/campaigns/<campaign_id>")
@pages.allow(STAFF)
def campaign(campaign_id):
    """One campaign: its terms, live stats, leaderboard and check-in codes."""
    found = campaigns.campaign_for(_me(), campaign_id)
    view = campaigns.campaign_view(found)
    codes = campaigns.codes_of_campaign(found, 10, None)[:10]
    return render_template("console/staff/campaign.html", campaign=view, stats=campaigns.stats(found),
                           board=campaigns.campaign_leaderboard(found, _me(), 10),
                           codes=[campaigns.code_view(row) for row in codes], communities=_communities(),
                           now=_now())


def _now():
    from ..columns import utcnow

    return utcnow()


@bp.post("/campaigns/<campaign_id>/activate")
@pages.allow(STAFF)
@transactional
def activate_campaign(campaign_id):
    """Activate a draft: its budget moves from issuance into the campaign (ledger service)."""
    found = campaigns.activate_campaign(campaign_id, _me())
    flash_message("Campaign %(name)s is active.", name=found.name)
    return back_to("console.campaign", campaign_id=campaign_id)


@bp.post("/campaigns/<campaign_id>/end")
@pages.allow(STAFF)
@transactional
def end_campaign(campaign_id):
    """End an active campaign: what is left of the budget returns to issuance."""
    campaigns.end_campaign(campaign_id, _me())
    flash_message("The campaign has ended; the unspent budget went back to issuance.")
    return back_to("console.campaign", campaign_id=campaign_id)


@bp.post("/campaigns/<campaign_id>/codes")
@pages.allow(STAFF)
@transactional
def create_checkin_code(campaign_id):
    """A check-in code for an event; then its projector page."""
    data = load_form(CheckinCodeIn(), {"points": "int", "valid_minutes": "int"})
    row, _code, refusal = campaigns.create_checkin_code(campaign_id, _me(), data["points"], data["valid_minutes"])
    if refusal is not None:
        refuse_keeping_writes(refusal)  # the end its end time brought is committed; the page explains
    return back_to("console.projector", campaign_id=campaign_id, code_id=row.id)


@bp.get("/campaigns/<campaign_id>/projector")
@bp.get("/campaigns/<campaign_id>/projector/<code_id>")
@pages.allow(STAFF)
def projector(campaign_id, code_id=None):
    """The newest live check-in code (or the one asked for), big enough for a projector; refreshes itself."""
    found = campaigns.campaign_for(_me(), campaign_id)
    now = _now()
    if code_id:
        row = campaigns.code_of_campaign(found, code_id)
    else:
        live = [r for r in campaigns.codes_of_campaign(found, 20, None) if r.expires_at > now]
        row = live[0] if live else None
    code = campaigns.code_view(row) if row is not None else None
    live = row is not None and row.expires_at > now
    # Reload when the code expires (then the newest live one shows), and every 30 s for the stats.
    refresh = max(2, min(30, int((row.expires_at - now).total_seconds()) + 1)) if live else 30
    return render_template("console/staff/projector.html", campaign=campaigns.campaign_view(found), code=code,
                           live=live, refresh=refresh, stats=campaigns.stats(found),
                           projector_url=url_for("console.projector", campaign_id=campaign_id))


@bp.get("/campaigns/<campaign_id>/codes/<code_id>.png")
@pages.allow(STAFF)
def checkin_code_png(campaign_id, code_id):
    """The check-in code as a QR image (as GET /campaigns/<id>/checkin-codes/<code_id>/qr.png)."""
    row = campaigns.code_of_campaign(campaigns.campaign_for(_me(), campaign_id), code_id)
    return Response(qr_png(campaigns.code_view(row)["code"]), mimetype="image/png",
                    headers={"Cache-Control": "private, no-store"})


# ---------------------------------------------------------------- merchants and rewards


@bp.get("/merchants", endpoint="merchants")
@pages.allow(STAFF)
def merchants_page():
    """Merchants of my communities with their rewards, and a form to publish a reward."""
    rows = merchants.list_merchants(_me(), PAGE_SIZE, _cursor())
    found = page(rows, PAGE_SIZE)
    offers = {m.id: rewards.rewards_of_merchant(m.id, 50, None)[:50] for m in found["items"]}
    return render_template("console/staff/merchants.html", merchants=found["items"], offers=offers,
                           next_cursor=found["next_cursor"], communities=_communities())


@bp.post("/merchants/<merchant_id>/rewards")
@pages.allow(STAFF)
@transactional
def create_reward(merchant_id):
    """Publish a reward of a merchant of my community (as POST /merchants/<id>/rewards)."""
    merchant = rewards.merchant_for_rewards(_me(), merchant_id)
    data = load_form(RewardIn(), {"name": "text", "points_cost": "int", "stock": "int",
                                  "per_household_limit": "int", "valid_from": "datetime", "valid_until": "datetime"})
    reward = rewards.create_reward(merchant, data)
    flash_message("Reward %(name)s published.", name=reward.name)
    return back_to("console.merchants")


# ---------------------------------------------------------------- anomaly flags


@bp.get("/anomalies", endpoint="anomalies")
@pages.allow(STAFF)
def anomalies_page():
    """Households redeeming unusually often at one merchant in a day; open ones first to resolve."""
    state = request.args.get("state", "open")
    state = state if state in anomalies.STATES else None
    rows = merchants.list_anomalies(_me(), PAGE_SIZE, _cursor(), state)
    found = page(rows, PAGE_SIZE)
    cards = {}
    for flag in found["items"]:
        cards[flag.household_id] = _card_of(flag.household_id)
    return render_template("console/staff/anomalies.html", flags=found["items"], state=state or "all", cards=cards,
                           next_cursor=found["next_cursor"], communities=_communities())


@bp.post("/anomalies/<flag_id>/resolve")
@pages.allow(STAFF)
@transactional
def resolve_anomaly(flag_id):
    """Close an open flag with a note (as POST /merchant-anomalies/<id>/resolve)."""
    data = load_form(ResolveIn(), {"note": "text"})
    anomalies.resolve_flag(flag_id, _me(), data["note"])
    flash_message("Flag resolved.")
    return back_to("console.anomalies")


STATUS_LABELS = {"pending": "Pending", "approved": "Approved", "rejected": "Rejected", "reversed": "Reversed",
                 "draft": "Draft", "active": "Active", "ended": "Ended", "open": "Open", "resolved": "Resolved",
                 "all": "All"}
SOURCE_LABELS = {"self_reported": "Self-reported", "staff": "Staff-assisted", "device": "Device", "import": "Import"}


@bp.context_processor
def _staff_context():
    return {"status_labels": STATUS_LABELS, "source_labels": SOURCE_LABELS, "now": _now()}
