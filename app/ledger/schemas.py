"""The household wallet as residents see it."""
from marshmallow import Schema, fields

from ..schemas import page_schema


class WalletOut(Schema):
    household_id = fields.String()
    balance = fields.Integer()
    lifetime_earned = fields.Integer()
    lifetime_redeemed = fields.Integer()
    clawback_points = fields.Integer()
    reduction_g_total = fields.Integer()
    verified_reduction_g_total = fields.Integer()
    expiring_30d = fields.Integer()


class EntryOut(Schema):
    id = fields.String()
    amount = fields.Integer()
    kind = fields.String()
    ref = fields.String()
    balance_after = fields.Integer()
    created_at = fields.DateTime()


EntryList = page_schema(EntryOut, "WalletEntryList")
