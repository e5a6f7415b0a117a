"""Who is asking: the ``Identity`` the auth middleware puts in ``scope["user"]``.

Roles (seed 004 "Permission Levels"): ``guest`` (anonymous, only where the server runs with
``--auth optional``), ``user`` (generates, sees and manages its own jobs and keys) and ``admin``
(models, users, system; sees everything). With ``--auth none`` every request is an anonymous
admin: the server behaves as it did before auth existed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLE_RANK = {"guest": 0, "user": 1, "admin": 2}

PERMISSIONS: dict[str, tuple[str, ...]] = {
    "guest": ("read",),
    "user": ("read", "generate", "own_jobs", "own_keys"),
    "admin": (
        "read",
        "generate",
        "own_jobs",
        "own_keys",
        "all_jobs",
        "manage_models",
        "manage_users",
        "manage_system",
    ),
}


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str | None  # the users row; None for anonymous requests
    username: str
    role: str  # guest | user | admin
    method: str  # none | anonymous | jwt | api-key | unix
    token_id: str | None = None  # the JWT's jti, for logout and refresh
    token_exp: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_authenticated(self) -> bool:  # Starlette's BaseUser protocol
        return self.method not in ("none", "anonymous")

    @property
    def display_name(self) -> str:
        return self.username

    @property
    def job_owner(self) -> str | None:
        """The owner recorded on jobs this identity submits."""
        return self.user_id

    def may_see(self, owner: str | None) -> bool:
        """A job (or key) owned by ``owner`` is visible to its owner and to admins only."""
        return self.is_admin or (owner is not None and owner == self.user_id)

    def public(self) -> dict[str, Any]:
        """Seed 004's ``user`` object."""
        return {
            "id": self.user_id,
            "username": self.username,
            "role": self.role,
            "permissions": list(PERMISSIONS[self.role]),
        }


NO_AUTH = Identity(None, "anonymous", "admin", "none")
GUEST = Identity(None, "guest", "guest", "anonymous")


def identity_of(scope: Any) -> Identity:
    """The request's identity; requests the auth middleware never saw count as guests."""
    user = scope.get("user") if isinstance(scope, dict) else scope.scope.get("user")
    return user if isinstance(user, Identity) else GUEST
