"""JSON Web Tokens (PyJWT), HS256 only.

Every token carries ``sub`` (user id), ``iat``, ``exp`` and ``jti`` (required on decode), plus
the user name for the client's convenience; role and the active flag are deliberately *not*
trusted from the token but read from the database on each request. Decoding pins the algorithm
list to HS256, so ``alg: none`` and algorithm confusion (RS256/HS512 headers) are refused by
PyJWT before any signature is computed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
ISSUER = "sdcpp"
REQUIRED = ["exp", "iat", "sub", "jti"]


class InvalidToken(Exception):
    """Any reason a token is refused; the message is safe to show (never the token)."""


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    jti: str
    iat: int
    exp: int
    username: str


class TokenIssuer:
    def __init__(
        self,
        key: bytes,
        lifetime: int,
        *,
        leeway: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self.lifetime = lifetime
        self.leeway = leeway
        self._clock = clock

    def issue(self, user_id: str, username: str) -> tuple[str, Claims]:
        now = int(self._clock())
        claims = Claims(user_id, uuid.uuid4().hex, now, now + self.lifetime, username)
        payload: dict[str, Any] = {
            "iss": ISSUER,
            "sub": claims.sub,
            "jti": claims.jti,
            "iat": claims.iat,
            "nbf": claims.iat,
            "exp": claims.exp,
            "username": username,
        }
        return jwt.encode(payload, self._key, algorithm=ALGORITHM), claims

    def decode(self, token: str) -> Claims:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                leeway=self.leeway,
                options={"require": [*REQUIRED, "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.PyJWTError:
            raise InvalidToken("the token is not valid") from None
        sub, jti = payload.get("sub"), payload.get("jti")
        if not isinstance(sub, str) or not isinstance(jti, str) or not sub or not jti:
            raise InvalidToken("the token is not valid")
        return Claims(
            sub, jti, int(payload["iat"]), int(payload["exp"]), str(payload.get("username", ""))
        )


def looks_like_jwt(value: str) -> bool:
    """Three dot-separated parts: a JWT; anything else offered as Bearer is tried as an API key."""
    return value.count(".") == 2
