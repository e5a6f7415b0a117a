"""Users, API keys and revoked token ids: three tables in the server's SQLite file (``sdcpp.db``).

The server and the ``sdcpp users`` / ``sdcpp keys`` commands open the same file at the same time;
WAL mode and ``BEGIN IMMEDIATE`` writes under a busy timeout serialise them (as ``JobStore``
does). The DDL keeps to the portable subset ``store.py`` describes, so it runs on PostgreSQL too.

Usernames are one namespace whatever proved them (a local password, PAM, the unix socket): the
row is where role and the active flag live, read again on every request, so a demotion, a
disabled account or a deleted one takes effect at once, whatever token the client still holds.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import InvalidArgument
from ..sqlite import SqliteStore, SqlStore

if TYPE_CHECKING:
    from ..settings import Settings

ROLES = ("user", "admin")  # stored roles; "guest" is what an anonymous request gets
SOURCES = ("local", "pam", "unix")
# POSIX-portable user names (what useradd accepts by default), so the same name can come from
# PAM or a unix peer and can never smuggle anything into a log line or a query.
USERNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    source        TEXT NOT NULL,
    password_hash TEXT,
    active        INTEGER NOT NULL DEFAULT 1,
    tokens_after  BIGINT NOT NULL DEFAULT 0,
    created_at    DOUBLE PRECISION NOT NULL,
    updated_at    DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL UNIQUE,
    digest       TEXT NOT NULL,
    created_at   DOUBLE PRECISION NOT NULL,
    last_used_at DOUBLE PRECISION,
    revoked_at   DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS revoked_tokens_expiry ON revoked_tokens (expires_at);
"""

_USER_COLUMNS = "id, username, role, source, password_hash, active, tokens_after, created_at"
_KEY_COLUMNS = "k.id, k.user_id, u.username, k.name, k.prefix, k.digest, k.created_at, " + (
    "k.last_used_at, k.revoked_at"
)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    role: str
    source: str
    password_hash: str | None
    active: bool
    tokens_after: int  # tokens issued before this second are void (password change)
    created_at: float

    def public(self) -> dict[str, Any]:
        """What the API and the CLI show: never the password hash."""
        return {
            "id": self.id,
            "username": self.username,
            "role": self.role,
            "source": self.source,
            "active": self.active,
            "created_at": self.created_at,
        }


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    user_id: str
    username: str
    name: str
    prefix: str
    digest: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "user": self.username,
            "prefix": self.prefix,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked": self.revoked_at is not None,
            "revoked_at": self.revoked_at,
        }


class UserExists(InvalidArgument):
    pass


class UnknownUser(InvalidArgument):
    pass


