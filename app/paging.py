"""Keyset paging: rows newest first by (created_at, id), and the opaque cursors that continue them."""
import base64
import json
import re
from datetime import datetime, timezone

from .errors import validation_error
from .extensions import db


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CURSOR_MAX = 200  # characters: what encode_cursor gives out is about 110


def decode_cursor(cursor: str | None):
    """(created_at, id) from a cursor, or None; a bad cursor is a 422 on `cursor`.

    Only what `encode_cursor` could have given out passes: a cursor is sent back by the client, so
    its id reaches the database as a bound value, and one the driver cannot encode (half of a
    UTF-16 surrogate pair, a NUL) would otherwise be a 500.
    """
    if not cursor:
        return None
    try:
        if len(cursor) > CURSOR_MAX:
            raise ValueError("cursor too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:  # UTC columns refuse naive times: that would be a 500
            raise ValueError("naive time in cursor")
        if not (isinstance(row_id, str) and _ROW_ID.fullmatch(row_id)):
            raise ValueError("not a row id")
        return moment.astimezone(timezone.utc), row_id
    except (ValueError, TypeError, OverflowError, json.JSONDecodeError):
        raise validation_error("cursor", "Not a cursor this API gave out.")


_ROW_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # ids are columns.new_id's 32 hex digits


def page(rows, limit: int, item=lambda r: r) -> dict:
    """{"items", "next_cursor"} from limit + 1 rows ordered newest first by (created_at, id)."""
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return {"items": [item(r) for r in rows], "next_cursor": next_cursor}


def page_rows(query, model, limit: int, cursor, *, oldest_first: bool = False) -> list:
    """limit + 1 rows of `query` after the cursor, ordered by (created_at, id), newest first by default."""
    if cursor is not None:
        created, row_id = cursor
        if oldest_first:
            query = query.where((model.created_at > created) | ((model.created_at == created) & (model.id > row_id)))
        else:
            query = query.where((model.created_at < created) | ((model.created_at == created) & (model.id < row_id)))
    order = (model.created_at, model.id) if oldest_first else (model.created_at.desc(), model.id.desc())
    return db.session.scalars(query.order_by(*order).limit(limit + 1)).all()
