"""Accounts: what goes in and what comes out."""
from marshmallow import Schema, fields, validate, validates_schema, ValidationError

from ..schemas import StrictSchema, page_schema

# \Z, not $: "$" also matches before a trailing newline, which would let "13800000000\n" in.
PHONE = validate.Regexp(r"^1[3-9][0-9]{9}\Z", error="Must be an 11-digit mainland mobile number.")
PASSWORD = validate.Length(8, 128)
DISPLAY_NAME = validate.Length(1, 40)
ROLES = ["district_admin", "community_staff", "merchant_staff", "park_manager"]


class StreetOut(Schema):
    id = fields.String()
    name = fields.String()
    code = fields.String(allow_none=True)


class CommunityOut(Schema):
    id = fields.String()
    name = fields.String()
    street = fields.Nested(StreetOut)


CommunityList = page_schema(CommunityOut, "CommunityList")


class RegisterIn(StrictSchema):
    phone = fields.String(required=True, validate=PHONE)
    password = fields.String(required=True, validate=PASSWORD, load_only=True)
    display_name = fields.String(required=True, validate=DISPLAY_NAME)
    community_id = fields.String(validate=validate.Length(1, 64))
    household_invite_code = fields.String(validate=validate.Length(1, 32))
    sms_code = fields.String(validate=validate.Length(1, 12))

    @validates_schema
    def _one_way_in(self, data, **kwargs):
        if data.get("household_invite_code") and data.get("community_id"):
            raise ValidationError("Omit community_id when joining with an invite code.", "community_id")
        if not data.get("household_invite_code") and not data.get("community_id"):
            raise ValidationError("Give community_id for a new household, or household_invite_code to join one.",
                                  "community_id")


class LoginIn(StrictSchema):
    phone = fields.String(required=True, validate=validate.Length(1, 32))
    password = fields.String(required=True, validate=validate.Length(1, 256), load_only=True)


class RefreshIn(StrictSchema):
    refresh_token = fields.String(required=True, validate=validate.Length(1, 512))


class UserOut(Schema):
    id = fields.String()
    display_name = fields.String()
    phone = fields.String()
    roles = fields.List(fields.String())


class HouseholdOut(Schema):
    id = fields.String()
    community_id = fields.String()
    invite_code = fields.String()
    card_number = fields.String()


class TokensOut(Schema):
    user = fields.Nested(UserOut)
    household = fields.Nested(HouseholdOut, allow_none=True)
    access_token = fields.String()
    refresh_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


class MeOut(Schema):
    id = fields.String()
    display_name = fields.String()
    roles = fields.List(fields.String())
    household = fields.Nested(HouseholdOut, allow_none=True)
    community_ids = fields.List(fields.String())
    merchant_id = fields.String(allow_none=True)
    park_id = fields.String(allow_none=True)


class InviteCodeOut(Schema):
    invite_code = fields.String()
    expires_at = fields.DateTime()


class StaffIn(StrictSchema):
    phone = fields.String(required=True, validate=PHONE)
    password = fields.String(required=True, validate=PASSWORD, load_only=True)
    display_name = fields.String(required=True, validate=DISPLAY_NAME)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    community_ids = fields.List(fields.String(validate=validate.Length(1, 64)), validate=validate.Length(max=200))
    merchant_id = fields.String(validate=validate.Length(1, 64))
    park_id = fields.String(validate=validate.Length(1, 64))


class StaffOut(MeOut):
    phone = fields.String()
