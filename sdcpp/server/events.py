"""In-process publish/subscribe for live progress (SSE and WebSocket subscribers).

Publishers may be any thread (the job dispatcher); subscribers are asyncio tasks. Each
subscriber has a bounded queue: a slow client loses old progress messages, never blocks the
dispatcher, and always sees the latest state when it catches up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

logger = logging.getLogger(__name__)

Event = dict[str, Any]  # {"type": "job_update" | "queue_update" | "system_update", "data": {...}}


class EventBus:
    def __init__(self, queue_size: int = 256) -> None:
        self._lock = threading.Lock()
        self._subscribers: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]] = set()
        self._queue_size = queue_size
        self._listeners: list[Callable[[Event], None]] = []

    def listen(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener(event)`` in the publishing thread for every event (the metrics):
        it must be quick and never block; unlike a subscriber's queue it misses nothing."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not stop the job that published
                logger.exception("event listener failed on a %s event", event.get("type"))
        with self._lock:
            subscribers = list(self._subscribers)
        for loop, queue in subscribers:
            with contextlib.suppress(RuntimeError):  # loop closed: the subscriber is gone
                loop.call_soon_threadsafe(_offer, queue, event)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        entry = (asyncio.get_running_loop(), asyncio.Queue[Event](self._queue_size))
        with self._lock:
            self._subscribers.add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                self._subscribers.discard(entry)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)


def _offer(queue: asyncio.Queue[Event], event: Event) -> None:
    if queue.full():
        with contextlib.suppress(asyncio.QueueEmpty):
            queue.get_nowait()  # drop the oldest: progress is superseded by newer progress
    queue.put_nowait(event)
