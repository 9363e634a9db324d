"""The ledger's vocabulary: what each kind of entry means for the household it touches.

An entry's `kind` is one of these members. Its `meaning` decides where the
entry counts in a wallet summary, so a new kind must say what it is before it
can be written at all.
"""
from enum import StrEnum


class Meaning(StrEnum):
    EARNING = "earning"  # counts in lifetime_earned (a negative earning nets out: reversals, withheld clawbacks)
    REDEEMING = "redeeming"  # counts in lifetime_redeemed (a void gives back)
    FUNDING = "funding"  # moves points between system and budget accounts; no household is involved
    EXPIRY = "expiry"  # points that expired out of a wallet


class EntryKind(StrEnum):
    """Each member: the value stored in `ledger_entries.kind`, and its accounting meaning."""

    ACTION = "action", Meaning.EARNING  # issuance → wallet: an approved action's base points
    ACTION_REVERSAL = "action_reversal", Meaning.EARNING  # wallet → issuance: a reversed action's points
    CAMPAIGN_BONUS = "campaign_bonus", Meaning.EARNING  # campaign budget → wallet: a campaign's part
    CAMPAIGN_REVERSAL = "campaign_reversal", Meaning.EARNING  # wallet → campaign budget: that part taken back
    CHECKIN = "checkin", Meaning.EARNING  # campaign budget → wallet: an event check-in
    ADJUSTMENT = "adjustment", Meaning.EARNING  # issuance → wallet: a manual or demo credit
    CLAWBACK_RECOVERY = "clawback_recovery", Meaning.EARNING  # wallet → issuance: withheld against a reversal
    REDEMPTION = "redemption", Meaning.REDEEMING  # wallet → merchant: a reward redeemed
    REDEMPTION_VOID = "redemption_void", Meaning.REDEEMING  # merchant → wallet: a redemption voided
    CAMPAIGN_FUNDING = "campaign_funding", Meaning.FUNDING  # issuance → campaign budget: activation
    CAMPAIGN_RETURN = "campaign_return", Meaning.FUNDING  # campaign budget → issuance: what is left at the end
    EXPIRY = "expiry", Meaning.EXPIRY  # wallet → expiry sink: a lot past its date

    def __new__(cls, value: str, meaning: Meaning):
        member = str.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member


def kinds_meaning(meaning: Meaning) -> set[str]:
    return {kind.value for kind in EntryKind if kind.meaning is meaning}


def totals_delta(kind: str, amount: int) -> tuple[int, int]:
    """How an entry of `amount` points moves its account's (earned, redeemed) caches."""
    meaning = EntryKind(kind).meaning
    if meaning is Meaning.EARNING:
        return amount, 0
    if meaning is Meaning.REDEEMING:
        return 0, -amount
    return 0, 0
