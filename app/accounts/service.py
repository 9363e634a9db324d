"""Registration, login sessions with rotating refresh tokens, staff, geography."""
import csv
import hashlib
import secrets
from datetime import timedelta
from importlib import resources

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from .. import auth
from ..columns import utcnow
from ..errors import AppError, InvalidCredentials, NotFound, Unauthenticated, validation_error
from ..extensions import db
from ..ledger import service as ledger
from ..transaction import refuse_keeping_writes
from .models import Community, Household, LoginSession, RefreshToken, StaffCommunity, Street, User

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
INVITE_TTL = timedelta(days=7)
HOUSEHOLD_MAX_MEMBERS = 8
# A constant hash to compare against when the phone is unknown, so timing does not reveal it.
_DUMMY_HASH = None


class PhoneTaken(AppError):
    status, code, title = 409, "phone_taken", "This phone number is already registered"


class HouseholdFull(AppError):
    status, code, title = 409, "household_full", "This household already has 8 members"


def mask_phone(phone: str) -> str:
    """138****0000: the only form in which a phone number may reach a log."""
    return f"{phone[:3]}****{phone[-4:]}" if len(phone) >= 7 else "***"


# ---------------------------------------------------------------- geography


def load_geography() -> int:
    """Load the district's streets, towns and communities from the project's CSV; safe to run twice."""
    created = 0
    text = resources.files("app").joinpath("data/songjiang_geography.csv").read_text(encoding="utf-8")
    streets = {s.name: s for s in db.session.scalars(select(Street))}
    communities = {(c.street_id, c.name) for c in db.session.scalars(select(Community))}
    next_community = len(communities)
    for row in csv.DictReader(text.splitlines()):
        street = streets.get(row["street_name"])
        if street is None:
            street = Street(name=row["street_name"], code=row["street_code"] or None,
                            kind=row["street_kind"], position=len(streets))
            db.session.add(street)
            db.session.flush()
            streets[street.name] = street
            created += 1
        name = row["community_name"].strip()
        if name and (street.id, name) not in communities:
            db.session.add(Community(street_id=street.id, name=name, position=next_community))
            communities.add((street.id, name))
            next_community += 1
            created += 1
    db.session.flush()
    return created


def add_community(street_name: str, name: str, *, is_demo: bool = False) -> Community:
    """A community of a street, created if missing. Does not commit."""
    street = db.session.scalar(select(Street).where(Street.name == street_name))
    if street is None:
        raise NotFound(f"No street or town named {street_name}")
    found = db.session.scalar(select(Community).where(Community.street_id == street.id, Community.name == name))
    if found is not None:
        return found
    position = db.session.scalar(select(func.count()).select_from(Community))
    community = Community(street_id=street.id, name=name, is_demo=is_demo, position=position)
    db.session.add(community)
    db.session.flush()
    return community


def list_communities() -> list[Community]:
    return db.session.scalars(select(Community).order_by(Community.position, Community.id)).all()


# ---------------------------------------------------------------- passwords and codes


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def _check_password(user: User | None, password: str) -> bool:
    global _DUMMY_HASH
    if user is None:
        _DUMMY_HASH = _DUMMY_HASH or hash_password(secrets.token_hex(8))
        check_password_hash(_DUMMY_HASH, password)
        return False
    return check_password_hash(user.password_hash, password)


def _invite_code() -> str:
    return "".join(secrets.choice(CROCKFORD) for _ in range(10))


def normalise_invite_code(code: str) -> str:
    """Crockford base 32 is read forgivingly: case, I/L for 1, O for 0, hyphens ignored."""
    return code.strip().upper().replace("-", "").translate(str.maketrans("ILO", "110"))


def _card_number() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(12))


# ---------------------------------------------------------------- households and users


def create_household(community_id: str) -> Household:
    """A new household with its wallet. Does not commit."""
    if db.session.get(Community, community_id) is None:
        raise validation_error("community_id", "No such community.")
    household = Household(
        community_id=community_id, invite_code=_invite_code(), invite_expires_at=utcnow() + INVITE_TTL,
        card_number=_card_number(),
    )
    db.session.add(household)
    db.session.flush()
    ledger.account_of("household", household.id)
    return household


def _join_household(invite_code: str) -> Household:
    code = normalise_invite_code(invite_code)
    household = db.session.scalar(
        select(Household).where(Household.invite_code == code).with_for_update()
    )
    if household is None or household.invite_expires_at <= utcnow():
        raise validation_error("household_invite_code", "Unknown or expired invite code.")
    members = db.session.scalar(select(func.count()).select_from(User).where(User.household_id == household.id))
    if members >= HOUSEHOLD_MAX_MEMBERS:
        raise HouseholdFull()
    return household


def _add_user(**fields) -> User:
    if db.session.scalar(select(User.id).where(User.phone == fields["phone"])) is not None:
        raise PhoneTaken()
    user = User(**fields)
    try:
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError:
        raise PhoneTaken() from None
    return user


def register(data: dict) -> tuple[User, dict]:
    """A resident into a new household, or into an existing one by invite code. Does not commit."""
    if data.get("household_invite_code"):
        household = _join_household(data["household_invite_code"])
    else:
        household = create_household(data["community_id"])
    user = _add_user(
        phone=data["phone"], password_hash=hash_password(data["password"]),
        display_name=data["display_name"].strip() or data["display_name"], role="resident",
        household_id=household.id,
    )
    user.household = household
    return user, start_session(user)


