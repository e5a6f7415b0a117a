"""The auth service: which methods are on, who a request is, logins, tokens and keys.

Methods (``--auth``, comma-separated):

    none      no authentication: every request is an anonymous admin (the default, on loopback)
    optional  requests without credentials are guests; alone it means ``jwt,api-key,optional``
    jwt       logins against local users (``sdcpp users add``), answered with a JWT
    api-key   ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``
    pam       logins checked by PAM (``--pam-service``), answered with a JWT
    unix      the peer's uid on the ``--uds`` socket; ``X-Unix-User`` only narrows it

On the A1111 dialect's routes (``/sdapi/``), ``Authorization: Basic`` with a local user's name
and password counts too (when ``jwt`` logins are on), or a PAM user's (when ``pam`` is on:
checked as a PAM login is, off the event loop), as AUTOMATIC1111's ``--api-auth`` does.

Any method but ``none`` accepts this server's JWTs (the login of ``jwt``, ``pam`` or ``unix``
issues them). Exactly one credential counts per request: ``Authorization``, else ``X-API-Key``,
else the socket peer, else the web UI's session cookie (``session.py``: CSRF rules).
Credentials in the query string are never read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..settings import Settings
from . import apikeys, session
from .capability import OutputSigner
from .identity import GUEST, NO_AUTH, Identity
from .limiter import FailureLimiter
from .pam_backend import PamBackend, PamBusy, groups_of
from .passwords import verify_password
from .secret import derive_key, load_or_create_secret
from .store import USERNAME, AuthQueries, User, open_auth_store
from .tokens import InvalidToken, TokenIssuer, looks_like_jwt
from .unix import SCOPE_KEY, PeerCredentials


def shared_secret(store: AuthQueries) -> bytes | None:
    """On PostgreSQL the signing secret lives in the database: every API process on it signs
    and checks tokens alike. None on SQLite (the data dir's ``secret.key``)."""
    from ..pgstore import PgAuthStore

    return store.shared_secret() if isinstance(store, PgAuthStore) else None


logger = logging.getLogger(__name__)

# A verified HTTP Basic pair is trusted again for this long (while the password is unchanged)
BASIC_CACHE_SECONDS = 300.0
BASIC_CACHE_SIZE = 10_000
# HTTP Basic is the A1111 dialect's scheme: accepted on its routes only
BASIC_PREFIX = "/sdapi/"


def _basic_allowed(scope: dict[str, Any]) -> bool:
    return str(scope.get("path", "")).startswith(BASIC_PREFIX)


# last_used_at is written at most this often per key: a busy client must not turn every request
# into a database write
TOUCH_INTERVAL = 60.0


class AuthFailure(Exception):
    """Credentials were offered and are not valid (401 INVALID_CREDENTIALS)."""


@dataclass(frozen=True, slots=True)
class PamBasic:
    """An HTTP Basic pair that only PAM can check. PAM blocks (seconds, after a failure), so
    ``resolve`` hands it back and the middleware awaits ``finish_basic`` instead."""

    username: str
    password: str = field(repr=False)
    client_ip: str
    digest: bytes = field(repr=False)
    known: str | None  # the user's local password hash when seen (the cache's validity)


@dataclass(frozen=True, slots=True)
class Resolved:
    identity: Identity | None  # None: no credentials at all
    error: str | None = None  # why offered credentials were refused
    pam: PamBasic | None = None  # an HTTP Basic pair waiting for its PAM check


class AuthService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.methods = settings.auth_methods
        self.enabled = self.methods != ("none",)
        self.store: AuthQueries | None = None
        self.tokens: TokenIssuer | None = None
        self.signer: OutputSigner | None = None
        self.pam: PamBackend | None = None
        self.limiter_user = FailureLimiter(
            settings.login_max_failures, settings.login_window, settings.login_lockout
        )
        self.limiter_ip = FailureLimiter(
            settings.login_max_failures_ip, settings.login_window, settings.login_lockout
        )
        self._touched: dict[str, float] = {}
        self._basic: dict[bytes, tuple[str | None, float]] = {}  # Basic pair digest -> hash, expiry
        if not self.enabled:
            return  # mode none writes nothing: no secret, no tables
        self.store = open_auth_store(settings)  # beside the jobs: SQLite or PostgreSQL
        secret = shared_secret(self.store) or load_or_create_secret(settings.data_dir)
        self.tokens = TokenIssuer(
            derive_key(secret, "jwt"), settings.token_lifetime, leeway=settings.token_leeway
        )
        self.signer = OutputSigner(derive_key(secret, "output url"), settings.output_url_ttl)
        if "pam" in self.methods:
            self.pam = PamBackend(settings.pam_service, settings.admin_group)

    def close(self) -> None:
        if self.pam is not None:
            self.pam.close()
        if self.store is not None:
            self.store.close()

    @property
    def guests_allowed(self) -> bool:
        return "optional" in self.methods

    # -- who is asking -----------------------------------------------------------------------
    def resolve(self, scope: dict[str, Any]) -> Resolved:
        """The identity behind a request's credentials. Synchronous: a few indexed reads (and,
        the first time an HTTP Basic pair is seen, one password check)."""
        if not self.enabled:
            return Resolved(NO_AUTH)
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1").strip()
        api_key = headers.get(b"x-api-key", b"").decode("latin-1").strip()
        try:
            scheme, _, value = authorization.partition(" ")
            value = value.strip()
            basic = scheme.lower() == "basic" and _basic_allowed(scope)
            if basic and value:  # an empty "Basic " (clients with no password set): none
                found = self._from_basic(value, scope)
                if isinstance(found, PamBasic):
                    return Resolved(None, pam=found)
                return Resolved(found)
            if authorization and not basic:
                if scheme.lower() != "bearer" or not value:
                    raise AuthFailure("use 'Authorization: Bearer <token or API key>'")
                if looks_like_jwt(value):
                    return Resolved(self._from_token(value))
                return Resolved(self._from_key(value))
            if api_key:
                return Resolved(self._from_key(api_key))
            creds = scope.get(SCOPE_KEY)
            if isinstance(creds, PeerCredentials) and "unix" in self.methods:
                claimed = headers.get(b"x-unix-user", b"").decode("latin-1").strip()
                return Resolved(self._from_peer(creds, claimed))
            # last resort: the web UI's session cookie, under its CSRF rules (session.py)
            token = session.cookie_token(headers)
            if token is not None and session.cookie_allowed(scope, headers):
                return Resolved(self._from_token(token))
        except AuthFailure as exc:
            return Resolved(None, str(exc))
        return Resolved(GUEST if self.guests_allowed else None)

    def _from_basic(self, value: str, scope: dict[str, Any]) -> Identity | PamBasic:
        """HTTP Basic (the A1111 dialect's scheme): a local user's name and password, checked
        as a login is (same hash, same lockouts), or else, with PAM on, the pair for PAM to
        check (``finish_basic``). A verified pair is remembered (as a digest) for
        ``BASIC_CACHE_SECONDS`` while the user's password hash is unchanged, so a client
        sending it with every request pays neither an Argon2 nor a PAM check each time."""
        assert self.store is not None
        try:
            username, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AuthFailure("malformed Basic credentials") from None
        if not sep or ("jwt" not in self.methods and self.pam is None):
            raise AuthFailure("Basic credentials need a local or PAM user (user:password)")
        client = scope.get("client") or ("", 0)
        user_key, ip_key = f"user:{username}", f"ip:{client[0]}"
        wait = max(self.limiter_user.retry_after(user_key), self.limiter_ip.retry_after(ip_key))
        if wait:
            raise AuthFailure(f"too many failed logins; try again in {wait} s")
        digest = hashlib.sha256(f"{username}\0{password}".encode()).digest()
        user = self.store.user_by_name(username) if USERNAME.fullmatch(username) else None
        known = user.password_hash if user is not None else None
        local = known is not None and "jwt" in self.methods  # as _check_password decides
        cached = self._basic.get(digest)
        if cached is not None and cached[0] == known and cached[1] > time.monotonic():
            ok = True
        elif not local and self.pam is not None:
            return PamBasic(username, password, client[0], digest, known)
        else:  # an unknown user still costs a check (no user enumeration)
            ok = verify_password(known if local else None, password) and local
        if not ok or user is None or not user.active:
            self.limiter_user.fail(user_key)
            self.limiter_ip.fail(ip_key)
            raise AuthFailure("invalid username or password")
        self.limiter_user.succeed(user_key)
        self._remember_basic(digest, known)
        return Identity(user.id, user.username, user.role, "basic")

    def _remember_basic(self, digest: bytes, known: str | None) -> None:
        if len(self._basic) >= BASIC_CACHE_SIZE:
            self._basic.clear()
        self._basic[digest] = (known, time.monotonic() + BASIC_CACHE_SECONDS)

    async def finish_basic(self, pending: PamBasic) -> Resolved:
        """The PAM half of an HTTP Basic check (``resolve`` handed it over): PAM's own pool,
        the same lockouts and the same user row (made on first sight) as a PAM login."""
        assert self.pam is not None
        user_key, ip_key = f"user:{pending.username}", f"ip:{pending.client_ip}"
        try:
            ok = await self.pam.authenticate(pending.username, pending.password)
        except PamBusy as exc:
            return Resolved(None, str(exc))
        user = self._pam_user(pending.username) if ok else None
        if user is None or not user.active:
            self.limiter_user.fail(user_key)
            self.limiter_ip.fail(ip_key)
            return Resolved(None, "invalid username or password")
        self.limiter_user.succeed(user_key)
        self._remember_basic(pending.digest, pending.known)
        return Resolved(Identity(user.id, user.username, user.role, "basic"))

    def _pam_user(self, username: str) -> User:
        """The users row of a PAM-checked account, made on first sight; admins by group."""
        assert self.pam is not None and self.store is not None
        admin = self.pam.is_admin(username)
        user = self.store.ensure_user(username, role="admin" if admin else "user", source="pam")
        if admin and user.role != "admin" and user.active:
            user = self.store.set_role(username, "admin")
        return user

    def _active_user(self, user: User | None) -> User:
        if user is None or not user.active:
            raise AuthFailure("this account does not exist or is disabled")
        return user

    def _from_token(self, token: str) -> Identity:
        assert self.tokens is not None and self.store is not None
        try:
            claims = self.tokens.decode(token)
        except InvalidToken as exc:
            raise AuthFailure(str(exc)) from None
        if self.store.is_revoked(claims.jti):
            raise AuthFailure("the token has been revoked")
        user = self._active_user(self.store.user_by_id(claims.sub))
        if claims.iat < user.tokens_after:
            raise AuthFailure("the token was issued before a password change")
        return Identity(user.id, user.username, user.role, "jwt", claims.jti, claims.exp)

    def _from_key(self, key: str) -> Identity:
        assert self.store is not None
        if "api-key" not in self.methods:
            raise AuthFailure("API keys are not enabled on this server")
        prefix = apikeys.prefix_of(key)
        record = self.store.key_by_prefix(prefix) if prefix else None
        if record is None or not apikeys.matches(key, record.digest):
            raise AuthFailure("invalid API key")
        if record.revoked_at is not None:
            raise AuthFailure("this API key has been revoked")
        user = self._active_user(self.store.user_by_id(record.user_id))
        self._touch(record.id)
        return Identity(user.id, user.username, user.role, "api-key")

    def _touch(self, key_id: str) -> None:
        assert self.store is not None
        now = time.monotonic()
        if now - self._touched.get(key_id, -TOUCH_INTERVAL) >= TOUCH_INTERVAL:
            self._touched[key_id] = now
            self.store.touch_key(key_id)

    def _from_peer(self, creds: PeerCredentials, claimed: str) -> Identity:
        assert self.store is not None
        name = creds.username
        if name is None:
            raise AuthFailure(f"uid {creds.uid} has no user name on this system")
        if claimed and claimed != name:
            if creds.uid != 0:  # only root (a trusted proxy) may speak for another user
                raise AuthFailure("X-Unix-User names another user than the connecting one")
            name = claimed
        user = self._active_user(self.unix_user(name, is_root=creds.uid == 0 and name == "root"))
        return Identity(user.id, user.username, user.role, "unix")

    def unix_user(self, name: str, *, is_root: bool = False) -> User:
        """The users row of a system account, made on first sight; admins by group or root."""
        assert self.store is not None
        if not USERNAME.fullmatch(name):
            raise AuthFailure("this user name is not accepted")
        admin = is_root or self.settings.admin_group in groups_of(name)
        user = self.store.ensure_user(name, role="admin" if admin else "user", source="unix")
        if admin and user.role != "admin" and user.active:
            user = self.store.set_role(name, "admin")
        return user

    # -- logins ------------------------------------------------------------------------------
    async def login(self, username: str, password: str, client_ip: str) -> User:
        """Check a password (local users first, then PAM). Raises ``AuthFailure`` or
        ``Locked``; failures count towards the lockout of the name and the address."""
        user_key, ip_key = f"user:{username}", f"ip:{client_ip}"
        wait = max(self.limiter_user.retry_after(user_key), self.limiter_ip.retry_after(ip_key))
        if wait:
            raise Locked(wait)
        user = await self._check_password(username, password)
        if user is None:
            self.limiter_user.fail(user_key)
            self.limiter_ip.fail(ip_key)
            raise AuthFailure("invalid username or password")
        self.limiter_user.succeed(user_key)
        return user

    async def _check_password(self, username: str, password: str) -> User | None:
        assert self.store is not None
        if not USERNAME.fullmatch(username) or not password:
            return None
        local = self.store.user_by_name(username)
        local_logins = "jwt" in self.methods
        if local is not None and local.password_hash is not None and local_logins:
            ok = await run_in_threadpool(verify_password, local.password_hash, password)
            return local if ok and local.active else None
        if self.pam is not None:
            if not await self.pam.authenticate(username, password):
                return None
            user = self._pam_user(username)
            return user if user.active else None
        # no such local user: spend the time of a real check anyway (no user enumeration)
        await run_in_threadpool(verify_password, None, password)
        return None

    def issue_token(self, user: User) -> tuple[str, int]:
        assert self.tokens is not None
        token, claims = self.tokens.issue(user.id, user.username)
        return token, claims.exp

    def revoke(self, identity: Identity) -> None:
        assert self.store is not None
        if identity.token_id is not None and identity.token_exp is not None:
            self.store.revoke_token(
                identity.token_id, identity.token_exp + self.settings.token_leeway
            )

    # -- output URLs -------------------------------------------------------------------------
    def output_url(self, job_id: str, name: str) -> str:
        if self.signer is None:
            return f"/api/queue/job/{job_id}/output/{name}"
        return self.signer.url(job_id, name)


class Locked(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after
