"""Encryption at rest: the keyring behind sealed columns.

``CRM_ENCRYPTION_KEYS`` is a comma-separated list of Fernet keys (``crmbot keys generate``
makes one). The first seals every value written; all of them open values. A sealed value is
``enc1:<key id>:<Fernet token>``; the key id (8 hex digits of a SHA-256 of the key) says which
key sealed it, so rotation finds what is not yet under the first key with a plain
``LIKE``, and a value sealed with a key no longer listed is named in the error. Fernet
(AES-128-CBC with HMAC-SHA256, from ``cryptography``) authenticates every value: a changed
byte is refused, never read as other text.

``configure`` is called once at start-up with the settings; without keys values are written
as they are and the embedded default runs as before.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from crm.models.base import SEAL_PREFIX, SealedValueError, install_cipher
from crm.services.errors import CRMError

logger = logging.getLogger(__name__)

_PREFIX = SEAL_PREFIX.encode("ascii")


class KeyConfigError(CRMError):
    """A key in CRM_ENCRYPTION_KEYS that is not a Fernet key."""


def key_id(key: str | bytes) -> str:
    raw = key.encode("ascii") if isinstance(key, str) else key
    return hashlib.sha256(raw.strip()).hexdigest()[:8]


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def parse_keys(value: Any) -> list[str]:
    """The keys of a CRM_ENCRYPTION_KEYS value (a SecretStr, a string or a list)."""
    if value is None:
        return []
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    items = value.split(",") if isinstance(value, str) else list(value)
    return [k.strip() for k in items if k and k.strip()]


class Keyring:
    """The keys: the first seals, all open."""

    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise KeyConfigError("no encryption keys given")
        self._fernets: dict[str, Fernet] = {}
        for position, key in enumerate(keys, 1):
            try:
                fernet = Fernet(key.encode("ascii"))
            except (ValueError, UnicodeEncodeError) as exc:
                raise KeyConfigError(
                    f"CRM_ENCRYPTION_KEYS: key {position} is not a Fernet key (32 bytes, "
                    "url-safe base64; `crmbot keys generate` makes one)"
                ) from exc
            self._fernets.setdefault(key_id(key), fernet)
        self.primary = key_id(keys[0])
        self.ids = list(self._fernets)
        self._head = _PREFIX + self.primary.encode("ascii") + b":"

    def seal(self, data: bytes) -> bytes:
        return self._head + self._fernets[self.primary].encrypt(data)

    def open(self, sealed: bytes) -> bytes:
        kid, token = (
            sealed[len(_PREFIX) : len(_PREFIX) + 8].decode("ascii"),
            sealed[len(_PREFIX) + 9 :],
        )
        fernet = self._fernets.get(kid)
        if fernet is None:
            raise SealedValueError(
                f"this value was encrypted with key {kid}, which CRM_ENCRYPTION_KEYS does not "
                f"hold (it holds {', '.join(self.ids)}): add that key back, after the first"
            )
        try:
            return fernet.decrypt(token)
        except InvalidToken as exc:
            raise SealedValueError(
                f"an encrypted value under key {kid} fails its integrity check (changed or cut)"
            ) from exc

    def sealed_by(self, stored: str | bytes) -> str | None:
        """The key id a stored value is sealed with (None: stored plain)."""
        head = stored[: len(_PREFIX) + 8]
        text = head.decode("ascii", "replace") if isinstance(head, bytes) else head
        return text[len(SEAL_PREFIX) :] if text.startswith(SEAL_PREFIX) else None


_keyring: Keyring | None = None
_index_key: str | None = None


def configure(settings: Any) -> Keyring | None:
    """Install the keyring of these settings for sealed columns (None: values are stored
    plain) and remember ``CRM_HMAC_KEY`` for keyed hashes. Called once at start-up."""
    global _keyring, _index_key
    keys = parse_keys(getattr(settings, "encryption_keys", None))
    _keyring = Keyring(keys) if keys else None
    install_cipher(_keyring)
    secret = getattr(settings, "hmac_key", None)
    if secret is not None and hasattr(secret, "get_secret_value"):
        secret = secret.get_secret_value()
    _index_key = secret or None
    return _keyring


def use_keys(keys: list[str] | None, *, hmac_key: str | None = None) -> Keyring | None:
    """Install these keys directly (tools and tests); None or [] stores values plain."""
    global _keyring, _index_key
    _keyring = Keyring(keys) if keys else None
    install_cipher(_keyring)
    _index_key = hmac_key
    return _keyring


@contextmanager
def plain() -> Iterator[None]:
    """Within: values are written as they are (as with no keys set); then the keys as before."""
    global _keyring
    saved = _keyring
    _keyring = None
    install_cipher(None)
    try:
        yield
    finally:
        _keyring = saved
        install_cipher(saved)


def keyring() -> Keyring | None:
    return _keyring


def configured_index_key() -> str | None:
    """``CRM_HMAC_KEY`` as configured (None: the store's own key is used)."""
    return _index_key


NOT_ENCRYPTED_WARNING = (
    "data is stored unencrypted: set CRM_ENCRYPTION_KEYS (`crmbot keys generate` makes a "
    "key) and run `crmbot keys rotate` to encrypt what is stored"
)


def warn_if_plain() -> bool:
    """Log that data is not encrypted when no keys are set; True when it said so."""
    if _keyring is None:
        logger.warning(NOT_ENCRYPTED_WARNING)
        return True
    return False
