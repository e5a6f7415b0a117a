"""Unix-socket identity: the peer's uid, from the kernel (``SO_PEERCRED``), not from a header.

uvicorn does not expose peer credentials, so ``with_peer_credentials`` makes a subclass of its
protocol classes that reads them when a connection is made on an ``AF_UNIX`` socket and wraps
the app for that connection, so every request on it carries ``scope["peer_credentials"]``. Only
server code builds a scope: no client can put that key there. TCP connections never get it, so
the seed's ``X-Unix-User`` header grants nothing over TCP.
"""

from __future__ import annotations

import pwd
import socket
import struct
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

SCOPE_KEY = "peer_credentials"


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int

    @property
    def username(self) -> str | None:
        try:
            return pwd.getpwuid(self.uid).pw_name
        except KeyError:  # a uid without a passwd entry (containers): no identity
            return None


def peer_credentials(sock: socket.socket | None) -> PeerCredentials | None:
    if sock is None or sock.family != socket.AF_UNIX or not hasattr(socket, "SO_PEERCRED"):
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


class _WithPeer:
    def __init__(self, app: ASGIApp, creds: PeerCredentials) -> None:
        self.app = app
        self.creds = creds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SCOPE_KEY] = self.creds
        await self.app(scope, receive, send)


def with_peer_credentials(protocol_class: type[Any]) -> type[Any]:
    """A subclass of a uvicorn HTTP or WebSocket protocol that records peer credentials."""

    class PeerCredentialsProtocol(protocol_class):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            creds = peer_credentials(transport.get_extra_info("socket"))
            if creds is not None:
                # ``app`` is set by uvicorn's protocol __init__ (a base mypy cannot see)
                self.app = _WithPeer(self.app, creds)  # type: ignore[has-type]

    PeerCredentialsProtocol.__name__ = f"PeerCredentials{protocol_class.__name__}"
    return PeerCredentialsProtocol
