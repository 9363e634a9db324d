"""Every model, imported once so that migrations and the metadata see all tables."""
from .accounts.models import Community, Household, LoginSession, RefreshToken, StaffCommunity, Street, User  # noqa: F401
from .idempotency import IdempotencyRecord  # noqa: F401
from .jobs import Job  # noqa: F401
from .ratelimit import RateLimitCounter  # noqa: F401
from .replay import SeenSignature  # noqa: F401
from .ledger.models import LedgerAccount, LedgerEntry, LotUse, PointLot  # noqa: F401
from .activities.models import Action, CapUsage, FactorRow, FactorSet  # noqa: F401
from .merchants.models import AnomalyFlag, Merchant  # noqa: F401
from .rewards.models import Redemption, RedemptionCode, Reward  # noqa: F401
from .integrations.models import ImportRowError, Integration, IntegrationImport  # noqa: F401
from .district.models import (  # noqa: F401
    BatchAction, BatchDeduction, DailyRollup, Export, HouseholdMonth, Park, ParkInventory, ParkTransfer,
    ReductionBatch, RetiredRange, Retirement, SerialCounter,
)
