"""District reporting and park offsets: what goes in and what comes out."""
from datetime import date

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..schemas import StrictSchema, page_schema
from .exports import FORMATS, GROUP_KEYS

FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)
DAY = validate.Range(min=FIRST_DAY, max=LAST_DAY, error="Must be between 1970-01-01 and 2999-12-31.")
GRAMS = validate.Range(min=1, max=10 ** 15)
TEXT = validate.And(validate.Length(1, 200), validate.Regexp(r"(?s).*\S.*", error="Must not be blank."))
YEAR = validate.Range(min=2000, max=2999)


class _Period(StrictSchema):
    period_from = fields.Date(required=True, validate=DAY)
    period_to = fields.Date(required=True, validate=DAY)

    @validates_schema
    def _ordered(self, data, **kwargs):
        if data.get("period_from") and data.get("period_to") and data["period_to"] < data["period_from"]:
            raise ValidationError("Must not be before period_from.", "period_to")


class ExportIn(_Period):
    group_by = fields.List(fields.String(validate=validate.OneOf(GROUP_KEYS)), required=True,
                           validate=validate.Length(min=1, max=len(GROUP_KEYS)))
    format = fields.String(required=True, validate=validate.OneOf(FORMATS))

    @validates_schema
    def _no_repeats(self, data, **kwargs):
        keys = data.get("group_by") or []
        if len(set(keys)) != len(keys):
            raise ValidationError("Each key at most once.", "group_by")


class ExportOut(Schema):
    id = fields.String()
    status = fields.String(metadata={"enum": ["queued", "running", "done", "failed", "expired"]})
    progress = fields.Integer(metadata={"description": "Percent, 0-100"})
    row_count = fields.Integer(allow_none=True)
    checksum_sha256 = fields.String(allow_none=True, metadata={"description": "Hex SHA-256 of the bytes /download serves"})
    size_bytes = fields.Integer(allow_none=True)
    download_url = fields.String(allow_none=True)
    format = fields.String()
    period_from = fields.Date()
    period_to = fields.Date()
    group_by = fields.List(fields.String())
    metadata = fields.Dict(allow_none=True, metadata={
        "description": "Period, grouping, factor-set codes used, generation time, suppression rule, totals "
                       "(also inside JSON exports and on the XLSX 'metadata' sheet; the sidecar of CSV exports)"})
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime()


class ExportAccepted(Schema):
    id = fields.String()
    status = fields.String()


class BatchIn(_Period):
    community_id = fields.String(required=True, validate=validate.Length(1, 64))

    @validates_schema
    def _one_vintage(self, data, **kwargs):
        if data.get("period_from") and data.get("period_to") and data["period_to"].year != data["period_from"].year:
            raise ValidationError("A batch covers one calendar year (its vintage).", "period_to")


class DeductionOut(Schema):
    action_id = fields.String()
    batch_id = fields.String(metadata={"description": "The earlier batch that held the reversed action"})
    quantity_g = fields.Integer()


class BatchOut(Schema):
    id = fields.String()
    community_id = fields.String()
    period_from = fields.Date()
    period_to = fields.Date()
    vintage = fields.Integer()
    serial_from = fields.Integer()
    serial_to = fields.Integer()
    serial_label = fields.String()
    quantity_g = fields.Integer(metadata={"description": "Net grams = serials: gross_g - deducted_g"})
    gross_g = fields.Integer()
    deducted_g = fields.Integer()
    deductions = fields.List(fields.Nested(DeductionOut))
    action_count = fields.Integer()
    factor_sets = fields.List(fields.String())
    transferred_g = fields.Integer()
    available_g = fields.Integer()
    created_at = fields.DateTime()


BatchList = page_schema(BatchOut, "BatchList")


class BatchQuery(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))
    community_id = fields.String(validate=validate.Length(1, 64))


class ParkIn(StrictSchema):
    name = fields.String(required=True, validate=validate.And(
        validate.Length(1, 80), validate.Regexp(r"(?s).*\S.*", error="Must not be blank.")))


class ParkOut(Schema):
    id = fields.String()
    name = fields.String()
    received_g = fields.Integer()
    retired_g = fields.Integer()
    available_g = fields.Integer()
    created_at = fields.DateTime()


class ParkList(Schema):
    items = fields.List(fields.Nested(ParkOut))
    next_cursor = fields.String(allow_none=True)


class TransferIn(StrictSchema):
    batch_id = fields.String(required=True, validate=validate.Length(1, 64))
    quantity_g = fields.Integer(required=True, strict=True, validate=GRAMS)


