"""Integrations: what goes in and what comes out."""
import json
from decimal import Decimal

from marshmallow import Schema, fields, pre_load, validate

from ..schemas import QUANTITY_RE, AwareDateTime, DecimalString, StrictSchema, page_schema
from .models import IMPORT_STATES, KINDS, MAX_ROTATION_OVERLAP_SECONDS, ROTATION_OVERLAP_SECONDS, SOURCES

MAX_RECORDS = 1000
RECORD_DOC = (
    "A record {external_id, household_card, action_type, variant?, quantity, unit, occurred_at}; "
    "each is validated on its own and reported as rejected without stopping the others."
)


class IntegrationIn(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(1, 80))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    source = fields.String(validate=validate.OneOf(SOURCES),
                           metadata={"description": "device or import; by default device for device "
                                                    "integrations and import for the others"})


class IntegrationOut(Schema):
    id = fields.String(metadata={"description": "The key id, sent as X-Integration-Id"})
    name = fields.String()
    kind = fields.String(metadata={"enum": list(KINDS)})
    source = fields.String(metadata={"enum": list(SOURCES)})
    active = fields.Boolean()
    created_by = fields.String(allow_none=True)
    created_at = fields.DateTime()
    deactivated_at = fields.DateTime(allow_none=True)


class IntegrationCreatedOut(IntegrationOut):
    secret = fields.String(attribute="shown_secret",
                           metadata={"description": "The signing secret; shown only in this reply"})


class SecretRotationIn(StrictSchema):
    overlap_seconds = fields.Integer(
        load_default=ROTATION_OVERLAP_SECONDS, strict=True, validate=validate.Range(0, MAX_ROTATION_OVERLAP_SECONDS),
        metadata={"description": "How long the replaced secret keeps verifying signatures: 0 to "
                                 f"{MAX_ROTATION_OVERLAP_SECONDS} seconds (7 days); by default "
                                 f"{ROTATION_OVERLAP_SECONDS} (one day)"})


class IntegrationSecretOut(IntegrationCreatedOut):
    previous_secret_expires_at = fields.DateTime(
        allow_none=True, metadata={"description": "Until when the replaced secret still verifies signatures "
                                                  "(null: it stopped at once)"})


IntegrationList = page_schema(IntegrationOut, "IntegrationList")


class RecordIn(StrictSchema):
    """One pushed record; also the shape of a CSV row."""

    external_id = fields.String(required=True, validate=validate.Length(1, 128))
    household_card = fields.String(required=True, validate=validate.Length(1, 32))
    action_type = fields.String(required=True, validate=validate.Length(1, 40))
    variant = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 40))
    quantity = DecimalString(required=True, pattern=QUANTITY_RE,
                             validate=validate.Range(min=Decimal(0), min_inclusive=False,
                                                     error="Must be greater than 0."))
    unit = fields.String(required=True, validate=validate.Length(1, 20))
    occurred_at = AwareDateTime(required=True)


class RecordsIn(StrictSchema):
    """Either one record, or {"records": [...]} with 1 to 1,000 of them."""

    records = fields.List(
        fields.Raw(allow_none=True, metadata={"type": "object", "description": RECORD_DOC}),
        required=True, validate=validate.Length(1, MAX_RECORDS),
    )

    @pre_load
    def _one_record(self, data, **kwargs):
        if isinstance(data, dict) and "records" not in data:
            return {"records": [data]}
        return data


class RecordResultOut(Schema):
    external_id = fields.String(allow_none=True)
    status = fields.String(metadata={"enum": ["created", "duplicate", "rejected"]})
    action_id = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class RecordResultsOut(Schema):
    results = fields.List(fields.Nested(RecordResultOut))


class ImportAcceptedOut(Schema):
    id = fields.String()
    status = fields.String(metadata={"enum": list(IMPORT_STATES)})


class ImportRowErrorOut(Schema):
    line = fields.Integer()
    external_id = fields.String(allow_none=True)
    errors = fields.Function(lambda error: json.loads(error.errors),
                             metadata={"type": "object", "additionalProperties": {"type": "array",
                                                                                  "items": {"type": "string"}}})


class ImportOut(Schema):
    id = fields.String()
    integration_id = fields.String()
    status = fields.String(metadata={"enum": list(IMPORT_STATES)})
    progress = fields.Integer(metadata={"description": "Percent of the rows processed, 0 to 100"})
    total_rows = fields.Integer()
    processed_rows = fields.Integer()
    created = fields.Integer(attribute="created_count")
    duplicates = fields.Integer(attribute="duplicate_count")
    rejected = fields.Integer(attribute="rejected_count")
    errors = fields.List(fields.Nested(ImportRowErrorOut), attribute="row_errors")
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
