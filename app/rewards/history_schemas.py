"""Replies of the read-only views of codes and redemptions: a household's lists and the till's preview."""
from marshmallow import Schema, fields, validate

from ..schemas import PageQuery, page_schema
from .history import CODE_STATUSES

REFUSALS = ["code_expired", "reward_unavailable", "limit_reached", "out_of_stock", "merchant_daily_limit",
            "insufficient_points"]


class CodeQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(CODE_STATUSES))


class CodeItemOut(Schema):
    id = fields.String()
    reward_id = fields.String()
    reward_name = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": list(CODE_STATUSES),
                                     "description": "burned: refused at the till (see `refusal`); a code refused "
                                                    "because it had expired reads expired"})
    quantity = fields.Integer()
    points_cost = fields.Integer()
    expires_at = fields.DateTime()
    created_at = fields.DateTime()
    code = fields.String(allow_none=True, metadata={"description": "The 20 digits while the code is live; "
                                                                   "never once it is used, expired or burned"})
    qr_png_url = fields.String(allow_none=True)
    qr_svg_url = fields.String(allow_none=True)
    redemption_id = fields.String(allow_none=True)
    refusal = fields.String(allow_none=True, metadata={"enum": [*REFUSALS, None],
                                                       "description": "Why the till refused a burned code"})


CodeList = page_schema(CodeItemOut, "RedemptionCodeList")


class RedemptionHistoryQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(["completed", "voided"]))


class HouseholdRedemptionOut(Schema):
    id = fields.String()
    reward_id = fields.String()
    reward_name = fields.String(attribute="reward.name")
    merchant_id = fields.String()
    merchant_name = fields.String(attribute="merchant.name")
    quantity = fields.Integer()
    points = fields.Integer()
    status = fields.String(metadata={"enum": ["completed", "voided"]})
    created_at = fields.DateTime()
    voided_at = fields.DateTime(allow_none=True)


HouseholdRedemptionList = page_schema(HouseholdRedemptionOut, "HouseholdRedemptionList")


class CodePreviewOut(Schema):
    code_id = fields.String()
    reward_id = fields.String()
    reward_name = fields.String()
    quantity = fields.Integer()
    points = fields.Integer(metadata={"description": "Points the redemption takes (price × quantity)"})
    expires_at = fields.DateTime()
    status = fields.String(metadata={"enum": list(CODE_STATUSES)})
    redeemable = fields.Boolean(metadata={"description": "Whether submitting the code here now would succeed"})
    reason = fields.String(allow_none=True, metadata={
        "enum": [*REFUSALS, "already_redeemed", None],
        "description": "The refusal a redemption now would meet; already_redeemed: this merchant redeemed it"})
    redemption_id = fields.String(allow_none=True)
