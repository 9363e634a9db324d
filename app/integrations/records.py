"""Pushed records before they are recorded: parsing, their households, what was already received, the anomaly rule.

Shared by the batch path (`bulk.py`) and the one-by-one reference (`service._ingest_records_one_by_one`).
"""
import statistics
from decimal import Decimal

from marshmallow import ValidationError
from sqlalchemy import select

from ..accounts.cards import normalise_card
from ..accounts.models import Household
from ..activities.models import Action
from ..dialect import held_values, is_in
from ..errors import flatten_messages
from ..extensions import db
from .schemas import RecordIn

ANOMALY_FACTOR = 5
ANOMALY_HISTORY = 20
ANOMALY_MIN_HISTORY = 5
ANOMALOUS = "anomalous_quantity"


def parse_record(raw, schema: RecordIn | None = None) -> tuple[str | None, dict | None, dict | None]:
    """(external_id as sent, the loaded record or None, errors or None)."""
    external_id = raw.get("external_id") if isinstance(raw, dict) else None
    if not isinstance(external_id, str) or len(external_id) > 128:
        external_id = None
    if not isinstance(raw, dict):
        return None, None, {"_schema": ["A record must be a JSON object."]}
    try:
        return external_id, (schema or RecordIn()).load(raw), None
    except ValidationError as exc:
        return external_id, None, flatten_messages(exc.messages)


def households_by_card(cards: set[str]) -> dict[str, Household]:
    """The households of these cards (as typed), by stored card number."""
    numbers = {normalise_card(c) for c in cards}
    if not numbers:
        return {}
    found = db.session.scalars(select(Household).where(is_in(Household.card_number, numbers))).all()
    return {h.card_number: h for h in found}


def received_external_ids(integration_id: str, external_ids: set[str]) -> set[str]:
    """Which of these external ids the integration's actions already hold."""
    return held_values(Action.external_id, external_ids, Action.integration_id == integration_id)


def rejected(external_id, errors: dict) -> dict:
    return {"external_id": external_id, "status": "rejected", "errors": errors}


def duplicate(external_id) -> dict:
    return {"external_id": external_id, "status": "duplicate"}


def is_anomalous(quantity: Decimal, daily_cap: Decimal | None, history: list) -> bool:
    """Above the row's whole daily cap, or more than 5x the median of the last (up to 20) approved
    quantities of that type and variant, given at least 5 of them."""
    if daily_cap is not None and quantity > daily_cap:
        return True
    if len(history) < ANOMALY_MIN_HISTORY or quantity <= ANOMALY_FACTOR * min(history):
        return False  # the median is at least the smallest: most records are decided without sorting
    return quantity > ANOMALY_FACTOR * statistics.median(Decimal(q) for q in history)
