"""Who may see or change what: the ownership half of every authorisation, in one place.

Roles say what a caller may ever do (`auth.require_auth`); these say which
objects: a resident its household, community staff their communities, merchant
staff their merchant, a district admin everything. A caller outside an
object's scope is told 404, never 403, so ids cannot be probed.
"""
from .models import User


def staff_of(user: User, community_id: str) -> bool:
    """Community staff working in this community."""
    return user.role == "community_staff" and community_id in user.community_ids


def oversees(user: User, community_id: str) -> bool:
    """A district admin, or community staff of this community."""
    return user.role == "district_admin" or staff_of(user, community_id)


def sees_household(user: User, household_id: str, community_id: str) -> bool:
    """A member of the household, staff of its community, or a district admin."""
    return (user.role == "resident" and user.household_id == household_id) or oversees(user, community_id)


def works_at(user: User, merchant_id: str) -> bool:
    """Merchant staff of this merchant."""
    return user.role == "merchant_staff" and user.merchant_id == merchant_id


def sees_merchant(user: User, merchant_id: str, community_id: str) -> bool:
    return oversees(user, community_id) or works_at(user, merchant_id)


def edits_rewards(user: User, merchant_id: str, community_id: str) -> bool:
    """Merchant staff of the merchant, or community staff of its community (API.md: not a district admin)."""
    return works_at(user, merchant_id) or staff_of(user, community_id)