class TransferOut(Schema):
    id = fields.String()
    park_id = fields.String()
    batch_id = fields.String()
    quantity_g = fields.Integer()
    serial_from = fields.Integer()
    serial_to = fields.Integer()
    serial_label = fields.String()
    batch_available_g = fields.Integer()
    created_at = fields.DateTime()


class RetirementIn(StrictSchema):
    quantity_g = fields.Integer(required=True, strict=True, validate=GRAMS)
    purpose = fields.String(required=True, validate=TEXT)
    beneficiary = fields.String(validate=validate.Length(max=200), allow_none=True)
    inventory_year = fields.Integer(strict=True, validate=YEAR,
                                    metadata={"description": "The inventory year this offsets; default this year"})


class RangeOut(Schema):
    serial_from = fields.Integer()
    serial_to = fields.Integer()
    quantity_g = fields.Integer()
    transferred_at = fields.DateTime()


class RetiredRangeOut(Schema):
    batch_id = fields.String()
    serial_from = fields.Integer()
    serial_to = fields.Integer()
    quantity_g = fields.Integer()
    serial_label = fields.String()


class RetirementOut(Schema):
    id = fields.String()
    park_id = fields.String()
    quantity_g = fields.Integer()
    purpose = fields.String()
    beneficiary = fields.String(allow_none=True)
    inventory_year = fields.Integer()
    created_at = fields.DateTime()
    ranges = fields.List(fields.Nested(RetiredRangeOut))


class StatementBatchOut(Schema):
    batch_id = fields.String()
    serial_label = fields.String()
    community_id = fields.String()
    vintage = fields.Integer()
    factor_sets = fields.List(fields.String())
    received_g = fields.Integer()
    retired_g = fields.Integer()
    available_g = fields.Integer()
    received_ranges = fields.List(fields.Nested(RangeOut))
    retired_ranges = fields.List(fields.Nested(RangeOut))
    available_ranges = fields.List(fields.Nested(RangeOut))


class InventoryIn(StrictSchema):
    emissions_g = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=10 ** 18))


class InventoryOut(Schema):
    year = fields.Integer()
    emissions_g = fields.Integer(metadata={"description": "Gross emissions of the year"})
    offset_g = fields.Integer(metadata={"description": "Grams retired against that year"})
    net_g = fields.Integer()


class StatementOut(Schema):
    park_id = fields.String()
    name = fields.String()
    received_g = fields.Integer()
    retired_g = fields.Integer()
    available_g = fields.Integer()
    batches = fields.List(fields.Nested(StatementBatchOut))
    retirements = fields.List(fields.Nested(RetirementOut))
    inventory = fields.List(fields.Nested(InventoryOut))


class SummaryQuery(_Period):
    pass


class SummaryTotalsOut(Schema):
    actions = fields.Integer()
    households = fields.Integer()
    reduction_g = fields.Integer()
    verified_reduction_g = fields.Integer()
    points = fields.Integer()


class SummaryItemOut(SummaryTotalsOut):
    """The totals of one month and action type."""

    month = fields.String()
    action_type = fields.String()


class SummaryOut(Schema):
    period_from = fields.Date()
    period_to = fields.Date()
    factor_sets = fields.List(fields.String())
    items = fields.List(fields.Nested(SummaryItemOut))
    totals = fields.Nested(SummaryTotalsOut)


class CommunityLiabilityOut(Schema):
    community_id = fields.String()
    name = fields.String()
    street = fields.String()
    households = fields.Integer()
    outstanding_points = fields.Integer()
    clawback_points = fields.Integer()
    expiring_90d_points = fields.Integer()


class RedemptionRateOut(Schema):
    earned_points = fields.Integer()
    redeemed_points = fields.Integer()
    rate_bp = fields.Integer(allow_none=True, metadata={"description": "redeemed ÷ earned in basis points, floored"})
    rate = fields.String(allow_none=True, metadata={"description": "the same as a decimal string, e.g. \"0.1250\""})


class CampaignBudgetOut(Schema):
    campaign_id = fields.String()
    committed_points = fields.Integer()
    spent_points = fields.Integer()


class CampaignBudgetsOut(Schema):
    committed_points = fields.Integer()
    spent_points = fields.Integer()
    items = fields.List(fields.Nested(CampaignBudgetOut))


class LiabilityOut(Schema):
    as_of = fields.DateTime()
    outstanding_points = fields.Integer()
    clawback_points = fields.Integer()
    expiring_90d_points = fields.Integer()
    communities = fields.List(fields.Nested(CommunityLiabilityOut))
    redemption_90d = fields.Nested(RedemptionRateOut)
    campaigns = fields.Nested(CampaignBudgetsOut)
