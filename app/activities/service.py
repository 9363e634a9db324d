"""Factor sets, actions, caps, review and integrations (being built)."""
from sqlalchemy import select

from ..extensions import db


def reduction_totals(household_id: str) -> dict:
    """Grams of CO2e a household's approved actions reduced, and the verified part."""
    return {"reduction_g_total": 0, "verified_reduction_g_total": 0}
