"""The one place a request body is parsed as JSON.

Flask's `request.get_json` (through the app's JSON provider) and the webargs
parser behind every `@bp.arguments` both come here, so every malformed or
hostile body is the same 400 `malformed_json` problem, never a 5xx:

- not UTF-8, not JSON, or `NaN` / `Infinity` (not JSON either);
- nested deeper than `MAX_DEPTH` arrays and objects;
- a number literal longer than `MAX_NUMBER_LENGTH` characters (Python refuses
  to convert integers over 4,300 digits, and no field here needs more than 40);
- a string holding half of a UTF-16 surrogate pair (`"\\ud800"` alone): JSON's
  grammar lets the escape through, but it is no character, and no UTF-8 text
  (the database's, the logs') can hold it.
"""
import json
import re

from flask.json.provider import DefaultJSONProvider
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from .errors import AppError

MAX_DEPTH = 32
MAX_NUMBER_LENGTH = 40


class MalformedJSON(AppError):
    status, code, title = 400, "malformed_json", "Malformed request"


def _number(convert):
    def parse(literal: str):
        if len(literal) > MAX_NUMBER_LENGTH:
            raise MalformedJSON("A JSON number is longer than 40 characters")
        return convert(literal)

    return parse


def _refuse_constant(name: str):
    raise MalformedJSON("NaN, Infinity and -Infinity are not JSON numbers")


def parse_json(data: bytes | str):
    """The value of a JSON document, else MalformedJSON naming what is wrong with it."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        value = json.loads(text, parse_int=_number(int), parse_float=_number(float),
                           parse_constant=_refuse_constant)
    except MalformedJSON:
        raise
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise MalformedJSON("The request body is not valid JSON") from None
    if _depth_exceeds(value, MAX_DEPTH):
        raise MalformedJSON("The JSON body nests deeper than 32 levels")
    if _SURROGATE.search(text) and _holds_surrogate(value):  # the text first: a pair (an emoji) is fine
        raise MalformedJSON("A JSON string holds an unpaired surrogate (\\ud800 to \\udfff), which is no character")
    return value


_SURROGATE = re.compile(r"\\u[dD][89abcdefABCDEF]|[\ud800-\udfff]")  # an escape of one, or one in a str body


def _holds_surrogate(value) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if _LONE.search(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


_LONE = re.compile(r"[\ud800-\udfff]")  # after decoding, a pair is one character: any left is unpaired


def _depth_exceeds(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in node)
    return False


class BodyJSONProvider(DefaultJSONProvider):
    """`request.get_json()` parses through `parse_json`; dumping is Flask's own."""

    def loads(self, s, **kwargs):
        return parse_json(s)


class BodyParser(FlaskParser):
    """The webargs parser of every blueprint: JSON bodies through `parse_json`."""

    def _raw_load_json(self, req):
        if not is_json_request(req):
            return core.missing
        data = req.get_data(cache=True)
        if not data.strip():
            return core.missing  # no body, as webargs has it: routes that take none accept an empty one
        return parse_json(data)
