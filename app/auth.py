"""Access tokens (PyJWT), the current user, role checks, integration signatures.

Who is behind a login is kept per process for AUTH_CACHE_SECONDS (`login_cache`), so an
authenticated request need not read the database. A revocation in this process takes effect at
once; one made by another process (another gunicorn worker) within AUTH_CACHE_SECONDS. A miss
reads the login with one Core statement (`_session_user_copy`).
"""
import functools
import hashlib
import hmac
import re
import threading
import time
from collections import OrderedDict
from typing import NamedTuple

import jwt
from flask import current_app, g, request
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from .columns import new_id, utcnow
from .errors import Forbidden, Unauthenticated
from .extensions import core, db
from .rows import loaded

ALGORITHMS = ["HS256"]
BEARER = {"bearerAuth": []}
SIGNATURE_SKEW = 300  # seconds either side of the server clock


def issue_access_token(user_id: str, session_id: str) -> str:
    now = utcnow()
    claims = {
        "sub": user_id,
        "sid": session_id,
        "iat": now,
        "exp": now + current_app.config["JWT_ACCESS_TTL"],
        "jti": new_id(),
        "typ": "access",
    }
    return jwt.encode(claims, current_app.config["JWT_SECRET_KEY"], algorithm=ALGORITHMS[0])


VERIFIED_TOKENS = 10_000  # access tokens whose signature this process has checked, kept until cleared
_verified: dict[str, tuple[str, dict]] = {}  # token → (the key that verified it, its claims)


def decode_access_token(token: str) -> dict:
    """The claims of a valid access token, else Unauthenticated.

    A token this process verified before (the same bytes, under the same key) is not verified again
    (~60 µs a request): only its expiry is checked, which is the one thing about it that changes.
    """
    secret = current_app.config["JWT_SECRET_KEY"]
    known = _verified.get(token)
    if known is not None and known[0] == secret and known[1]["exp"] > time.time():
        return known[1]
    claims = _verify(token, secret)
    if len(_verified) >= VERIFIED_TOKENS:
        _verified.clear()
    _verified[token] = (secret, claims)
    return claims


def _verify(token: str, secret: str) -> dict:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=ALGORITHMS,
            options={"require": ["exp", "iat", "jti", "sub", "sid"]},
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated("The access token is invalid or expired") from exc
    if claims.get("typ") != "access":
        raise Unauthenticated("Not an access token")
    return claims


LOGIN_CACHE_SIZE = 10_000  # logins remembered per process, least recently used dropped first
FORGET = "auth_forget_logins"


class LoginCache:
    """Session id → its `Login` (the rows of its user, household and staff communities), until it expires.

    Thread-safe. Every `forget` bumps `generation`: a database read that started before it is not
    stored, so a login revoked while another thread was reading it cannot come back.
    """

    def __init__(self, size: int = LOGIN_CACHE_SIZE, clock=time.monotonic):
        self.size, self.clock = size, clock
        self.generation = 0
        self._entries: OrderedDict[str, tuple] = OrderedDict()  # sid → (expires, user_id, household_id, copy)
        self._lock = threading.Lock()

    def get(self, session_id: str, user_id: str):
        with self._lock:
            entry = self._entries.get(session_id)
            if entry is None:
                return None
            if entry[0] <= self.clock() or entry[1] != user_id:
                del self._entries[session_id]
                return None
            self._entries.move_to_end(session_id)
            return entry[3]

    def put(self, session_id: str, user, seconds: float, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return
            self._entries[session_id] = (self.clock() + seconds, user.id, user.household_id, user)
            self._entries.move_to_end(session_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, session_ids=(), user_ids=(), household_ids=()) -> None:
        with self._lock:
            self.generation += 1
            for session_id in session_ids:
                self._entries.pop(session_id, None)
            if user_ids or household_ids:
                for session_id, (_, user_id, household_id, _) in list(self._entries.items()):
                    if user_id in user_ids or (household_id is not None and household_id in household_ids):
                        del self._entries[session_id]

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


login_cache = LoginCache()


def forget_logins(session_ids=(), *, user_ids=(), household_ids=(), session=None) -> None:
    """Drop cached logins now, and again once the unit of work commits.

    Call it wherever a login is revoked or a user, its household or its staff communities change
    in bulk (ORM changes to those rows are caught by `_forget_changed_logins`).
    """
    ids = (frozenset(session_ids), frozenset(user_ids), frozenset(household_ids))
    login_cache.forget(*ids)
    (session or db.session).info.setdefault(FORGET, []).append(ids)


@event.listens_for(Session, "after_flush")
def _forget_changed_logins(session, flush_context):
    from .accounts.models import Household, LoginSession, StaffCommunity, User

    session_ids, user_ids, household_ids = set(), set(), set()
    # New users, households and logins cannot be cached yet; a new staff community changes a scope.
    user_ids.update(obj.user_id for obj in session.new if isinstance(obj, StaffCommunity))
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, User):
            user_ids.add(obj.id)
        elif isinstance(obj, StaffCommunity):
            user_ids.add(obj.user_id)
        elif isinstance(obj, Household):
            household_ids.add(obj.id)
        elif isinstance(obj, LoginSession):
            session_ids.add(obj.id)
    if session_ids or user_ids or household_ids:
        forget_logins(session_ids, user_ids=user_ids, household_ids=household_ids, session=session)


@event.listens_for(Session, "after_commit")
def _forget_committed(session):
    # Again after the commit: a read that ran between the change and its commit saw the old row.
    for ids in session.info.pop(FORGET, ()):
        login_cache.forget(*ids)


