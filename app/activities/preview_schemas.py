"""Replies of the read-only valuation views: the review queue's `review` object and wallet allowances."""
from marshmallow import Schema, fields

from ..schemas import QUANTITY_RE, page_schema
from .models import RECORDERS
from .schemas import ActionOut, PlainDecimal

CAPS = ("daily", "monthly")


class ReceiptPreviewOut(Schema):
    factor_set = fields.String()
    factor_id = fields.String()
    kgco2e_per_unit = PlainDecimal()
    points_per_unit = PlainDecimal()
    credited_quantity = PlainDecimal(pattern=QUANTITY_RE)
    cap_applied = fields.String(allow_none=True, metadata={"enum": [*CAPS, None]})
    cap_remaining = fields.Dict(keys=fields.String(metadata={"enum": list(CAPS)}), values=PlainDecimal())
    reduction_g = fields.Integer()
    base_points = fields.Integer()
    campaign_points = fields.Integer(metadata={
        "description": "What active campaigns would add, cut to caps and budgets as they stand"})
    points = fields.Integer()


class ReviewOut(Schema):
    resident_name_masked = fields.String(allow_none=True, metadata={"description": "First character, then **"})
    phone_masked = fields.String(allow_none=True, metadata={"description": "e.g. 139****0001"})
    household_card = fields.String(allow_none=True)
    community_id = fields.String()
    points_if_approved = fields.Integer(allow_none=True, metadata={
        "description": "Points an approval now would credit, campaign parts included, caps and budgets as they stand "
                       "(pending actions only)"})
    receipt_preview = fields.Nested(ReceiptPreviewOut, allow_none=True, metadata={
        "description": "The receipt an approval now would freeze (pending actions only)"})
    appeal_note = fields.String(allow_none=True)
    rejection_reason = fields.String(allow_none=True, metadata={"description": "The earlier rejection, for an appeal"})


class ReviewActionOut(ActionOut):
    review = fields.Nested(ReviewOut)


ReviewActionList = page_schema(ReviewActionOut, "ReviewActionList")


class AllowanceOut(Schema):
    factor_id = fields.String()
    action_type = fields.String()
    variant = fields.String(allow_none=True)
    unit = fields.String()
    sources = fields.List(fields.String(metadata={"enum": list(RECORDERS)}),
                          metadata={"description": "Who may record it; only `resident` rows can be self-reported"})
    points_per_unit = PlainDecimal()
    daily_left = PlainDecimal(allow_none=True, metadata={"description": "Quantity the daily cap still allows; "
                                                                         "null: no daily cap"})
    monthly_left = PlainDecimal(allow_none=True, metadata={"description": "Quantity the monthly cap still allows; "
                                                                           "null: no monthly cap"})
    points_left_today = fields.Integer(allow_none=True, metadata={
        "description": "Points the tightest cap still allows today; null when the row has no cap"})


class AllowancesOut(Schema):
    date = fields.Date(metadata={"description": "Today, Asia/Shanghai"})
    factor_set = fields.String(allow_none=True)
    items = fields.List(fields.Nested(AllowanceOut))
