"""One request straight through an app's ASGI interface, from a client that leaves as soon as
it has sent its body (so streaming endpoints answer their status and then see it go, and a
blocking endpoint sees a disconnect)."""

from __future__ import annotations

import json
from typing import Any

from starlette.testclient import TestClient


def call(client: TestClient, method: str, path: str, headers: dict[str, str], body: Any) -> Any:
    """One request through the app; returns (status, parsed JSON or None)."""
    raw = json.dumps(body).encode() if body is not None else b""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    out: dict[str, Any] = {"body": b""}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return {"type": "http.disconnect"}  # the client leaves once it has asked

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    async def run() -> None:
        await client.app(scope, receive, send)

    client.portal.call(run)  # type: ignore[union-attr]
    try:
        data = json.loads(out["body"])
    except ValueError:
        data = None
    return out["status"], data
