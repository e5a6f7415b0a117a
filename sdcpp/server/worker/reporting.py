"""What the worker sends back besides results: throttled progress, the engine's progress
passes named as phases, and forwarded log lines."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from . import protocol

PROGRESS_INTERVAL = 0.1  # seconds between progress messages within one phase
LOG_BURST = 20  # log lines forwarded at once before the rate limit applies
LOG_RATE = 5.0  # log lines per second forwarded on average


class Reporter:
    """Sends progress, at most every PROGRESS_INTERVAL within a phase: the engine may call
    back hundreds of times a second while loading, the server needs a few updates."""

    def __init__(
        self, send: Callable[[protocol.Message], None], job_id: str, started: float
    ) -> None:
        self._send = send
        self._job_id = job_id
        self._started = started  # time.perf_counter() when the job started
        self._phase = ""
        self._last = 0.0

    def __call__(self, phase: str, step: int, total: int, *, force: bool = False) -> None:
        now = time.perf_counter()
        boundary = phase != self._phase or step in (0, total)
        if not (force or boundary or now - self._last >= PROGRESS_INTERVAL):
            return
        self._phase, self._last = phase, now
        elapsed = now - self._started
        self._send(protocol.Progress(self._job_id, phase, step, total, elapsed))


class Passes:
    """Names the engine's progress passes and counts their steps per phase.

    The engine's progress callback restarts at step 0 for every sampling pass: each image of
    a batch (``sampling``), then each image's hires fix pass (``hires``); tiled VAE decoding
    reports its tiles the same way, after them (``decoding``). Steps are reported summed over
    the phase's passes (a batch of 2 at 20 steps: 0..40 of 40), so a phase's step never goes
    back. Passes the count does not foresee (tiles of a pixel-space hires upscaler, previews
    decoded with tiling) land in the next phase early; the server's fraction stays monotonic.
    """

    def __init__(self, report: Reporter, images: int = 1, hires: bool = False) -> None:
        self._report = report
        self._phases = [("sampling", max(1, images))]
        if hires:
            self._phases.append(("hires", max(1, images)))
        self._index = 0  # into _phases; len(_phases): decoding
        self._pass = -1  # pass within the phase
        self._last = 0
        self._in_pass = False

    def __call__(self, step: int, total: int) -> None:
        if not self._in_pass or step < self._last or (step == 0 and self._last > 0):
            self._next_pass()
        self._in_pass, self._last = True, step
        if self._index >= len(self._phases):
            self._report("decoding", step, total)
            return
        phase, passes = self._phases[self._index]
        self._report(phase, self._pass * total + step, passes * total)
        if step == total and self._pass == passes - 1 and self._index == len(self._phases) - 1:
            self._report("decoding", 0, 1, force=True)  # the last pass is done

    def _next_pass(self) -> None:
        if not self._in_pass:
            self._pass = 0
            return
        self._pass += 1
        if self._index < len(self._phases) and self._pass >= self._phases[self._index][1]:
            self._index, self._pass = self._index + 1, 0


class ForwardHandler(logging.Handler):
    """Forwards log records to the server as ``log`` messages, with a token bucket so a
    chatty failure (a warning per tensor) cannot flood the pipe; dropped lines are counted."""

    def __init__(
        self,
        send: Callable[[protocol.Message], None],
        burst: int = LOG_BURST,
        rate: float = LOG_RATE,
    ) -> None:
        super().__init__(logging.WARNING)
        self._send = send
        self._burst, self._rate = burst, rate
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._dropped = 0
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        # logging.Handler.handle holds self.lock around emit(): the bucket needs no other lock.
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1:
            self._dropped += 1
            return
        self._tokens -= 1
        try:
            text = self.format(record).rstrip("\n")
        except Exception:
            self.handleError(record)
            return
        if self._dropped:
            text = f"{text} ({self._dropped} earlier lines suppressed)"
            self._dropped = 0
        self._send(protocol.Log(level=record.levelname.lower(), text=text))
