"""Auth endpoints (seed 004 "Authentication", seed 002's ``/api/v1/auth`` aliases), and the
admin endpoints for users and API keys: HTTP only — parse, call the auth service, format.

Each route is declared once, with its access level, in ``ENDPOINTS``.
"""

from __future__ import annotations

from typing import Any

import anyio
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute

from ..auth import accounts, session
from ..auth.identity import Identity, identity_of
from ..auth.pam_backend import PamBusy
from ..auth.passwords import check_password
from ..auth.permissions import ADMIN, OWNED, PUBLIC, USER
from ..auth.service import AuthFailure, AuthService, Locked
from ..auth.store import AuthQueries, UnknownUser
from ..auth.store import UserExists as DuplicateUser
from ..exceptions import (
    AuthNotEnabled,
    BadRequest,
    CannotChangeSelf,
    Forbidden,
    InvalidCredentials,
    KeyNotFound,
    RateLimited,
    Unavailable,
    UserExists,
    UserNotFound,
)
from ..routing import Endpoint, bodies, starlette_routes
from ..schemas.auth import KeyCreate, LoginRequest, UserCreate, UserUpdate
from .common import body

# Argon2 takes 64 MiB and tens of ms per hash: at most this many at once, off the shared pool.
HASH_CONCURRENCY = 2


def _service(request: Request) -> AuthService:
    return request.app.state.auth  # type: ignore[no-any-return]


def _store(request: Request) -> AuthQueries:
    store = _service(request).store
    if store is None:
        raise AuthNotEnabled("this server runs with --auth none: there are no accounts")
    return store


async def _hashing(request: Request, fn: Any, *args: Any) -> Any:
    state = request.app.state
    limiter = getattr(state, "password_limiter", None)
    if limiter is None:  # made on first use, inside the event loop
        limiter = state.password_limiter = anyio.CapacityLimiter(HASH_CONCURRENCY)
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)


# -- sessions -------------------------------------------------------------------------------
def _token_answer(auth: AuthService, user_id: str, message: str) -> dict[str, Any]:
    assert auth.store is not None
    user = auth.store.user_by_id(user_id)
    assert user is not None
    token, exp = auth.issue_token(user)
    identity = Identity(user.id, user.username, user.role, "jwt")
    return {
        "token": token,
        "token_type": "Bearer",
        "expires_at": exp,
        "expires_in": auth.settings.token_lifetime,
        "user": identity.public(),
        "message": message,
    }


