"""API keys: `kd_<8 hex>_<43 random characters>`, 256 random bits behind a visible prefix; only the sha256 is stored.

A slow password hash buys nothing for a secret that cannot be guessed; the key is found by its prefix and its hash
compared in constant time (app/http/auth.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_SHAPE = re.compile(r"^(kd_[0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
ROLES = ("user", "admin")


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str, str]:
    """(the key, to show once; its visible prefix; its sha256, to store)."""
    prefix = f"kd_{secrets.token_hex(4)}"
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, key_sha256(key)
