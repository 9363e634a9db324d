"""Which console pages each role sees: the navigation and the home page, by role.

A feature adds its pages here from its own module, without touching the templates:

    pages.add_nav("console.review_queue", "Review queue", "community_staff")
    pages.HOME["district_admin"] = "console.district_overview"

Labels are English msgids, shown through the zh catalogue like every other console text.
"""
import functools

from flask import g

from ..errors import Forbidden

CONSOLE_ROLES = ("community_staff", "district_admin", "park_manager")

NAV: dict[str, list[tuple[str, str]]] = {role: [] for role in CONSOLE_ROLES}
HOME: dict[str, str] = {}


def add_nav(endpoint: str, label: str, *roles: str) -> None:
    """Show `label` linking to `endpoint` in the navigation of each of `roles` (in the order added)."""
    for role in roles:
        if role not in NAV:
            raise ValueError(f"{role} is not a console role")
        if (endpoint, label) not in NAV[role]:
            NAV[role].append((endpoint, label))


def nav_for(role: str) -> list[tuple[str, str]]:
    return NAV.get(role, [])


def allow(*roles: str):
    """Only these console roles may open the page (others get the 403 page)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if g.console_user.role not in roles:
                raise Forbidden(f"This needs the role {' or '.join(roles)}")
            return view(*args, **kwargs)

        wrapper.console_roles = roles
        return wrapper

    return decorator


ROLE_LABELS = {
    "community_staff": "Community staff",
    "district_admin": "District admin",
    "park_manager": "Park manager",
    "resident": "Resident",
    "merchant_staff": "Merchant staff",
}
