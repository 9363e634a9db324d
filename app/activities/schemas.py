"""Green actions and factor sets: what goes in and what comes out."""
import json
from decimal import Decimal

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..schemas import QUANTITY_RE, AwareDateTime, DecimalString, PageQuery, StrictSchema, page_schema
from .models import RECORDERS, SOURCES, STATUSES

NAME = validate.Regexp(r"^[a-z][a-z0-9_]{0,39}$", error="Lower-case letters, digits and _ (at most 40).")
UNIT = validate.Regexp(r"^[a-z][a-z0-9_]{0,11}$", error="Lower-case letters, digits and _ (at most 12).")
SET_CODE = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$",
                           error="Letters, digits, '.', '_' and '-' (at most 40).")
EVIDENCE_KINDS = ("verbatim", "secondary", "estimate")


def plain(value: Decimal | None) -> str | None:
    """A Decimal as the shortest exact string: 1.000000 → "1", 0.046700 → "0.0467"."""
    if value is None:
        return None
    return format(Decimal(value).normalize(), "f")


class PlainDecimal(DecimalString):
    """DecimalString that writes the shortest exact form, identical on SQLite and PostgreSQL."""

    def _serialize(self, value, attr, obj, **kwargs):
        return plain(value)


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


def load_strict(schema: Schema, payload) -> dict:
    """Load a body outside webargs (a route taking JSON or CSV); problems become a 422 naming the fields."""
    from ..errors import ValidationFailed, flatten_messages

    if not isinstance(payload, dict):
        raise ValidationFailed({"body": ["Must be a JSON object."]})
    try:
        return schema.load(payload)
    except ValidationError as exc:
        raise ValidationFailed(flatten_messages(exc.messages)) from None


# ---------------------------------------------------------------- factor sets


class FactorRowIn(StrictSchema):
    action_type = fields.String(required=True, validate=NAME)
    variant = fields.String(load_default=None, allow_none=True,
                            validate=validate.Regexp(r"^([a-z][a-z0-9_]{0,39})?$", error=NAME.error))
    unit = fields.String(required=True, validate=UNIT)
    kgco2e_per_unit = DecimalString(required=True, pattern=r"^[0-9]{1,9}(\.[0-9]{1,6})?$")
    points_per_unit = DecimalString(required=True, pattern=r"^[0-9]{1,9}(\.[0-9]{1,6})?$")
    daily_cap = DecimalString(load_default=None, allow_none=True, pattern=r"^[0-9]{1,9}(\.[0-9]{1,3})?$")
    monthly_cap = DecimalString(load_default=None, allow_none=True, pattern=r"^[0-9]{1,9}(\.[0-9]{1,3})?$")
    sources = fields.List(fields.String(validate=validate.OneOf(RECORDERS)), required=True,
                          validate=validate.Length(min=1, max=len(RECORDERS)))
    self_approvable = fields.Boolean(load_default=False)
    verifiable = fields.Boolean(required=True)
    evidence = fields.String(required=True, validate=validate.OneOf(EVIDENCE_KINDS))
    source = fields.String(required=True, validate=[validate.Length(1, 4000), _not_blank])

    @validates_schema
    def _consistent(self, data, **kwargs):
        errors = {}
        for cap in ("daily_cap", "monthly_cap"):
            if data.get(cap) is not None and data[cap] <= 0:
                errors[cap] = ["Must be greater than 0, or empty for no cap."]
        sources = data.get("sources") or []
        if len(set(sources)) != len(sources):
            errors["sources"] = ["Each source at most once."]
        if data.get("self_approvable") and "resident" not in sources:
            errors["self_approvable"] = ["Only a row residents may record can be self-approvable."]
        if errors:
            raise ValidationError(errors)


class FactorSetIn(StrictSchema):
    code = fields.String(required=True, validate=SET_CODE)
    effective_from = fields.Date(required=True)
    rows = fields.List(fields.Nested(FactorRowIn), required=True, validate=validate.Length(1, 1000))


class FactorOut(Schema):
    id = fields.String()
    action_type = fields.String()
    variant = fields.Function(lambda row: row.variant or None)
    unit = fields.String()
    kgco2e_per_unit = PlainDecimal()
    points_per_unit = PlainDecimal()
    daily_cap = PlainDecimal(allow_none=True)
    monthly_cap = PlainDecimal(allow_none=True)
    sources = fields.Function(lambda row: row.source_list,
                              metadata={"type": "array", "items": {"type": "string", "enum": list(RECORDERS)}})
    self_approvable = fields.Boolean()
    verifiable = fields.Boolean()
    evidence = fields.String(metadata={"enum": list(EVIDENCE_KINDS)})
    source = fields.String()


class FactorSetSummaryOut(Schema):
    code = fields.String()
    effective_from = fields.Date()
    effective_until = fields.Date(allow_none=True, metadata={
        "description": "Last day (inclusive) before a later published set takes over; null while none has"})
    status = fields.String(metadata={"enum": ["draft", "published"]})
    published_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    row_count = fields.Integer()


class FactorsOut(Schema):
    factor_set = fields.Nested(FactorSetSummaryOut)
    factors = fields.List(fields.Nested(FactorOut))


FactorSetList = page_schema(FactorSetSummaryOut, "FactorSetList")


# ---------------------------------------------------------------- actions


class ActionIn(StrictSchema):
    action_type = fields.String(required=True, validate=validate.Length(1, 40))
    variant = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=40))
    quantity = DecimalString(required=True, pattern=QUANTITY_RE)
    unit = fields.String(required=True, validate=validate.Length(1, 12))
    occurred_at = AwareDateTime(required=True)
    evidence = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class StaffActionIn(ActionIn):
    household_card = fields.String(required=True, validate=validate.Length(1, 32))
    resident_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 64))


class ReasonIn(StrictSchema):
    reason = fields.String(required=True, validate=[validate.Length(1, 500), _not_blank])


class AppealIn(StrictSchema):
    note = fields.String(required=True, validate=[validate.Length(1, 500), _not_blank])


class ActionQuery(PageQuery):
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))


class ReviewQuery(PageQuery):
    status = fields.String(load_default="pending", validate=validate.OneOf(STATUSES))
    community_id = fields.String(load_default=None, validate=validate.Length(1, 64))


class ActionOut(Schema):
    id = fields.String()
    action_type = fields.String()
    variant = fields.String(allow_none=True)
    quantity = PlainDecimal()
    credited_quantity = PlainDecimal(allow_none=True, metadata={"description": "null until approved"})
    unit = fields.String()
    occurred_at = fields.DateTime()
    source = fields.String(metadata={"enum": list(SOURCES)})
    status = fields.String(metadata={"enum": list(STATUSES)})
    appeal = fields.Boolean()
    reduction_g = fields.Integer()
    verified = fields.Boolean()
    base_points = fields.Integer()
    campaign_points = fields.Integer()
    points = fields.Integer()
    factor_id = fields.String()
    factor_set = fields.Function(lambda action: action.factor.factor_set.code)
    household_id = fields.String()
    resident_id = fields.String(allow_none=True)
    receipt = fields.Function(lambda action: json.loads(action.receipt) if action.receipt else None,
                              metadata={"description": "How the numbers were reached; frozen at approval"})
    community_id = fields.String()
    evidence = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    review_reason = fields.String(allow_none=True)
    reject_reason = fields.String(allow_none=True)
    appeal_note = fields.String(allow_none=True)
    reversal_reason = fields.String(allow_none=True)
    approved_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


ActionList = page_schema(ActionOut, "ActionList")
