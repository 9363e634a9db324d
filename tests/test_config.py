"""Settings from the environment; anything but an explicit development setting refuses weak secrets."""
import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import create_app
from app.config import DEV_JWT_SECRET, DEV_SECRET, ConfigError, load_config, settle_limit_storage
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


@pytest.mark.parametrize("env", ["development", "demo", "test"])
def test_an_explicit_development_setting_starts_with_the_built_in_secrets(monkeypatch, env):
    monkeypatch.setenv("APP_ENV", env)
    for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)

    application = create_app(conftest.test_config())

    assert application.config["SECRET_KEY"] == DEV_SECRET
    assert application.config["JWT_SECRET_KEY"] == DEV_JWT_SECRET


@pytest.mark.parametrize("env", [None, "", "staging", "prod"])
def test_without_an_explicit_development_setting_built_in_secrets_refuse_to_start(monkeypatch, env):
    if env is None:
        monkeypatch.delenv("APP_ENV", raising=False)
    else:
        monkeypatch.setenv("APP_ENV", env)
    for name in ("SECRET_KEY", "JWT_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(ConfigError, match="SECRET_KEY must be set .*only APP_ENV=development, demo or test"):
        create_app(conftest.test_config())


def test_an_unset_app_env_means_production(monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)

    assert load_config()["APP_ENV"] == "production"


def test_an_in_memory_database_without_secrets_gets_random_ones_never_the_built_in(monkeypatch):
    monkeypatch.delenv("APP_ENV", raising=False)
    for name in ("SECRET_KEY", "JWT_SECRET_KEY", "DATA_KEYS"):
        monkeypatch.delenv(name, raising=False)

    first = create_app({**conftest.test_config(), "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    second = create_app({**conftest.test_config(), "SQLALCHEMY_DATABASE_URI": "sqlite://"})

    assert first.config["SECRET_KEY"] not in (DEV_SECRET, second.config["SECRET_KEY"])
    assert first.config["JWT_SECRET_KEY"] not in (DEV_JWT_SECRET, second.config["JWT_SECRET_KEY"])
    assert len(first.config["JWT_SECRET_KEY"]) >= 32
    assert first.config["DATA_KEYS"] and first.config["DATA_KEYS"] != second.config["DATA_KEYS"]


def test_the_procfile_web_process_refuses_to_start_without_secrets(tmp_path):
    """A platform deploy from the Procfile (no APP_ENV, no secrets) stops with a clear message."""
    root = Path(__file__).resolve().parent.parent
    web = next(line for line in (root / "Procfile").read_text().splitlines() if line.startswith("web:"))
    assert "APP_ENV" not in web
    env = {k: v for k, v in os.environ.items() if k not in ("APP_ENV", "SECRET_KEY", "JWT_SECRET_KEY")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'prod.db'}"

    result = subprocess.run([sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", "127.0.0.1:0",
                             "app:create_app()"], cwd=root, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert "SECRET_KEY must be set to a random value of at least 32 characters" in result.stderr


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
    settle_limit_storage(config)
    assert config["RATELIMIT_STORAGE_URI"] == "sjc+database://"  # shared by every worker (app/ratelimit.py)


def test_only_a_database_that_lives_in_one_process_counts_limits_in_memory(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    config = load_config()

    settle_limit_storage(config)

    assert config["RATELIMIT_STORAGE_URI"] == "memory://"


@pytest.mark.parametrize("name, other_built_in", [("SECRET_KEY", DEV_JWT_SECRET), ("JWT_SECRET_KEY", DEV_SECRET)])
def test_production_refuses_the_other_settings_built_in_value_too(production, name, other_built_in):
    production.setenv(name, other_built_in)

    with pytest.raises(ConfigError, match=name):
        create_app(conftest.test_config())


def test_production_refuses_the_built_in_data_key(production):
    from app.keyring import DEV_DATA_KEYS

    production.setenv("DATA_KEYS", "k9:" + base64.b64encode(b"e" * 32).decode() + "," + DEV_DATA_KEYS)

    with pytest.raises(ConfigError, match="DATA_KEYS holds the built-in development key"):
        create_app(conftest.test_config())
