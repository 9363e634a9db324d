"""Merchants, settlement and anomaly flags: what goes in and what comes out."""
from marshmallow import Schema, fields, validate, validates_schema, ValidationError

from ..accounts.schemas import DISPLAY_NAME, PASSWORD, PHONE
from ..schemas import PageQuery, StrictSchema, page_schema

NOT_BLANK = validate.Regexp(r"(?s).*\S.*", error="Must not be blank.")
NAME = validate.And(validate.Length(1, 80), NOT_BLANK)
DAILY_LIMIT = validate.Range(1, 100_000)


class MerchantIn(StrictSchema):
    name = fields.String(required=True, validate=NAME)
    community_id = fields.String(required=True, validate=validate.Length(1, 64))
    daily_redemption_limit = fields.Integer(strict=True, allow_none=True, validate=DAILY_LIMIT)


class MerchantPatch(StrictSchema):
    name = fields.String(validate=NAME)
    active = fields.Boolean(truthy={True}, falsy={False})
    daily_redemption_limit = fields.Integer(strict=True, allow_none=True, validate=DAILY_LIMIT)

    @validates_schema
    def _something(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one field to change.")


class MerchantOut(Schema):
    id = fields.String()
    name = fields.String()
    community_id = fields.String()
    active = fields.Boolean()
    daily_redemption_limit = fields.Integer(allow_none=True)
    created_at = fields.DateTime()


MerchantList = page_schema(MerchantOut, "MerchantList")


class MerchantStaffIn(StrictSchema):
    phone = fields.String(required=True, validate=PHONE)
    password = fields.String(required=True, validate=PASSWORD, load_only=True)
    display_name = fields.String(required=True, validate=DISPLAY_NAME)


class SettlementQuery(StrictSchema):
    month = fields.String(validate=validate.Regexp(r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$",
                                                   error="Must be YYYY-MM, 1970-01 to 2999-12."))
    format = fields.String(validate=validate.OneOf(["json", "csv"]))


class _Totals(Schema):
    redemptions = fields.Integer()
    quantity = fields.Integer()
    redeemed_points = fields.Integer()
    voids = fields.Integer()
    voided_points = fields.Integer()
    net_points = fields.Integer()


class SettlementRewardOut(_Totals):
    reward_id = fields.String()
    name = fields.String()


class SettlementDayOut(_Totals):
    day = fields.Date()


class SettlementOut(_Totals):
    month = fields.String()
    merchant_id = fields.String()
    by_reward = fields.List(fields.Nested(SettlementRewardOut))
    by_day = fields.List(fields.Nested(SettlementDayOut))


class AnomalyOut(Schema):
    id = fields.String()
    kind = fields.String(metadata={"enum": ["household_burst"]})
    household_id = fields.String()
    merchant_id = fields.String()
    merchant_name = fields.String(attribute="merchant.name")
    community_id = fields.String()
    day = fields.Date()
    redemptions = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    state = fields.String(metadata={"enum": ["open", "resolved"]})
    resolved_at = fields.DateTime(allow_none=True)
    resolved_by = fields.String(allow_none=True, metadata={"description": "Id of the staff member who resolved it"})
    note = fields.String(attribute="resolution_note", allow_none=True, metadata={"description": "The resolving staff member's note"})


AnomalyList = page_schema(AnomalyOut, "AnomalyList")


class AnomalyQuery(PageQuery):
    state = fields.String(load_default=None, validate=validate.OneOf(["open", "resolved"]))


class ResolveIn(StrictSchema):
    note = fields.String(required=True, validate=[validate.Length(1, 500), NOT_BLANK])
