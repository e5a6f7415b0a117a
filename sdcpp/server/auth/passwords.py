"""Password hashing with Argon2id (argon2-cffi's defaults: RFC 9106's low-memory profile).

Hashing costs tens of milliseconds and 64 MiB by design, so callers run it off the event loop,
and ``verify`` against a user that doesn't exist still spends the same work on a dummy hash:
the answer time must not tell which user names exist.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ...errors import InvalidArgument

MIN_LENGTH = 8
MAX_LENGTH = 1024  # argon2 takes any length; a cap keeps a huge body from costing CPU


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    return _hasher().hash("not a password: spends the time of a real check")


def check_password(password: str) -> str:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise InvalidArgument(f"passwords are {MIN_LENGTH} to {MAX_LENGTH} characters long")
    return password


def hash_password(password: str) -> str:
    return _hasher().hash(check_password(password))


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; with no hash (unknown user), False after equal work."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        if password_hash is None:
            _hasher().verify(_dummy_hash(), password)
            return False
        return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
