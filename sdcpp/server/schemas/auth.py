"""Request bodies of the auth, user and API key endpoints (seed 004 "Authentication")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    # password may be left out only for a unix-socket login as the connecting user
    username: str = Field("", max_length=64)
    password: str | None = Field(None, max_length=1024)


class UserCreate(_Strict):
    username: str = Field(..., min_length=1, max_length=64)
    password: str | None = Field(None, max_length=1024)  # None: PAM/unix users, no local login
    role: Literal["user", "admin"] = "user"


class UserUpdate(_Strict):
    role: Literal["user", "admin"] | None = None
    active: bool | None = None
    password: str | None = Field(None, max_length=1024)


class KeyCreate(_Strict):
    name: str = Field("default", min_length=1, max_length=100)
    user: str | None = Field(None, max_length=64)  # admins may create keys for others
