"""Authentication and permissions for the REST server (issue 5).

service.py      which methods are on; who a request is; logins, tokens, keys
middleware.py   puts the identity in the scope (pure ASGI)
permissions.py  the access levels (declared with each route: routing.Endpoint) and their guard
identity.py     Identity and roles (guest, user, admin)
store.py        users, API keys, revoked token ids (SQLite, beside the jobs)
passwords.py    Argon2id          tokens.py   JWT (HS256)     apikeys.py   API keys
capability.py   signed output URLs                            secret.py    secret.key
pam_backend.py  PAM               unix.py     unix-socket peer credentials
limiter.py      login failure counting and lockout
"""

from __future__ import annotations

from .identity import GUEST, NO_AUTH, Identity, identity_of
from .middleware import AuthMiddleware
from .permissions import guard_routes
from .service import AuthService

__all__ = [
    "GUEST",
    "NO_AUTH",
    "AuthMiddleware",
    "AuthService",
    "Identity",
    "guard_routes",
    "identity_of",
]
