"""Settings read from environment variables.

One Config; tests and scripts pass overrides to `create_app` instead of
subclassing. The safe behaviour is the default: only an explicit
`APP_ENV=development`, `demo` or `test` may run on the built-in secrets;
any other setting, or none, refuses to start without real ones.
"""
import os
import secrets
from datetime import timedelta
from pathlib import Path

DEV_SECRET = "dev-only-secret-change-me-0123456789"
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-0123456789"
BUILT_IN_SECRETS = (DEV_SECRET, DEV_JWT_SECRET)  # in the source: never a production value, for either setting
DEVELOPMENT_ENVS = ("development", "demo", "test")
MIN_SECRET_LENGTH = 32
INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


# Rate limits in flask-limiter notation ("60/minute", "10 per 15 minutes"); unset → the route's default.
LIMIT_VARIABLES = ("REGISTER_LIMIT", "REGISTER_PHONE_LIMIT", "LOGIN_LIMIT", "LOGIN_FAILURE_LIMIT",
                   "INVITE_FAILURE_LIMIT", "REDEMPTION_CODE_LIMIT", "CODE_PREVIEW_LIMIT")


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message names the variable."""


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _database_url() -> str:
    return driver_url(os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'songjiang.db'}")


def driver_url(url: str) -> str:
    """Heroku-style URLs and the plain driver name both mean psycopg 3 here."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def is_in_memory(database_url: str) -> bool:
    """An SQLite database that lives and dies with the process."""
    return database_url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in database_url


def load_config() -> dict:
    """Read every setting from the environment; secrets are settled by `settle_secrets`."""
    env = (os.environ.get("APP_ENV") or "production").strip().lower()
    redis_url = os.environ.get("REDIS_URL") or None
    database_url = _database_url()
    return {
        "APP_ENV": env,
        "SECRET_KEY": os.environ.get("SECRET_KEY") or None,
        "JWT_SECRET_KEY": os.environ.get("JWT_SECRET_KEY") or None,
        "DATA_KEYS": os.environ.get("DATA_KEYS") or None,  # see app/keyring.py
        "JWT_ACCESS_TTL": timedelta(seconds=_int("JWT_ACCESS_TTL_SECONDS", 15 * 60)),
        "JWT_REFRESH_TTL": timedelta(seconds=_int("JWT_REFRESH_TTL_SECONDS", 30 * 24 * 3600)),
        # Who is behind a login, kept per process; another worker's revocation takes effect within it. 0: off.
        "AUTH_CACHE_SECONDS": _int("AUTH_CACHE_SECONDS", 5),
        # Which factor set is in force on a day, kept per process; another worker's publication counts within it.
        "FACTOR_SET_CACHE_SECONDS": _int("FACTOR_SET_CACHE_SECONDS", 5),
        "SQLALCHEMY_DATABASE_URI": database_url,
        # No pool_pre_ping (a round trip per request): app/extensions.py drops a pooled connection the server
        # has closed without asking it, and connections are renewed before any idle timeout could end them.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_recycle": 1800},
        # A streaming replica for reads that tolerate its lag: district exports (app/replica.py).
        "DATABASE_READ_URL": driver_url(os.environ["DATABASE_READ_URL"]) if os.environ.get("DATABASE_READ_URL") else None,
        "REDIS_URL": redis_url,
        "JOBS_INLINE": _bool("JOBS_INLINE", redis_url is None),
        # A running job not renewed within the lease is abandoned; workers sweep lost and abandoned jobs.
        "JOB_LEASE_SECONDS": _int("JOB_LEASE_SECONDS", 600),
        "JOB_TIMEOUT_SECONDS": _int("JOB_TIMEOUT_SECONDS", 3600),  # RQ stops a job running longer
        "JOB_REQUEUE_AFTER_SECONDS": _int("JOB_REQUEUE_AFTER_SECONDS", 60),
        "JOB_SWEEP_SECONDS": _int("JOB_SWEEP_SECONDS", 60),
        "RATELIMIT_ENABLED": _bool("RATELIMIT_ENABLED", True),
        "RATELIMIT_STORAGE_URI": redis_url,  # None: settle_limit_storage picks the database
        "RATELIMIT_KEY_PREFIX": os.environ.get("RATELIMIT_KEY_PREFIX", "sjc"),
        "RATELIMIT_HEADERS_ENABLED": True,
        # Redis down: each process keeps counting every limit in memory until Redis answers again,
        # and a storage error never fails a request (README, "When Redis or the database is down").
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 2 * 1024 * 1024),
        "PASSWORD_HASH_METHOD": os.environ.get("PASSWORD_HASH_METHOD", "scrypt"),
        "REDEMPTION_CODE_TTL_SECONDS": _int("REDEMPTION_CODE_TTL_SECONDS", 120),
        "VOID_WINDOW_SECONDS": _int("VOID_WINDOW_SECONDS", 24 * 3600),
        "POINTS_EXPIRY_MONTHS": _int("POINTS_EXPIRY_MONTHS", 24),
        "REDEMPTION_CODES_LIVE_MAX": _int("REDEMPTION_CODES_LIVE_MAX", 10),
        "ANOMALY_REDEMPTIONS_PER_DAY": _int("ANOMALY_REDEMPTIONS_PER_DAY", 3),
        "EXPORT_DIR": os.environ.get("EXPORT_DIR") or str(INSTANCE_DIR / "exports"),
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        # flask-smorest / OpenAPI
        "API_TITLE": "Songjiang Carbon Credit API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        # Served by the app from the pinned swagger-ui-bundle package (app/openapi.py): works offline.
        "OPENAPI_SWAGGER_UI_URL": "/api/v1/docs/assets/",
        "OPENAPI_SWAGGER_UI_CONFIG": {"validatorUrl": None},  # no badge fetched from swagger.io
        "JSON_SORT_KEYS": False,
        **{name: os.environ[name] for name in LIMIT_VARIABLES if os.environ.get(name)},
    }


