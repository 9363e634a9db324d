"""Rewards and redemption: what goes in and what comes out."""
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..schemas import AwareDateTime, PageQuery, StrictSchema, page_schema

NOT_BLANK = validate.Regexp(r"(?s).*\S.*", error="Must not be blank.")
NAME = validate.And(validate.Length(1, 80), NOT_BLANK)
POINTS = validate.Range(1, 1_000_000)
STOCK = validate.Range(0, 1_000_000)
LIMIT = validate.Range(1, 1000)


def _window(data) -> None:
    start, end = data.get("valid_from"), data.get("valid_until")
    if start is not None and end is not None and end <= start:
        raise ValidationError("Must be later than valid_from.", "valid_until")


class RewardIn(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    points_cost = fields.Integer(required=True, strict=True, validate=POINTS)
    stock = fields.Integer(required=True, strict=True, validate=STOCK)
    per_household_limit = fields.Integer(strict=True, allow_none=True, validate=LIMIT)
    valid_from = AwareDateTime(allow_none=True)
    valid_until = AwareDateTime(allow_none=True)
    district_wide = fields.Boolean(truthy={True}, falsy={False})

    @validates_schema
    def _valid_window(self, data, **kwargs):
        _window(data)


class RewardPatch(StrictSchema):
    name = fields.String(validate=NAME)
    points_cost = fields.Integer(strict=True, validate=POINTS)
    stock = fields.Integer(strict=True, validate=STOCK)
    per_household_limit = fields.Integer(strict=True, allow_none=True, validate=LIMIT)
    valid_from = AwareDateTime(allow_none=True)
    valid_until = AwareDateTime(allow_none=True)
    district_wide = fields.Boolean(truthy={True}, falsy={False})
    active = fields.Boolean(truthy={True}, falsy={False})

    @validates_schema
    def _valid_window(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one field to change.")
        _window(data)


class RewardOut(Schema):
    id = fields.String()
    merchant_id = fields.String()
    merchant_name = fields.String(attribute="merchant.name")
    community_id = fields.String(attribute="merchant.community_id")
    name = fields.String()
    points_cost = fields.Integer()
    stock = fields.Integer()
    per_household_limit = fields.Integer(allow_none=True)
    valid_from = fields.DateTime(allow_none=True)
    valid_until = fields.DateTime(allow_none=True)
    district_wide = fields.Boolean()
    active = fields.Boolean()
    created_at = fields.DateTime()


RewardList = page_schema(RewardOut, "RewardList")


class CodeIn(StrictSchema):
    reward_id = fields.String(required=True, validate=validate.Length(1, 64))
    quantity = fields.Integer(strict=True, load_default=1, validate=validate.Range(1, 10))


class CodeOut(Schema):
    id = fields.String()
    code = fields.String(attribute="digits", metadata={"description": "20 digits, as typed or held by the QR code"})
    expires_at = fields.DateTime()
    points_cost = fields.Integer(metadata={"description": "Points the redemption will take (price × quantity)"})
    reward_id = fields.String()
    quantity = fields.Integer()
    qr_png_url = fields.String()
    qr_svg_url = fields.String()


class RedeemIn(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(1, 64))


class RedemptionOut(Schema):
    id = fields.String()
    status = fields.String(metadata={"enum": ["completed", "voided"]})
    reward_id = fields.String()
    reward_name = fields.String(attribute="reward.name")
    quantity = fields.Integer()
    points = fields.Integer()
    created_at = fields.DateTime()
    merchant_id = fields.String()
    voided_at = fields.DateTime(allow_none=True)
    void_reason = fields.String(allow_none=True)


RedemptionList = page_schema(RedemptionOut, "RedemptionList")


class RedemptionQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(["completed", "voided"]))


class VoidIn(StrictSchema):
    reason = fields.String(required=True, validate=validate.And(validate.Length(1, 500), NOT_BLANK))
