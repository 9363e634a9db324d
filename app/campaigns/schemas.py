"""Campaigns, check-in codes, check-ins, stats and leaderboards: what goes in and what comes out."""
from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..activities.schemas import PlainDecimal
from ..schemas import AwareDateTime, DecimalString, PageQuery, StrictSchema, page_schema
from .models import STATUSES

NOT_BLANK = validate.Regexp(r"(?s).*\S.*", error="Must not be blank.")
NAME = validate.And(validate.Length(1, 80), NOT_BLANK)
ACTION_TYPE_RE = r"^[a-z][a-z0-9_]{0,39}(:[a-z][a-z0-9_]{0,39})?$"
MULTIPLIER_RE = r"^[0-9]{1,2}(\.[0-9]{1,3})?$"
MAX_POINTS = 1_000_000_000

ACTION_TYPES_DOC = (
    'Action types the campaign applies to: "recycling" (every variant) or "recycling:paper" (one variant). '
    "Each must exist in a published factor set."
)
MULTIPLIER_DOC = ('Decimal string ≥ 1, at most 3 decimals, e.g. "1.5". The part of an action is '
                  "floor(base_points × (multiplier − 1)) + bonus_points, cut to the household cap and the budget.")
CAP_DOC = ("Most campaign points one household may earn from actions in this campaign (net of reversals); "
           "null for none. Check-ins do not count towards it.")


def _multiplier_at_least_one(value: Decimal) -> None:
    if value < 1:
        raise ValidationError("Must be at least 1.")


class CampaignFields(StrictSchema):
    name = fields.String(validate=NAME)
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    community_ids = fields.List(fields.String(validate=validate.Length(1, 64)), validate=validate.Length(1, 50))
    action_types = fields.List(
        fields.String(validate=validate.Regexp(ACTION_TYPE_RE, error="Must be a type or type:variant, e.g. "
                                                                      "recycling:paper.")),
        validate=validate.Length(1, 50), metadata={"description": ACTION_TYPES_DOC})
    starts_at = AwareDateTime(metadata={"description": "Start of the window (inclusive); may be in the past"})
    ends_at = AwareDateTime(metadata={"description": "End of the window (exclusive); after it the campaign ends"})
    multiplier = DecimalString(pattern=MULTIPLIER_RE, validate=_multiplier_at_least_one,
                               metadata={"type": "string", "description": MULTIPLIER_DOC, "pattern": MULTIPLIER_RE,
                                         "example": "1.5"})
    bonus_points = fields.Integer(strict=True, validate=validate.Range(0, MAX_POINTS),
                                  metadata={"description": "Points added to each matching action's part"})
    budget_points = fields.Integer(strict=True, validate=validate.Range(1, MAX_POINTS),
                                   metadata={"description": "Funded from issuance at activation; never overspent"})
    per_household_cap = fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, MAX_POINTS),
                                       metadata={"description": CAP_DOC})

    @validates_schema
    def _consistent(self, data, **kwargs):
        errors = {}
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts is not None and ends is not None and ends <= starts:
            errors["ends_at"] = ["Must be later than starts_at."]
        for field in ("community_ids", "action_types"):
            values = data.get(field) or []
            if len(set(values)) != len(values):
                errors[field] = ["Each value at most once."]
        if errors:
            raise ValidationError(errors)


class CampaignIn(CampaignFields):
    """A new draft: every field but description and per_household_cap is required."""

    REQUIRED = ("name", "community_ids", "action_types", "starts_at", "ends_at", "multiplier", "bonus_points",
                "budget_points")

    def on_bind_field(self, field_name, field_obj):
        if field_name in self.REQUIRED:
            field_obj.required = True  # fields are copied per schema instance: CampaignPatch keeps them optional


class CampaignPatch(CampaignFields):
    """Any subset of the fields of a draft."""


class CampaignQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES),
                           metadata={"description": "Residents see active (default) and ended ones only"})


class CampaignOut(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String(allow_none=True)
    status = fields.String(metadata={"description": "draft | active | ended (ended once ends_at has passed)"})
    community_ids = fields.List(fields.String())
    action_types = fields.List(fields.String(), metadata={"description": ACTION_TYPES_DOC})
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    multiplier = PlainDecimal(metadata={"type": "string", "description": MULTIPLIER_DOC})
    bonus_points = fields.Integer()
    budget_points = fields.Integer()
    per_household_cap = fields.Integer(allow_none=True, metadata={"description": CAP_DOC})
    budget_remaining = fields.Integer(metadata={"description": "Points left in the campaign's account"})
    created_at = fields.DateTime()
    activated_at = fields.DateTime(allow_none=True)
    ended_at = fields.DateTime(allow_none=True)


CampaignList = page_schema(CampaignOut, "CampaignList")


class CheckinCodeIn(StrictSchema):
    points = fields.Integer(required=True, strict=True, validate=validate.Range(1, 100_000))
    valid_minutes = fields.Integer(required=True, strict=True, validate=validate.Range(1, 10_080),
                                   metadata={"description": "1 to 10080 (7 days); never beyond the campaign's end"})


class CheckinCodeOut(Schema):
    id = fields.String()
    campaign_id = fields.String()
    code = fields.String(metadata={"description": "16 Crockford base-32 characters; the QR holds exactly them"})
    points = fields.Integer()
    expires_at = fields.DateTime()
    qr_png_url = fields.String()
    created_at = fields.DateTime()


CheckinCodeList = page_schema(CheckinCodeOut, "CheckinCodeList")


class CheckinIn(StrictSchema):
    code = fields.String(required=True, validate=validate.Length(1, 64))


class CheckinOut(Schema):
    id = fields.String()
    campaign_id = fields.String()
    points = fields.Integer()
    created_at = fields.DateTime()


class StatsOut(Schema):
    participants = fields.Integer(metadata={"description": "Households with a counted action or a check-in"})
    actions = fields.Integer(metadata={"description": "Approved (not reversed) actions the campaign applied to"})
    reduction_g = fields.Integer(metadata={"description": "Grams CO2e of those actions"})
    points_awarded = fields.Integer(metadata={"description": "Campaign points paid, net of reversals"})
    budget_remaining = fields.Integer()
    checkins = fields.Integer()


class LeaderboardQuery(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


class LeaderboardEntry(Schema):
    rank = fields.Integer()
    name_masked = fields.String(metadata={"description": "First character of the household's first member + **"})
    points = fields.Integer()
    mine = fields.Boolean()
    household_id = fields.String(allow_none=True, metadata={"description": "Staff only; null for residents"})


class LeaderboardMine(Schema):
    rank = fields.Integer(allow_none=True, metadata={"description": "null while the household has no points"})
    points = fields.Integer()


class LeaderboardOut(Schema):
    campaign_id = fields.String()
    items = fields.List(fields.Nested(LeaderboardEntry), metadata={
        "description": "Top households by campaign points (actions and check-ins, net of reversals); ties by "
                       "household id; households with no points are not listed"})
    me = fields.Nested(LeaderboardMine, allow_none=True, metadata={"description": "Residents: my household"})
    source = fields.String(metadata={"description": "redis | sql: where the ranking was read (same answer)"})
