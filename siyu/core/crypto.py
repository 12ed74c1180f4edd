"""Protection of personal identifiers (phone numbers, unionids) at rest.

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from
``SIYU_PII_KEY``, and looked up through a keyed hash (HMAC-SHA256) so that equality
search works without decrypting every row and without a plain hash that a rainbow
table could reverse.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    digest = hashlib.sha256(b"siyu-pii-encryption:" + key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _key() -> str:
    return str(settings.SIYU_PII_KEY)


def encrypt(value: str) -> str:
    if not value:
        return ""
    return _fernet(_key()).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet(_key()).decrypt(token.encode()).decode()
    except InvalidToken:
        return ""


def lookup_hash(value: str) -> str:
    if not value:
        return ""
    mac = hmac.new(hashlib.sha256(b"siyu-pii-lookup:" + _key().encode()).digest(), value.encode(), hashlib.sha256)
    return mac.hexdigest()
