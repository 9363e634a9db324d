"""Schema pieces shared by every feature: strict input, Decimal strings, aware times, page shapes."""
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation

from marshmallow import Schema, ValidationError, fields, pre_load, validate

QUANTITY_RE = r"^[0-9]{1,6}(\.[0-9]{1,3})?$"


class StrictSchema(Schema):
    """Input schema: unknown fields are refused (422), so server-owned fields cannot be set."""

    @pre_load
    def _refuse_nul(self, data, **kwargs):
        """PostgreSQL text cannot hold NUL: refuse it as a 422 on the field, not a 500 from the driver."""
        path = _nul_path(data)
        if path is not None:
            message = "Must not contain NUL characters."
            for key in reversed(path):
                message = {key: message if isinstance(message, dict) else [message]}
            raise ValidationError(message)
        return data


def _nul_path(value, path=()):
    """The path to the first string (or key) holding a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, Mapping):  # a dict, or webargs' MultiDictProxy for query strings
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return (*path, key)
            found = _nul_path(item, (*path, key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            found = _nul_path(item, (*path, index))
            if found is not None:
                return found
    return None


class DecimalString(fields.Field):
    """A Decimal carried as a JSON string, e.g. "1.250"."""

    def __init__(self, pattern: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.pattern = pattern

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return format(Decimal(value), "f")

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str):
            raise ValidationError("Must be a decimal number written as a string, e.g. \"1.5\".")
        import re

        if self.pattern and not re.fullmatch(self.pattern, value):
            raise ValidationError(f"Must match {self.pattern}.")
        try:
            number = Decimal(value)
        except InvalidOperation as exc:
            raise ValidationError("Not a decimal number.") from exc
        if not number.is_finite():
            raise ValidationError("Not a decimal number.")
        return number

    def _jsonschema_type_mapping(self):
        return {"type": "string"}


class AwareDateTime(fields.DateTime):
    """An ISO 8601 time that must carry an offset."""

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs)
        if result.tzinfo is None:
            raise ValidationError("Must include a UTC offset, e.g. 2026-05-01T08:30:00+08:00.")
        if not (datetime(1970, 1, 2).date() <= result.date() <= datetime(9998, 12, 30).date()):
            raise ValidationError("Out of range.")
        return result


class PageQuery(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))
    cursor = fields.String(load_default=None, validate=validate.Length(max=200))


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """A list reply `{"items": [...], "next_cursor": str | null}` of `item_schema`."""
    return type(name, (Schema,), {
        "items": fields.List(fields.Nested(item_schema), required=True),
        "next_cursor": fields.String(allow_none=True, required=True),
    })


class NoBody(StrictSchema):
    """For a POST that takes no fields: an empty or absent body passes, any field is a 422."""
