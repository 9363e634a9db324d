"""Data keys: AES-256-GCM ciphertexts that name their key; production refuses to start without DATA_KEYS."""
import base64
import os

import pytest

from app import create_app, keyring
from app.config import ConfigError
from tests import conftest

STRONG, STRONG_JWT = "k" * 31 + "!", "j" * 40  # secrets production accepts


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def production(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", STRONG)
    monkeypatch.setenv("JWT_SECRET_KEY", STRONG_JWT)
    monkeypatch.delenv("DATA_KEYS", raising=False)
    return monkeypatch


def test_production_without_data_keys_refuses_to_start(production):
    with pytest.raises(ConfigError, match="DATA_KEYS must be set"):
        create_app(conftest.test_config())


def test_production_starts_with_data_keys_and_encrypts_under_the_first(production):
    production.setenv("DATA_KEYS", f"k2026b:{new_key()},k2026a:{new_key()}")

    application = create_app(conftest.test_config())

    with application.app_context():
        token = keyring.encrypt("0123", "test:1")
        assert token.startswith("k2026b:") and "0123" not in token
        assert keyring.decrypt(token, "test:1") == "0123"


@pytest.mark.parametrize("value, message", [
    ("k1", "entry 1 must be id:base64-key"),
    ("k 1:" + base64.b64encode(b"x" * 32).decode(), "entry 1 must be id:base64-key"),
    ("k1:" + base64.b64encode(b"x" * 16).decode(), "k1 must be 32 random bytes"),
    ("k1:not base64!", "k1 must be 32 random bytes"),
    ("k1:{0},k1:{0}", "names the key k1 twice"),
    (" , ", "holds no key"),
])
def test_a_malformed_data_keys_refuses_to_start_in_any_environment(monkeypatch, value, message):
    monkeypatch.setenv("DATA_KEYS", value.format(new_key()))

    with pytest.raises(ConfigError, match=message):
        create_app(conftest.test_config())


@pytest.mark.parametrize("env", ["development", "demo", "test"])
def test_development_runs_on_the_built_in_key_without_data_keys(env):
    config = {"APP_ENV": env, "DATA_KEYS": None}

    keyring.check_data_keys(config)  # no error

    assert keyring.parse_data_keys(keyring.DEV_DATA_KEYS).active_id == "dev"


def test_every_listed_key_decrypts_and_the_first_encrypts():
    a_key, b_key = new_key(), new_key()
    old, new = keyring.parse_data_keys(f"a:{a_key}"), keyring.parse_data_keys(f"b:{b_key},a:{a_key}")
    token = old.encrypt("secret digits", "code:1")

    moved = new.reencrypt(token, "code:1")

    assert keyring.key_id_of(token) == "a" and keyring.key_id_of(moved) == "b"
    assert new.decrypt(token, "code:1") == new.decrypt(moved, "code:1") == "secret digits"
    assert new.reencrypt(moved, "code:1") == moved


def test_a_ciphertext_needs_its_own_key_and_purpose():
    ring = keyring.parse_data_keys(f"a:{new_key()}")
    token = ring.encrypt("secret", "integration-secret:1")
    other = keyring.parse_data_keys(f"b:{new_key()}")
    same_id_other_bytes = keyring.parse_data_keys(f"a:{new_key()}")

    for attempt in (lambda: other.decrypt(token, "integration-secret:1"),
                    lambda: same_id_other_bytes.decrypt(token, "integration-secret:1"),
                    lambda: ring.decrypt(token, "integration-secret:2"),
                    lambda: ring.decrypt(token[:-4] + "AAAA", "integration-secret:1")):
        with pytest.raises(keyring.DataKeyUnavailable):
            attempt()
