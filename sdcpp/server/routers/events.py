"""Live events: ``/api/events`` (all, or one job's until it ends) over SSE, and ``/ws``."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from sse_starlette.sse import EventSourceResponse
from starlette.requests import Request
from starlette.websockets import WebSocket, WebSocketDisconnect

from ... import __version__
from ..auth.identity import identity_of
from ..connlimits import event_stream
from ..jobs import FINISHED
from .common import job_or_404


# -- live events --------------------------------------------------------------------------
def _visible(identity: Any, event: dict[str, Any]) -> bool:
    """Job events reach the job's owner and admins; queue and system events reach everyone."""
    return "owner" not in event or identity.may_see(event["owner"])


async def events_sse(request: Request) -> EventSourceResponse:
    job_filter = request.path_params.get("job_id")
    if job_filter:
        job_or_404(request, job_filter)
        return event_stream(request, _job_stream(request, job_filter))
    identity = identity_of(request.scope)

    async def stream() -> Any:
        async with request.app.state.events.subscribe() as queue:
            while True:
                event = await queue.get()
                if not _visible(identity, event):
                    continue
                # orjson: the job's final event is on its client's critical path
                yield {"event": event["type"], "data": orjson.dumps(event["data"]).decode()}

    return event_stream(request, stream())  # a client that stops reading is dropped


JOB_STREAM_CHECK = 5.0  # seconds without an event before a job's stream reads the store again


async def _job_stream(request: Request, job_id: str) -> Any:
    """One job's events: its current state at once, then its updates; the stream ends after
    the job's final state (at once for a job that has ended, or was deleted)."""
    jobs = request.app.state.jobs

    def current() -> dict[str, Any] | None:
        job = jobs.store.get(job_id)
        return None if job is None else {"type": "job_update", "data": jobs.view(job)}

    # Subscribed before reading the state, so no update falls between the two.
    async with request.app.state.events.subscribe() as queue:
        event = current()
        while event is not None:
            if event["data"].get("job_id") == job_id:
                yield {"event": event["type"], "data": orjson.dumps(event["data"]).decode()}
                if event["type"] == "job_update" and event["data"].get("status") in FINISHED:
                    return
            event = None
            while event is None:
                try:
                    event = await asyncio.wait_for(queue.get(), JOB_STREAM_CHECK)
                except TimeoutError:  # the final event may have been dropped (a slow reader)
                    latest = current()
                    if latest is None:
                        return  # deleted
                    if latest["data"].get("status") in FINISHED:
                        event = latest


async def events_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    state = websocket.app.state
    await websocket.send_json(
        {"type": "system_update", "data": {"status": "connected", "version": __version__}}
    )
    identity = identity_of(websocket.scope)
    try:
        async with state.events.subscribe() as queue:
            while True:
                event = await queue.get()
                if _visible(identity, event):
                    message = {"type": event["type"], "data": event["data"]}
                    await websocket.send_text(orjson.dumps(message).decode())
    except (WebSocketDisconnect, RuntimeError):
        return