def settle_limit_storage(config: dict) -> None:
    """Rate-limit counters that every worker shares: Redis when configured, else the database.

    Only a database that lives in this one process may count in its memory.
    """
    if not config.get("RATELIMIT_STORAGE_URI"):
        in_memory = is_in_memory(config.get("SQLALCHEMY_DATABASE_URI", ""))
        config["RATELIMIT_STORAGE_URI"] = "memory://" if in_memory else "sjc+database://"


def missing_secret_source(config: dict) -> str | None:
    """What stands in for a secret or key that is not set: the rule for every one of them.

    "built-in" under APP_ENV development, demo or test; "random" (made for this process) on an
    in-memory database, where nothing outlives the process; None anywhere else: refuse to start.
    """
    if config.get("APP_ENV") in DEVELOPMENT_ENVS:
        return "built-in"
    if is_in_memory(config.get("SQLALCHEMY_DATABASE_URI", "")):
        return "random"
    return None


def settle_secrets(config: dict) -> None:
    """Fill in or refuse SECRET_KEY and JWT_SECRET_KEY, in place.

    A value that is set must be random, at least 32 characters and not a built-in one, except under
    APP_ENV development, demo or test; one that is not set follows `missing_secret_source`.
    """
    source = missing_secret_source(config)
    for name, builtin in (("SECRET_KEY", DEV_SECRET), ("JWT_SECRET_KEY", DEV_JWT_SECRET)):
        value = config.get(name)
        if source == "built-in":
            config[name] = value or builtin
        elif value and value not in BUILT_IN_SECRETS and len(value) >= MIN_SECRET_LENGTH:
            continue
        elif not value and source == "random":
            config[name] = secrets.token_urlsafe(48)
        else:
            raise ConfigError(
                f"{name} must be set to a random value of at least {MIN_SECRET_LENGTH} characters, not a built-in one "
                f"(APP_ENV is {config.get('APP_ENV')!r}; only APP_ENV=development, demo or test may use the "
                "built-in secrets)"
            )
