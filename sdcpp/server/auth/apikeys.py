"""API keys: ``sdk_<prefix>_<secret>``, shown once at creation, stored as a SHA-256 digest.

The prefix (8 random hex digits) is a lookup handle stored in clear, so a request finds its row
with one indexed read; the whole key is then hashed and compared with ``secrets.compare_digest``.
With 256 random bits a plain SHA-256 is enough (no password stretching needed: nothing to guess).
"""

from __future__ import annotations

import hashlib
import re
import secrets

KEY_PATTERN = re.compile(r"sdk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")


def new_key() -> tuple[str, str, str]:
    """(key, prefix, digest): hand ``key`` to the user, store ``prefix`` and ``digest``."""
    prefix = secrets.token_hex(4)
    key = f"sdk_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, digest(key)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str | None:
    match = KEY_PATTERN.fullmatch(key)
    return match.group(1) if match else None


def matches(key: str, stored_digest: str) -> bool:
    return secrets.compare_digest(digest(key), stored_digest)