def check_username(name: str) -> str:
    if not USERNAME.fullmatch(name):
        raise InvalidArgument(
            "user names are 1-64 characters: letters, digits, '_', '.', '-' "
            "(not starting with a digit, '.' or '-')"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidArgument(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    return role


class AuthQueries(SqlStore):
    """Users, API keys and revoked token ids, in the job store's database: the queries, for
    SQLite (``AuthStore``) and PostgreSQL (``pgstore.PgAuthStore``) alike."""

    NAME = "auth store"

    def _migrate(self) -> None:
        with self._write() as cur:
            self._serialize(cur)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)

    # -- users -------------------------------------------------------------------------------
    @staticmethod
    def _user(row: Sequence[Any]) -> User:
        id_, name, role, source, hashed, active, after, created = row
        return User(id_, name, role, source, hashed, bool(active), int(after), created)

    def add_user(
        self,
        username: str,
        *,
        role: str = "user",
        password_hash: str | None = None,
        source: str = "local",
    ) -> User:
        check_username(username)
        check_role(role)
        if source not in SOURCES:
            raise InvalidArgument(f"unknown user source {source!r}")
        now = self._clock()
        user_id = uuid.uuid4().hex
        with self._write() as cur:
            self._serialize(cur)  # the check and the insert as one step on PostgreSQL too
            if cur.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise UserExists(f"user {username!r} exists already")
            cur.execute(
                "INSERT INTO users (id, username, role, source, password_hash, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, username, role, source, password_hash, now, now),
            )
        user = self.user_by_id(user_id)
        assert user is not None
        return user

    def ensure_user(self, username: str, *, role: str, source: str) -> User:
        """The row for an identity proven elsewhere (PAM, unix peer), created on first sight."""
        user = self.user_by_name(username)
        if user is not None:
            return user
        try:
            return self.add_user(username, role=role, source=source)
        except UserExists:  # another request (or process) created it in between
            user = self.user_by_name(username)
            assert user is not None
            return user

    def user_by_id(self, user_id: str) -> User | None:
        rows = self._read(f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", (user_id,))
        return self._user(rows[0]) if rows else None

    def user_by_name(self, username: str) -> User | None:
        rows = self._read(f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", (username,))
        return self._user(rows[0]) if rows else None

    def users(self) -> list[User]:
        return [
            self._user(r)
            for r in self._read(f"SELECT {_USER_COLUMNS} FROM users ORDER BY username")
        ]

    def _update_user(self, username: str, sets: str, args: Sequence[Any]) -> User:
        with self._write() as cur:
            cur.execute(
                f"UPDATE users SET {sets}, updated_at = ? WHERE username = ?",
                (*args, self._clock(), username),
            )
            if cur.rowcount == 0:
                raise UnknownUser(f"no user {username!r}")
        user = self.user_by_name(username)
        assert user is not None
        return user

    def set_password(self, username: str, password_hash: str) -> User:
        # Tokens issued before the change stop working: a stolen session ends with it.
        return self._update_user(
            username, "password_hash = ?, tokens_after = ?", (password_hash, int(self._clock()))
        )

    def set_role(self, username: str, role: str) -> User:
        return self._update_user(username, "role = ?", (check_role(role),))

    def set_active(self, username: str, active: bool) -> User:
        return self._update_user(username, "active = ?", (1 if active else 0,))

    def delete_user(self, username: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM users WHERE username = ?", (username,))
            if cur.rowcount == 0:
                raise UnknownUser(f"no user {username!r}")

    # -- API keys ----------------------------------------------------------------------------
    @staticmethod
    def _key(row: Sequence[Any]) -> ApiKey:
        return ApiKey(*row)

    def add_key(self, user_id: str, name: str, prefix: str, digest: str) -> ApiKey:
        key_id = uuid.uuid4().hex
        with self._write() as cur:
            cur.execute(
                "INSERT INTO api_keys (id, user_id, name, prefix, digest, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, user_id, name, prefix, digest, self._clock()),
            )
        key = self.key_by_id(key_id)
        assert key is not None
        return key

    def key_by_id(self, key_id: str) -> ApiKey | None:
        rows = self._read(
            f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id "
            "WHERE k.id = ?",
            (key_id,),
        )
        return self._key(rows[0]) if rows else None

    def key_by_prefix(self, prefix: str) -> ApiKey | None:
        rows = self._read(
            f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id "
            "WHERE k.prefix = ?",
            (prefix,),
        )
        return self._key(rows[0]) if rows else None

    def keys(self, user_id: str | None = None) -> list[ApiKey]:
        where, args = ("WHERE k.user_id = ? ", (user_id,)) if user_id else ("", ())
        rows = self._read(
            f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN users u ON u.id = k.user_id "
            f"{where}ORDER BY k.created_at",
            args,
        )
        return [self._key(r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self._write() as cur:
            cur.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (self._clock(), key_id),
            )
            return cur.rowcount > 0

    def touch_key(self, key_id: str) -> None:
        with self._write() as cur:
            cur.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ?", (self._clock(), key_id)
            )

    # -- revoked JWT ids ---------------------------------------------------------------------
    def revoke_token(self, jti: str, expires_at: float) -> None:
        """Deny ``jti`` until it would have expired anyway; expired entries are purged here."""
        with self._write() as cur:
            cur.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", (self._clock(),))
            cur.execute(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) "
                "ON CONFLICT (jti) DO NOTHING",
                (jti, expires_at),
            )

    def is_revoked(self, jti: str) -> bool:
        return bool(self._read("SELECT 1 FROM revoked_tokens WHERE jti = ?", (jti,)))


class AuthStore(AuthQueries, SqliteStore):
    """The auth tables in the server's SQLite file (``sdcpp.db``, beside the jobs)."""


def open_auth_store(settings: Settings) -> AuthQueries:
    """Beside the job queue: PostgreSQL with ``database_url`` (users, keys and revocations
    shared by every API process on it), else the SQLite file in the data dir."""
    if settings.database_url:
        from ..pgstore import PgAuthStore

        return PgAuthStore(settings.database_url)
    return AuthStore(settings.database_path)
