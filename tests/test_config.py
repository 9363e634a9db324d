"""Settings from the environment; production refuses weak secrets."""
import base64

import pytest

from app import create_app
from app.config import DEV_JWT_SECRET, DEV_SECRET, ConfigError, load_config
from app.extensions import db
from tests import conftest

STRONG = "k" * 31 + "!"  # 32 characters
STRONG_JWT = "j" * 40


@pytest.fixture
def production(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.setenv("JWT_SECRET_KEY", STRONG_JWT)
    monkeypatch.setenv("DATA_KEYS", "k1:" + base64.b64encode(b"d" * 32).decode())
    return monkeypatch


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_a_missing_secret(production, name):
    production.delenv(name)

    with pytest.raises(ConfigError, match=name):
        create_app(conftest.test_config())


@pytest.mark.parametrize("name, default", [("SECRET_KEY", DEV_SECRET), ("JWT_SECRET_KEY", DEV_JWT_SECRET)])
def test_production_refuses_the_development_default(production, name, default):
    production.setenv(name, default)

    with pytest.raises(ConfigError, match=name):
        create_app(conftest.test_config())


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_a_short_secret(production, name):
    production.setenv(name, "s" * 31)

    with pytest.raises(ConfigError, match=name):
        create_app(conftest.test_config())


@pytest.mark.parametrize("name", ["SECRET_KEY", "JWT_SECRET_KEY"])
def test_production_refuses_an_empty_secret(production, name):
    production.setenv(name, "")

    with pytest.raises(ConfigError, match=name):
        create_app(conftest.test_config())


def test_production_starts_with_strong_secrets(production):
    application = create_app(conftest.test_config())

    try:
        assert application.config["APP_ENV"] == "production"
        assert application.config["SECRET_KEY"] == STRONG
        assert application.config["JWT_SECRET_KEY"] == STRONG_JWT
        response = application.test_client().get("/api/v1/openapi.json")  # no database: the test holds it
        assert response.status_code == 200
    finally:
        with application.app_context():
            db.engine.dispose()


def test_development_starts_with_the_default_secrets(monkeypatch):
    for name in ("APP_ENV", "SECRET_KEY", "JWT_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)

    config = load_config()

    assert config["APP_ENV"] == "development"
    assert config["SECRET_KEY"] == DEV_SECRET


def test_database_url_is_normalised_to_psycopg(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.example/sj")

    assert load_config()["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db.example/sj"


def test_database_defaults_to_an_sqlite_file(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)

    assert load_config()["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")


def test_a_non_integer_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("JWT_ACCESS_TTL_SECONDS", "fifteen")

    with pytest.raises(ConfigError, match="JWT_ACCESS_TTL_SECONDS"):
        load_config()


def test_token_lifetimes_default_to_the_contract(monkeypatch):
    monkeypatch.delenv("JWT_ACCESS_TTL_SECONDS", raising=False)
    monkeypatch.delenv("JWT_REFRESH_TTL_SECONDS", raising=False)

    config = load_config()

    assert config["JWT_ACCESS_TTL"].total_seconds() == 15 * 60
    assert config["JWT_REFRESH_TTL"].total_seconds() == 30 * 24 * 3600


@pytest.mark.parametrize("raw, expected", [("false", False), ("0", False), ("true", True), ("", True)])
def test_ratelimit_enabled_reads_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("RATELIMIT_ENABLED", raw)

    assert load_config()["RATELIMIT_ENABLED"] is expected


def test_redis_url_turns_on_queued_jobs_and_shared_rate_limits(monkeypatch):
    monkeypatch.delenv("JOBS_INLINE", raising=False)
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/0")

    config = load_config()

    assert config["JOBS_INLINE"] is False
    assert config["RATELIMIT_STORAGE_URI"] == "redis://cache.example:6379/0"


def test_without_redis_jobs_run_inline(monkeypatch):
    monkeypatch.delenv("JOBS_INLINE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)

    config = load_config()

    assert config["JOBS_INLINE"] is True
    assert config["RATELIMIT_STORAGE_URI"] == "memory://"
