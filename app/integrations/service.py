"""Integrations: registration, signing secrets, pushed records and operator CSV imports.

A record is valued by activities.record_action like any other action; this
module decides who sent it, whether it was already received (the unique
(integration_id, external_id) of the actions table is the double-claim guard)
and whether its quantity looks anomalous enough to go to review.
"""
import csv
import io
import json
import secrets
from datetime import timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from .. import keyring
from ..accounts.cards import normalise_card
from ..accounts.models import Household
from ..activities import service as activities
from ..activities.factors import resolve_factor
from ..localtime import local_date
from ..activities.models import Action
from ..campaigns import service as campaigns
from ..columns import new_id, utcnow
from ..errors import (
    AppError, InvalidState, NotFound, Unauthenticated, UnsupportedMediaType, ValidationFailed, validation_error,
)
from ..extensions import db
from ..ledger import service as ledger
from ..paging import decode_cursor, page_rows
from .models import DEFAULT_SOURCE, ROTATION_OVERLAP_SECONDS, ImportRowError, Integration, IntegrationImport
from . import bulk
from . import records as incoming
from .records import ANOMALOUS, ANOMALY_HISTORY

CSV_COLUMNS = ("external_id", "household_card", "action_type", "variant", "quantity", "unit", "occurred_at")
IMPORT_MAX_BYTES = 2 * 1024 * 1024
IMPORT_CHUNK = 200


class PayloadTooLarge(AppError):
    status, code, title = 413, "payload_too_large", "Payload too large"


# ---------------------------------------------------------------- integrations and their secrets


ROTATION_OVERLAP = timedelta(seconds=ROTATION_OVERLAP_SECONDS)
REENCRYPT_CHUNK = 500


def _purpose(integration_id: str) -> str:
    return f"integration-secret:{integration_id}"


def secret_of(integration: Integration) -> str:
    """The integration's current signing secret, decrypted from its row."""
    return keyring.decrypt(integration.secret_encrypted, _purpose(integration.id))


def verifying_secrets(integration: Integration) -> list[str]:
    """The secrets that verify its signatures now: the current one, and the previous one during its overlap."""
    found = [secret_of(integration)]
    if integration.previous_secret_encrypted and integration.previous_secret_expires_at and (
        integration.previous_secret_expires_at > utcnow()
    ):
        found.append(keyring.decrypt(integration.previous_secret_encrypted, _purpose(integration.id)))
    return found


def _new_secret(integration: Integration) -> str:
    secret = secrets.token_hex(32)
    integration.secret_encrypted = keyring.encrypt(secret, _purpose(integration.id))
    integration.shown_secret = secret
    return secret


def create_integration(*, name: str, kind: str, source: str | None = None,
                       actor_id: str | None = None) -> tuple[Integration, str]:
    """Register an integration; returns it with its secret, which is shown once. Does not commit."""
    if source is None:
        source = DEFAULT_SOURCE[kind]
    integration = Integration(id=new_id(), name=name.strip() or name, kind=kind, source=source, active=True,
                              created_by=actor_id, created_at=utcnow())
    secret = _new_secret(integration)
    db.session.add(integration)
    db.session.flush()
    return integration, secret


def rotate_secret(integration_id: str, overlap: timedelta = ROTATION_OVERLAP) -> tuple[Integration, str]:
    """Give an integration a new secret, shown once; the current one keeps verifying for `overlap`.

    A secret still in an earlier overlap stops at once: at most two secrets verify. Does not commit.
    """
    integration = db.session.get(Integration, integration_id, with_for_update=True, populate_existing=True)
    if integration is None:
        raise NotFound("No such integration")
    if not integration.active:
        raise InvalidState("This integration is inactive")
    if overlap > timedelta(0):
        integration.previous_secret_encrypted = integration.secret_encrypted
        integration.previous_secret_expires_at = utcnow() + overlap
    else:
        integration.previous_secret_encrypted = integration.previous_secret_expires_at = None
    return integration, _new_secret(integration)


def reencrypt_secrets(limit: int = REENCRYPT_CHUNK) -> int:
    """Re-encrypt up to `limit` integrations' secrets that are not under the active data key; returns how many.

    The rows are locked, so a concurrent rotation is never overwritten; a previous secret whose
    overlap has ended is dropped rather than re-encrypted. Call it until it returns 0, committing
    each chunk. Does not commit.
    """
    ring = keyring.keyring()
    prefix = ring.active_id + ":"
    current, previous = Integration.secret_encrypted, Integration.previous_secret_encrypted
    rows = db.session.scalars(
        select(Integration)
        .where(or_(~current.startswith(prefix, autoescape=True),
                   and_(previous.is_not(None), ~previous.startswith(prefix, autoescape=True))))
        .order_by(Integration.id).limit(limit).with_for_update()
    ).all()
    now = utcnow()
    for integration in rows:
        purpose = _purpose(integration.id)
        integration.secret_encrypted = ring.reencrypt(integration.secret_encrypted, purpose)
        if integration.previous_secret_encrypted and (integration.previous_secret_expires_at or now) > now:
            integration.previous_secret_encrypted = ring.reencrypt(integration.previous_secret_encrypted, purpose)
        else:
            integration.previous_secret_encrypted = integration.previous_secret_expires_at = None
    return len(rows)