def create_staff(data: dict) -> User:
    """A staff account with its scope. Does not commit."""
    role = data["role"]
    fields = dict(phone=data["phone"], password_hash=hash_password(data["password"]),
                  display_name=data["display_name"], role=role)
    if role == "community_staff":
        given = data.get("community_ids") or []
        if not given:
            raise validation_error("community_ids", "community_staff needs at least one community.")
        found = set(db.session.scalars(select(Community.id).where(Community.id.in_(given))))
        for index, community_id in enumerate(given):  # the index the client sent
            if community_id not in found:
                raise validation_error(f"community_ids.{index}", "No such community.")
        ids = sorted(set(given))
    elif data.get("community_ids"):
        raise validation_error("community_ids", "Only community_staff have communities.")
    if role == "merchant_staff":
        fields["merchant_id"] = _scope_target("merchant_id", data.get("merchant_id"), "merchant")
    elif data.get("merchant_id"):
        raise validation_error("merchant_id", "Only merchant_staff belong to a merchant.")
    if role == "park_manager":
        fields["park_id"] = _scope_target("park_id", data.get("park_id"), "park")
    elif data.get("park_id"):
        raise validation_error("park_id", "Only park_manager belongs to a park.")
    user = _add_user(**fields)
    if role == "community_staff":
        user.staff_communities = [StaffCommunity(user_id=user.id, community_id=c) for c in ids]
    db.session.flush()
    return user


SCOPE_MODELS = "scope_models"


def register_scope_models(app, models: dict) -> None:
    """"merchant" / "park" → the model a staff scope id must name (create_app registers them)."""
    app.extensions.setdefault(SCOPE_MODELS, {}).update(models)


def _scope_target(field: str, value: str | None, kind: str) -> str:
    if not value:
        raise validation_error(field, "Required for this role.")
    model = current_app.extensions.get(SCOPE_MODELS, {}).get(kind)
    if model is None or db.session.get(model, value) is None:
        raise validation_error(field, f"No such {kind}.")
    return value


# ---------------------------------------------------------------- sessions and tokens


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _issue_pair(user: User, session: LoginSession) -> dict:
    refresh = secrets.token_urlsafe(48)
    db.session.add(RefreshToken(
        token_hash=_token_hash(refresh), session_id=session.id,
        expires_at=utcnow() + current_app.config["JWT_REFRESH_TTL"],
    ))
    return {
        "access_token": auth.issue_access_token(user.id, session.id),
        "refresh_token": refresh,
        "token_type": "Bearer",
        "expires_in": int(current_app.config["JWT_ACCESS_TTL"].total_seconds()),
    }


def open_session(user: User) -> LoginSession:
    """A new login session: what its tokens (API) or its cookie (staff console) refer to. Does not commit."""
    session = LoginSession(user_id=user.id)
    db.session.add(session)
    db.session.flush()
    return session


def start_session(user: User) -> dict:
    """A new login: a token family and its first pair. Does not commit."""
    return _issue_pair(user, open_session(user))


def authenticate(phone: str, password: str) -> User:
    """The user with this phone and password, else InvalidCredentials (in the same time either way)."""
    user = db.session.scalar(select(User).where(User.phone == phone))
    if not _check_password(user, password):
        raise InvalidCredentials()
    return user


def login(phone: str, password: str) -> tuple[User, dict]:
    """Log in through the API: the user and a fresh token pair. Does not commit."""
    user = authenticate(phone, password)
    return user, start_session(user)


class RefreshReused(Unauthenticated):
    """A rotated refresh token came back: the whole login is revoked."""


def refresh(token: str) -> tuple[User, dict]:
    """Rotate a refresh token. Presenting a used one revokes its whole login. Does not commit."""
    stored = db.session.get(RefreshToken, _token_hash(token))
    if stored is None:
        raise Unauthenticated("Unknown refresh token")
    session = db.session.get(LoginSession, stored.session_id)
    if session.revoked_at is not None or stored.expires_at <= utcnow():
        raise Unauthenticated("This login has ended")
    rotated = db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == stored.token_hash, RefreshToken.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not rotated:
        revoke_session(session.id, "refresh_reuse")
        refuse_keeping_writes(RefreshReused("This refresh token was already used; the login has been revoked"))
    user = db.session.get(User, session.user_id)
    return user, _issue_pair(user, session)


def revoke_session(session_id: str, reason: str) -> None:
    """End a login. This process forgets it at once; other processes within AUTH_CACHE_SECONDS."""
    db.session.execute(
        update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )
    auth.forget_logins([session_id])  # a bulk UPDATE: the flush listener does not see it


def new_invite_code(household: Household) -> Household:
    """A fresh invite code; the old one stops working. Does not commit."""
    household.invite_code = _invite_code()
    household.invite_expires_at = utcnow() + INVITE_TTL
    db.session.flush()
    return household


# ---------------------------------------------------------------- replies


def session_reply(user: User, tokens: dict) -> dict:
    """The reply to register, login and refresh: the user, its household and the token pair."""
    return {"user": user, "household": user.household, **tokens}


# ---------------------------------------------------------------- listing


def households_in(community_ids: list[str], limit: int, cursor) -> list[Household]:
    """Households of these communities, oldest first (limit + 1 rows for paging)."""
    from ..paging import page_rows

    return page_rows(select(Household).where(Household.community_id.in_(community_ids)), Household, limit, cursor,
                     oldest_first=True)
