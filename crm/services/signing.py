"""Signed tokens for the links crmbot sends out (a digest's or campaign's unsubscribe link, a
digest's link to a customer, a survey's rating links).

A token is the payload, a dot and the first 16 bytes of the payload's HMAC-SHA256 under the
team's secret, in URL-safe base64 without padding. Whoever holds a token can read its payload;
only crmbot can make one that verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

_MAC_BYTES = 16


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def sign(secret: str, payload: str) -> str:
    """The token for ``payload``."""
    raw = payload.encode()
    return base64.urlsafe_b64encode(raw + b"." + _mac(secret, raw)).decode().rstrip("=")


def verify(secret: str, token: str) -> str | None:
    """The payload of a token made by :func:`sign` with ``secret``; None when the token was
    altered, made with another secret or is not a token at all."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, binascii.Error):
        return None
    payload, dot, mac = (
        raw[: -_MAC_BYTES - 1],
        raw[-_MAC_BYTES - 1 : -_MAC_BYTES],
        raw[-_MAC_BYTES:],
    )
    if dot != b"." or not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return None