def get_integration(integration_id: str) -> Integration:
    integration = db.session.get(Integration, integration_id)
    if integration is None:
        raise NotFound("No such integration")
    return integration


def list_integrations(limit: int, cursor: str | None) -> list[Integration]:
    """Integrations newest first, limit + 1 rows from the cursor on."""
    return page_rows(select(Integration), Integration, limit, decode_cursor(cursor))


def deactivate_integration(integration_id: str) -> Integration:
    """Stop an integration: its signatures are refused from now on. Does not commit."""
    integration = db.session.get(Integration, integration_id, with_for_update=True)
    if integration is None:
        raise NotFound("No such integration")
    if not integration.active:
        raise InvalidState("This integration is already inactive")
    integration.active, integration.deactivated_at = False, utcnow()
    return integration


def signing_integration(integration_id: str | None) -> Integration:
    """The active integration named by X-Integration-Id, else 401."""
    integration = None
    if integration_id and len(integration_id) <= 32:
        integration = db.session.get(Integration, integration_id)
    if integration is None or not integration.active:
        raise Unauthenticated("Unknown or inactive integration")
    return integration


# ---------------------------------------------------------------- pushed records


def ingest_records(integration: Integration, records: list) -> list[dict]:
    """Record each raw record of an integration; one result per record, in input order.

    A record is created, a duplicate (its external_id was already received from
    this integration, earlier or earlier in the same batch), or rejected with
    errors naming its fields. Set-based (`bulk.py`): a fixed number of statements
    for any number of records, the outcome of `_ingest_records_one_by_one`.
    Does not commit.
    """
    return bulk.ingest_records(integration, records)


def _ingest_records_one_by_one(integration: Integration, records: list) -> list[dict]:
    """The reference the batch path is held to (tests): `record_action` per record, in external_id order.

    Records are written in external_id order, each in a savepoint, after the
    households' accounts are locked in id order, so that concurrent batches can
    neither deadlock nor credit an external_id twice. Does not commit.
    """
    parsed = [incoming.parse_record(raw) for raw in records]
    households = incoming.households_by_card({data["household_card"] for _, data, _ in parsed if data})
    ledger.lock_households(h.id for h in households.values())
    campaigns.lock_for_households(h.id for h in households.values())  # then campaign accounts, in one order
    received = incoming.received_external_ids(integration.id, {data["external_id"] for _, data, _ in parsed if data})

    results: list[dict | None] = [None] * len(parsed)
    rows: dict = {}  # factor rows looked up in this batch
    order = sorted(range(len(parsed)), key=lambda i: (parsed[i][0] or "", i))
    for index in order:
        external_id, data, errors = parsed[index]
        if errors:
            results[index] = _rejected(external_id, errors)
            continue
        household = households.get(normalise_card(data["household_card"]))
        if household is None:
            results[index] = _rejected(external_id, {"household_card": ["No household has this card."]})
        elif external_id in received:
            results[index] = {"external_id": external_id, "status": "duplicate"}
        else:
            results[index] = _record_one(integration, household, data, rows)
            if results[index]["status"] != "rejected":
                received.add(external_id)
    return results


_rejected = incoming.rejected


def _record_one(integration: Integration, household: Household, data: dict, rows: dict) -> dict:
    external_id = data["external_id"]
    try:
        with db.session.begin_nested():
            action = activities.record_action(
                household_id=household.id, resident_id=None, action_type=data["action_type"],
                variant=data["variant"], quantity=data["quantity"], unit=data["unit"],
                occurred_at=data["occurred_at"], source=integration.source, actor_id=None,
                integration_id=integration.id, external_id=external_id,
                review_reason=anomaly_reason(household.id, data, rows),
            )
            db.session.flush()
    except ValidationFailed as exc:
        return _rejected(external_id, exc.extra.get("errors") or {"_schema": [exc.detail]})
    except IntegrityError:
        # Another transaction recorded this external_id first (it waited for that commit).
        if not incoming.received_external_ids(integration.id, {external_id}):
            raise
        return {"external_id": external_id, "status": "duplicate"}
    return {"external_id": external_id, "status": "created", "action_id": action.id}


def anomaly_reason(household_id: str, data: dict, rows: dict | None = None) -> str | None:
    """"anomalous_quantity" when a record should go to review rather than be approved on arrival.

    Above the row's whole daily cap in one record, or more than 5x the median of
    the household's last 20 approved quantities of that type and variant (given
    at least 5 of them). `rows` caches factor rows across the records of a batch.
    """
    key = (data["action_type"], data["variant"], data["unit"], local_date(data["occurred_at"]))
    rows = {} if rows is None else rows
    if key not in rows:
        rows[key] = resolve_factor(*key[:3], data["occurred_at"], None, {})
    row = rows[key]
    if row is None:
        return None  # record_action will reject the record and name the field
    variant = data["variant"]
    same_variant = (Action.variant == variant) if variant else or_(Action.variant.is_(None), Action.variant == "")
    history = db.session.scalars(
        select(Action.quantity)
        .where(Action.household_id == household_id, Action.action_type == data["action_type"],
               same_variant, Action.status == "approved")
        .order_by(Action.approved_at.desc(), Action.id.desc())
        .limit(ANOMALY_HISTORY)
    ).all()
    return ANOMALOUS if incoming.is_anomalous(data["quantity"], row.daily_cap, history) else None


