"""Data-encryption keys: secrets kept at rest under AES-256-GCM, each ciphertext naming its key.

DATA_KEYS lists the keys as `id:base64-of-32-bytes`, comma-separated, e.g.
`k2026b:…,k2026a:…`. The first key encrypts; every listed key decrypts, so a new
key goes first, `flask --app app keys rotate` re-encrypts what is stored under the
others, and the old keys can then be removed. A ciphertext is `key-id:` followed by
the urlsafe base64 of nonce + ciphertext; its `purpose` (say
"integration-secret:<id>") is authenticated with it, so a ciphertext copied to
another row does not decrypt there.

Without DATA_KEYS only a development environment runs, on a built-in key that
anyone can read here. Imports nothing of the features.
"""
import base64
import binascii
import functools
import hashlib
import logging
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

from .config import ConfigError, missing_secret_source
from .errors import AppError

log = logging.getLogger("app.keyring")

DEV_DATA_KEYS = "dev:" + base64.b64encode(hashlib.sha256(b"songjiang-carbon development data key").digest()).decode()
KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,32}")
NONCE_BYTES = 12
GENERATE = 'python -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"'


class DataKeyUnavailable(AppError):
    """A stored secret names a key that DATA_KEYS no longer holds, or does not decrypt under it."""

    status, code, title = 503, "data_key_unavailable", "A stored secret cannot be read with the configured keys"


@dataclass(frozen=True)
class Keyring:
    """Keys by id, in DATA_KEYS order; the first one encrypts."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def active_id(self) -> str:
        return self.keys[0][0]

    def encrypt(self, plaintext: str, purpose: str) -> str:
        """`plaintext` under the active key, bound to `purpose`."""
        key_id, key = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode(), purpose.encode())
        return f"{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, token: str, purpose: str) -> str:
        """The plaintext of a ciphertext made by `encrypt` with the same purpose, under any listed key."""
        key_id, _, payload = token.partition(":")
        key = dict(self.keys).get(key_id)
        if key is None:
            log.error("no data key %r in DATA_KEYS (needed for %s)", key_id, purpose.partition(":")[0])
            raise DataKeyUnavailable()
        try:
            raw = base64.urlsafe_b64decode(payload.encode())
            return AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], purpose.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            log.error("a ciphertext under data key %r does not decrypt (%s)", key_id, purpose.partition(":")[0])
            raise DataKeyUnavailable() from None

    def reencrypt(self, token: str, purpose: str) -> str:
        """The same plaintext under the active key (the token itself if it already is)."""
        if key_id_of(token) == self.active_id:
            return token
        return self.encrypt(self.decrypt(token, purpose), purpose)


def key_id_of(token: str) -> str:
    return token.partition(":")[0]


@functools.lru_cache(maxsize=8)
def parse_data_keys(text: str) -> Keyring:
    """A Keyring from a DATA_KEYS value; ConfigError names what is wrong (never a key)."""
    keys = []
    for number, item in enumerate((part.strip() for part in text.split(",")), start=1):
        if not item:
            continue
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not KEY_ID.fullmatch(key_id):
            raise ConfigError(f"DATA_KEYS entry {number} must be id:base64-key, the id of letters, digits, "
                              "'.', '_' or '-' (at most 32)")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ConfigError(f"DATA_KEYS key {key_id} must be 32 random bytes in base64; generate one with {GENERATE}")
        if key_id in dict(keys):
            raise ConfigError(f"DATA_KEYS names the key {key_id} twice")
        keys.append((key_id, key))
    if not keys:
        raise ConfigError("DATA_KEYS holds no key")
    return Keyring(tuple(keys))


def check_data_keys(config: dict) -> None:
    """Refuse to start on a malformed DATA_KEYS, or without one outside development, demo and test.

    An in-memory database (nothing outlives the process) gets a random key made for this process.
    """
    source = missing_secret_source(config)
    if config.get("DATA_KEYS"):
        ring = parse_data_keys(config["DATA_KEYS"])
        built_in = parse_data_keys(DEV_DATA_KEYS).keys[0][1]
        if source != "built-in" and any(key == built_in for _, key in ring.keys):
            raise ConfigError("DATA_KEYS holds the built-in development key: it is in the source, never a real key "
                              f"(generate one with {GENERATE})")
    elif source == "built-in":
        return
    elif source == "random":
        config["DATA_KEYS"] = "process:" + base64.b64encode(os.urandom(32)).decode()
    else:
        raise ConfigError(
            "DATA_KEYS must be set outside development: the keys that encrypt integration secrets and "
            f"redemption codes at rest, as id:base64-of-32-bytes (generate a key with {GENERATE})"
        )


def keyring() -> Keyring:
    """The app's keyring: DATA_KEYS, or the built-in development key when it is unset."""
    return parse_data_keys(current_app.config.get("DATA_KEYS") or DEV_DATA_KEYS)


def encrypt(plaintext: str, purpose: str) -> str:
    return keyring().encrypt(plaintext, purpose)


def decrypt(token: str, purpose: str) -> str:
    return keyring().decrypt(token, purpose)
