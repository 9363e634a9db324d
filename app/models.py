"""Every model, imported once so that migrations and the metadata see all tables."""
from .accounts.models import Community, Household, LoginSession, RefreshToken, StaffCommunity, Street, User  # noqa: F401
from .idempotency import IdempotencyRecord  # noqa: F401
from .jobs import Job  # noqa: F401
from .ledger.models import LedgerAccount, LedgerEntry, LotUse, PointLot  # noqa: F401
from .merchants.models import Merchant  # noqa: F401
from .accounts import service as _accounts

_accounts.SCOPE_MODELS["merchant"] = Merchant
