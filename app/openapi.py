"""The OpenAPI document says what the API accepts, and its interactive page works offline.

- Decimal strings are `{"type": "string", "pattern": ...}`, not an untyped `{}`.
- Length and not-blank rules inside `validate.And` become minLength/maxLength/pattern,
  as flask-smorest documents them for a plain list of validators.
- Swagger UI's files come from the pinned `swagger-ui-bundle` package, served by the
  app itself: the docs page names no other host.
"""
from flask import Blueprint, abort, send_from_directory
from marshmallow import validate

from .schemas import DecimalString

DOCS_ASSETS = "/api/v1/docs/assets/"
# The only files the docs page loads; nothing else of the package is served.
ASSET_FILES = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
               "favicon-32x32.png", "favicon-16x16.png")
NOT_BLANK = "\\S"  # JSON Schema patterns search: at least one character that is not white space


def describe(api) -> None:
    """Teach the spec our custom fields and combined validators; call before registering blueprints."""
    api.ma_plugin.converter.add_attribute_function(_decimal_and_validators)


def _validators(field):
    for validator in field.validators:
        if isinstance(validator, validate.And):
            yield from validator.validators
        else:
            yield validator


def _refuses_blank(validator) -> bool:
    if isinstance(validator, validate.Regexp):
        return validator.regex.pattern in ("(?s).*\\S.*", ".*\\S.*")
    return getattr(validator, "__name__", "") == "_not_blank"


def _decimal_and_validators(self, field, ret, **kwargs) -> dict:
    out = {}
    if isinstance(field, DecimalString):
        out["type"] = "string"
        if field.pattern:
            out["pattern"] = field.pattern
    if str(ret.get("pattern", "")).endswith("\\Z"):  # Python's end anchor; ECMA-262 (JSON Schema) says $
        out["pattern"] = ret["pattern"][:-2] + "$"
    for validator in _validators(field):
        if isinstance(validator, validate.Length) and validator.equal is None:
            if validator.min is not None and "minLength" not in ret:
                out["minLength"] = validator.min
            if validator.max is not None and "maxLength" not in ret:
                out["maxLength"] = validator.max
        elif _refuses_blank(validator):
            # "(?s).*\S.*" is a Python regex (inline flag); JSON Schema gets its ECMA-262 equivalent.
            if ret.get("pattern") in (None, validator.regex.pattern if hasattr(validator, "regex") else None):
                out["pattern"] = NOT_BLANK
            if "minLength" not in ret:
                out.setdefault("minLength", 1)
    return out


bp = Blueprint("docs_assets", __name__)


@bp.route(DOCS_ASSETS + "<name>")
def docs_asset(name):
    """Swagger UI's own files, from the installed swagger-ui-bundle package."""
    from swagger_ui_bundle import swagger_ui_path

    if name not in ASSET_FILES:
        abort(404)
    return send_from_directory(str(swagger_ui_path), name, max_age=24 * 3600)