@event.listens_for(Session, "after_soft_rollback")
def _forget_nothing_more(session, previous_transaction):
    if previous_transaction.parent is None:
        session.info.pop(FORGET, None)


def _load_user():
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send 'Authorization: Bearer <access_token>'")
    claims = decode_access_token(token.strip())
    seconds = current_app.config.get("AUTH_CACHE_SECONDS", 0)
    cached = login_cache.get(claims["sid"], claims["sub"]) if seconds > 0 else None
    if cached is not None:
        g.session_id = claims["sid"]
        return _attach(cached)  # into this request's session, without a read
    generation = login_cache.generation
    copy = _session_user_copy(claims["sid"], claims["sub"])
    if copy is None:
        raise Unauthenticated("This login has ended")
    g.session_id = claims["sid"]
    if seconds > 0:
        login_cache.put(claims["sid"], copy, seconds, generation)
    return _attach(copy)  # as a cached login is


@functools.cache
def _session_user_statement(of_user: bool):
    from .accounts.models import Household, LoginSession, User

    users, households, logins = User.__table__, Household.__table__, LoginSession.__table__
    statement = (
        select(*users.c, *[column.label(f"household__{column.key}") for column in households.c])
        .select_from(users.join(logins, logins.c.user_id == users.c.id)
                     .outerjoin(households, households.c.id == users.c.household_id))
        .where(logins.c.id == bindparam("session_id"), logins.c.revoked_at.is_(None))
    )
    return statement.where(logins.c.user_id == bindparam("user_id")) if of_user else statement


class Login(NamedTuple):
    """What the login cache keeps of a login: its user's row, its household's (or None) and a staff
    member's community rows (or None), as column values; immutable, shared by every thread."""

    user: dict
    household: dict | None
    staff_communities: tuple | None

    @property
    def id(self) -> str:
        return self.user["id"]

    @property
    def household_id(self) -> str | None:
        return self.user["household_id"]


def _session_user_copy(session_id: str, user_id: str | None = None) -> Login | None:
    """The login of a session that has not been revoked (and is `user_id`'s, if given), else None:
    one Core statement (two for community staff) read into the values the login cache keeps."""
    from .accounts.models import Household, StaffCommunity, User

    params = {"session_id": session_id} if user_id is None else {"session_id": session_id, "user_id": user_id}
    row = core(_session_user_statement(user_id is not None), params).first()
    if row is None:
        return None
    values = row._mapping
    household = None
    if values["household__id"] is not None:
        household = {column.key: values[f"household__{column.key}"] for column in Household.__table__.c}
    staff = None
    if values["role"] == "community_staff":  # the only role whose scope reads them
        staff_communities = StaffCommunity.__table__
        rows = core(select(staff_communities).where(staff_communities.c.user_id == values["id"]))
        staff = tuple(dict(r._mapping) for r in rows)
    return Login({column.key: values[column.key] for column in User.__table__.c}, household, staff)


def _attach(login: Login):
    """The login's user as an object of this request's session, with its household (and a staff
    member's communities), as if loaded: no read."""
    from .accounts.models import Household, StaffCommunity, User

    user = loaded(User, login.user)
    set_committed_value(user, "household", None if login.household is None else loaded(Household, login.household))
    if login.staff_communities is not None:
        set_committed_value(user, "staff_communities",
                            [loaded(StaffCommunity, values) for values in login.staff_communities])
    return user


def session_user(session_id: str):
    """The user of a login session that has not been revoked, else None, in this request's session:
    the staff console's cookie (always read; bearer tokens go through the login cache)."""
    copy = _session_user_copy(session_id)
    return None if copy is None else _attach(copy)


def current_user():
    """The authenticated user of this request (require_auth must have run)."""
    return g.current_user


def require_auth(*roles: str):
    """Authenticate the bearer token; with roles, also require one of them (else 403)."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = _load_user()
            if roles and user.role not in roles:
                raise Forbidden(f"This needs the role {' or '.join(roles)}")
            g.current_user = user
            return view(*args, **kwargs)

        docs = wrapper.__dict__.setdefault("_apidoc", {})
        docs.setdefault("manual_doc", {}).setdefault("security", [BEARER])
        return wrapper

    return decorator


def sign_request(secret: str, timestamp: str, method: str, path: str, body: bytes) -> str:
    """The integration signature: hex HMAC-SHA256 over timestamp, method, path and body hash.

    `path` is the request path, followed by "?" and the raw query string when there is one.
    """
    message = "\n".join([timestamp, method.upper(), path, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed_path() -> str:
    """What the signature of the current request covers as its path: the path and any query string."""
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def verify_signature(secrets: str | list[str], timestamp: str, signature: str, *,
                     skew: int = SIGNATURE_SKEW) -> tuple[str, int]:
    """Check X-Timestamp (±skew s) and X-Signature of the current request against any of `secrets`, else 401.

    Returns the signature in lower case (the key under which a repeat is recognised) and the
    timestamp in Unix seconds.
    """
    if not isinstance(timestamp, str) or not _UNIX_SECONDS.fullmatch(timestamp):  # not "1_0", "١٢", 10**400
        raise Unauthenticated("X-Timestamp must be Unix seconds")
    ts = int(timestamp)
    if abs(time.time() - ts) > skew:
        raise Unauthenticated("X-Timestamp is stale")
    given = (signature or "").lower()
    body = request.get_data()
    matches = False
    for secret in [secrets] if isinstance(secrets, str) else secrets:
        expected = sign_request(secret, timestamp, request.method, signed_path(), body)
        matches |= given.isascii() and hmac.compare_digest(expected, given)
    if not matches:
        raise Unauthenticated("X-Signature does not match")
    return given, ts