# ---------------------------------------------------------------- CSV imports


def create_import(integration_id: str, body: bytes, content_type: str | None,
                  actor_id: str | None = None) -> IntegrationImport:
    """Store an operator's CSV file and queue the job that records its rows. Does not commit."""
    from .. import jobs

    integration = get_integration(integration_id)
    if not integration.active:
        raise InvalidState("This integration is inactive")
    if (content_type or "").split(";")[0].strip().lower() != "text/csv":
        raise UnsupportedMediaType("Send the file with Content-Type: text/csv")
    if len(body) > IMPORT_MAX_BYTES:
        raise PayloadTooLarge("The file may be at most 2 MB")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise validation_error("body", "The file must be UTF-8 text.") from None
    rows = csv_rows(text)
    if not rows:
        raise validation_error("body", "The file has no data rows.")
    imp = IntegrationImport(integration_id=integration.id, status="queued", csv_text=text,
                            total_rows=len(rows), created_by=actor_id, created_at=utcnow())
    db.session.add(imp)
    db.session.flush()
    jobs.enqueue("integrations.import", import_id=imp.id)
    return imp


def csv_rows(text: str) -> list[tuple[int, dict | list]]:
    """(line number, row) for every data row; a row is a dict, or the raw cells if it has too few or many.

    Raises a 422 naming `header` when the header is not the expected one.
    """
    if "\x00" in text:
        raise validation_error("body", "The file contains NUL characters.")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != list(CSV_COLUMNS):
            raise validation_error("header", "The header must be " + ",".join(CSV_COLUMNS) + ".")
        rows, line = [], reader.line_num
        for cells in reader:
            start, line = line + 1, reader.line_num
            if not cells or cells == [""]:
                continue
            rows.append((start, dict(zip(CSV_COLUMNS, cells)) if len(cells) == len(CSV_COLUMNS) else cells))
    except csv.Error as exc:
        raise validation_error("body", f"Not a readable CSV file (line {reader.line_num}).") from exc
    return rows


def _record_from_row(row: dict) -> dict:
    """A CSV row as a pushed record: empty cells are absent, an empty variant is none."""
    record = {key: value.strip() for key, value in row.items() if value.strip()}
    record.setdefault("variant", None)
    return record


def process_import_chunk(import_id: str, rows: list) -> bool:
    """Record the next chunk of an import's rows (from csv_rows) and note the progress.

    Returns False when nothing is left. The import row is locked and its
    progress re-read, so two runners never take the same chunk, and rows
    already processed are skipped. Does not commit: the caller commits each chunk.
    """
    imp = db.session.get(IntegrationImport, import_id, with_for_update=True, populate_existing=True)
    if imp is None or imp.status in ("done", "failed"):
        return False
    if imp.status == "queued":
        imp.status, imp.started_at = "running", utcnow()
    chunk = rows[imp.processed_rows:imp.processed_rows + IMPORT_CHUNK]
    integration = db.session.get(Integration, imp.integration_id)
    records = [_record_from_row(row) if isinstance(row, dict) else None for _, row in chunk]
    outcomes = iter(ingest_records(integration, [r for r in records if r is not None]))
    for (line, row), record in zip(chunk, records):
        if record is None:
            result = _rejected(_short(row[0].strip()) if row else None,
                               {"row": [f"Expected {len(CSV_COLUMNS)} columns, found {len(row)}."]})
        else:
            result = next(outcomes)
        if result["status"] == "created":
            imp.created_count += 1
        elif result["status"] == "duplicate":
            imp.duplicate_count += 1
        else:
            imp.rejected_count += 1
            db.session.add(ImportRowError(import_id=imp.id, line=line, external_id=result["external_id"],
                                          errors=json.dumps(result["errors"], ensure_ascii=False)))
    imp.processed_rows += len(chunk)
    if imp.processed_rows >= len(rows):
        imp.status, imp.finished_at = "done", utcnow()
        return False
    return True


def _short(external_id: str) -> str | None:
    return external_id if 0 < len(external_id) <= 128 else None


def fail_import(import_id: str) -> None:
    """Mark an import failed. Does not commit."""
    imp = db.session.get(IntegrationImport, import_id, populate_existing=True)
    if imp is not None and imp.status != "done":
        imp.status, imp.finished_at = "failed", utcnow()


def get_import(import_id: str) -> IntegrationImport:
    imp = db.session.get(IntegrationImport, import_id)
    if imp is None:
        raise NotFound("No such import")
    return imp

