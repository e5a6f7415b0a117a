"""User and API key management shared by ``sdcpp users|keys`` and the admin endpoints."""

from __future__ import annotations

from ...errors import InvalidArgument
from . import apikeys
from .passwords import hash_password
from .store import ApiKey, AuthQueries, UnknownUser, User, check_username


def add_user(store: AuthQueries, username: str, role: str, password: str | None) -> User:
    check_username(username)
    hashed = hash_password(password) if password is not None else None
    return store.add_user(username, role=role, password_hash=hashed, source="local")


def set_password(store: AuthQueries, username: str, password: str) -> User:
    return store.set_password(username, hash_password(password))


def get_user(store: AuthQueries, username: str) -> User:
    user = store.user_by_name(username)
    if user is None:
        raise UnknownUser(f"no user {username!r}")
    return user


def create_key(store: AuthQueries, username: str, name: str) -> tuple[str, ApiKey]:
    """A new key for ``username``: (the key itself, to show once; its stored record)."""
    user = get_user(store, username)
    if not user.active:
        raise InvalidArgument(f"user {username!r} is disabled")
    name = name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        raise InvalidArgument("key names are 1-100 printable characters")
    key, prefix, digest = apikeys.new_key()
    return key, store.add_key(user.id, name, prefix, digest)


def find_key(store: AuthQueries, key_id: str) -> ApiKey:
    """A key by its id or its prefix (what ``keys list`` shows)."""
    record = store.key_by_id(key_id) or store.key_by_prefix(key_id)
    if record is None:
        raise InvalidArgument(f"no API key {key_id!r}")
    return record
