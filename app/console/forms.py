"""HTML forms into the API's own input schemas: the same validation, the same 422 naming the field.

A form sends strings; the API's schemas expect JSON types. `form_payload` turns the fields a form
names into what the JSON body would have held (an integer field "12" → 12, a local date-time
"2026-05-01T08:30" → "2026-05-01T08:30:00+08:00", an empty optional field → left out), and
`load_form` loads it through the schema, so the console never has a validation rule of its own.
"""
import re

from flask import request

from ..activities.schemas import load_strict

LOCAL_OFFSET = "+08:00"  # the console's times are Asia/Shanghai, like every day and cap of the project
_LOCAL_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$")
_INTEGER = re.compile(r"^-?\d{1,12}$")


def _value(raw: str, kind: str):
    raw = raw.strip()
    if kind == "int" and _INTEGER.match(raw):
        return int(raw)
    if kind == "datetime" and _LOCAL_MINUTE.match(raw):
        return f"{raw}:00{LOCAL_OFFSET}"
    if kind == "list":
        return [part.strip() for part in re.split(r"[,，\s]+", raw) if part.strip()]
    return raw


def form_payload(fields: dict[str, str], *, lists: dict[str, list[str]] | None = None) -> dict:
    """{name: kind} (kind: str, text, int, datetime, list) → the JSON body the form stands for."""
    payload = {}
    for name, kind in fields.items():
        raw = request.form.get(name, "")
        if raw.strip() == "":
            continue
        payload[name] = raw if kind == "text" else _value(raw, kind)
    for name, values in (lists or {}).items():
        if values:
            payload[name] = values
    return payload


def load_form(schema, fields: dict[str, str], **extra) -> dict:
    """The form loaded through `schema` (422 naming each bad field, as the API answers)."""
    return load_strict(schema, {**form_payload(fields), **extra})