async def login(request: Request) -> JSONResponse:
    """Sign in with a user name and password; answers a JWT."""
    auth = _service(request)
    if not auth.enabled:
        raise AuthNotEnabled("this server runs with --auth none: no login")
    req = await body(request, LoginRequest)
    current = identity_of(request.scope)
    if req.password is None:
        # seed 004: no password for a unix login; the socket peer is the proof
        if current.method != "unix" or req.username not in ("", current.username):
            raise BadRequest("username and password are required")
        assert current.user_id is not None
        return _with_session(request, _token_answer(auth, current.user_id, "Login successful"))
    if not {"jwt", "pam"} & set(auth.methods):
        raise AuthNotEnabled("password logins need --auth jwt or pam")
    client = request.scope.get("client")
    try:
        user = await auth.login(req.username, req.password, client[0] if client else "local")
    except Locked as exc:
        raise RateLimited(str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except PamBusy as exc:
        raise Unavailable(str(exc), {"Retry-After": "2"}) from None
    except AuthFailure as exc:
        raise InvalidCredentials(str(exc)) from None
    return _with_session(request, _token_answer(auth, user.id, "Login successful"))


def _with_session(request: Request, answer: dict[str, Any]) -> JSONResponse:
    """The token answer; for the web UI (its header) the token is also the session cookie."""
    response = JSONResponse(answer)
    if session.from_webui(request.headers):
        secure = request.url.scheme == "https"
        session.set_cookie(response, answer["token"], answer["expires_in"], secure)
    return response


def _jwt_identity(request: Request, what: str) -> Identity:
    identity = identity_of(request.scope)
    if identity.method != "jwt":
        raise BadRequest(f"{what} applies to tokens from /api/auth/login only")
    return identity


async def logout(request: Request) -> JSONResponse:
    """Revoke the token this request carries."""
    identity = _jwt_identity(request, "logout")
    await run_in_threadpool(_service(request).revoke, identity)
    response = JSONResponse({"message": "Logout successful"})
    session.clear_cookie(response, request.url.scheme == "https")
    return response


async def refresh(request: Request) -> JSONResponse:
    """A new token for the current one, which is revoked (rotation)."""
    identity = _jwt_identity(request, "refresh")
    auth = _service(request)
    assert identity.user_id is not None
    await run_in_threadpool(auth.revoke, identity)
    answer = await run_in_threadpool(
        _token_answer, auth, identity.user_id, "Token refreshed successfully"
    )
    return _with_session(request, answer)


async def validate_token(request: Request) -> JSONResponse:
    """Whether the request's credentials are valid, and whose they are."""
    return JSONResponse({"user": identity_of(request.scope).public(), "valid": True})


async def me(request: Request) -> JSONResponse:
    """The current user and their permissions."""
    return JSONResponse({"user": identity_of(request.scope).public()})


# -- users (admin) --------------------------------------------------------------------------
def _user_errors(exc: Exception) -> UserExists | UserNotFound:
    if isinstance(exc, DuplicateUser):
        return UserExists(str(exc))
    if isinstance(exc, UnknownUser):
        return UserNotFound(str(exc))
    raise exc


async def users_list(request: Request) -> JSONResponse:
    """All accounts (admin)."""
    store = _store(request)
    users = await run_in_threadpool(store.users)
    return JSONResponse({"users": [u.public() for u in users]})


async def users_create(request: Request) -> JSONResponse:
    """Create a local account (admin)."""
    store = _store(request)
    req = await body(request, UserCreate)
    if req.password is not None:
        check_password(req.password)
    try:
        user = await _hashing(
            request, accounts.add_user, store, req.username, req.role, req.password
        )
    except (DuplicateUser, UnknownUser) as exc:
        raise _user_errors(exc) from None
    return JSONResponse({"user": user.public()}, status_code=201)


async def user_detail(request: Request) -> JSONResponse:
    """One account (GET), change its role, active flag or password (PATCH), delete it (DELETE)."""
    store = _store(request)
    name = request.path_params["username"]
    me_ = identity_of(request.scope)
    try:
        user = await run_in_threadpool(accounts.get_user, store, name)
        if request.method == "GET":
            keys = await run_in_threadpool(store.keys, user.id)
            return JSONResponse({"user": user.public(), "keys": [k.public() for k in keys]})
        if request.method == "DELETE":
            if user.id == me_.user_id:
                raise CannotChangeSelf("admins cannot delete themselves")
            await run_in_threadpool(store.delete_user, name)
            return JSONResponse({"message": "User deleted", "username": name})
        req = await body(request, UserUpdate)
        if user.id == me_.user_id and (req.role == "user" or req.active is False):
            raise CannotChangeSelf("admins cannot demote or disable themselves")
        if req.password is not None:
            check_password(req.password)
            user = await _hashing(request, accounts.set_password, store, name, req.password)
        if req.role is not None:
            user = await run_in_threadpool(store.set_role, name, req.role)
        if req.active is not None:
            user = await run_in_threadpool(store.set_active, name, req.active)
        return JSONResponse({"user": user.public()})
    except (DuplicateUser, UnknownUser) as exc:
        raise _user_errors(exc) from None


# -- API keys (own keys; admins: anyone's) ---------------------------------------------------
async def keys_list(request: Request) -> JSONResponse:
    """API keys: your own; admins see all (``?user=`` narrows)."""
    store = _store(request)
    identity = identity_of(request.scope)
    user_id = identity.user_id
    if identity.is_admin:
        wanted = request.query_params.get("user")
        user_id = None
        if wanted:
            try:
                user_id = (await run_in_threadpool(accounts.get_user, store, wanted)).id
            except UnknownUser as exc:
                raise _user_errors(exc) from None
    keys = await run_in_threadpool(store.keys, user_id) if user_id or identity.is_admin else []
    return JSONResponse({"keys": [k.public() for k in keys]})


async def keys_create(request: Request) -> JSONResponse:
    """Create an API key; the key itself is in this answer only."""
    store = _store(request)
    req = await body(request, KeyCreate)
    identity = identity_of(request.scope)
    owner = req.user or identity.username
    if owner != identity.username and not identity.is_admin:
        raise Forbidden("only admins create keys for others")
    try:
        key, record = await run_in_threadpool(accounts.create_key, store, owner, req.name)
    except UnknownUser as exc:
        raise _user_errors(exc) from None
    return JSONResponse(
        {**record.public(), "key": key, "message": "Store this key now: it is not shown again"},
        status_code=201,
    )


async def key_revoke(request: Request) -> JSONResponse:
    """Revoke an API key (yours; admins: anyone's)."""
    store = _store(request)
    identity = identity_of(request.scope)
    record = await run_in_threadpool(store.key_by_id, request.path_params["key_id"])
    if record is None or not identity.may_see(record.user_id):
        raise KeyNotFound("no such API key")
    await run_in_threadpool(store.revoke_key, record.id)
    return JSONResponse({"message": "API key revoked", "id": record.id})


ENDPOINTS: list[Endpoint] = [
    Endpoint("/api/auth/login", login, ("POST",), PUBLIC, LoginRequest),
    Endpoint("/api/v1/auth/login", login, ("POST",), PUBLIC, LoginRequest, "login_v1"),
    Endpoint("/api/auth/logout", logout, ("POST",), USER),
    Endpoint("/api/v1/auth/logout", logout, ("POST",), USER, name="logout_v1"),
    Endpoint("/api/auth/validate", validate_token, access=USER),
    Endpoint("/api/auth/refresh", refresh, ("POST",), USER),
    Endpoint("/api/v1/auth/refresh", refresh, ("POST",), USER, name="refresh_v1"),
    Endpoint("/api/auth/me", me, access=USER),
    Endpoint("/api/v1/auth/profile", me, access=USER, name="profile_v1"),
    Endpoint("/api/users", users_list, access=ADMIN),
    Endpoint("/api/users", users_create, ("POST",), ADMIN, UserCreate, "users_create"),
    Endpoint("/api/users/{username:str}", user_detail, ("GET", "DELETE"), ADMIN),
    Endpoint("/api/users/{username:str}", user_detail, ("PATCH",), ADMIN, UserUpdate),
    # users manage their own keys; admins anyone's
    Endpoint("/api/keys", keys_list, access=USER),
    Endpoint("/api/keys", keys_create, ("POST",), USER, KeyCreate, "keys_create"),
    Endpoint("/api/keys/{key_id:str}", key_revoke, ("DELETE",), OWNED),
]
BODIES: dict[tuple[str, str], type[BaseModel]] = bodies(ENDPOINTS)


def routes() -> list[BaseRoute]:
    return starlette_routes(ENDPOINTS)
