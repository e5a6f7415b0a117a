"""Seed 000's request batching: same-signature requests coalesced into one engine call.

A batch is one queued job (``batch_count`` = the sum of its requests' ``num_images``), listed
and cancellable like any other. The engine gives the images of one call consecutive seeds
(``seed``, ``seed + 1``, ...), so a request joins a batch only when its seed is random or is
exactly the batch's next seed; each request then gets its own images and seeds back.

When a batch is submitted (``LD_*`` knobs, read once per app):

- at once when it holds ``LD_MAX_BATCH_SIZE`` images;
- a batch that starts as a single request waits up to ``LD_BATCH_TIMEOUT`` s for companions
  only when ``LD_BATCH_WAIT_SINGLETONS=1``; otherwise it goes at once;
- while an earlier batch of this dialect still waits in the queue or runs, a batch keeps
  collecting (it could not start sooner anyway): that is how concurrent requests coalesce
  with the seed's default of not waiting for singletons.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ....errors import InvalidArgument
from ....jobspec import ImageSpec

logger = logging.getLogger(__name__)
MAX_BATCH = 16  # the job spec's batch_count limit
HOLD_POLL = 0.02  # seconds between checks of the earlier batch's job


@dataclass(frozen=True, slots=True)
class BatchSettings:
    max_batch_size: int = 4
    batch_timeout: float = 0.5
    wait_singletons: bool = False
    loglevel: str = "DEBUG"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BatchSettings:
        env = dict(os.environ if env is None else env)
        try:
            size = int(env.get("LD_MAX_BATCH_SIZE", "4"))
            timeout = float(env.get("LD_BATCH_TIMEOUT", "0.5"))
        except ValueError:
            message = "LD_MAX_BATCH_SIZE must be an integer, LD_BATCH_TIMEOUT a number"
            raise InvalidArgument(message) from None
        if not 1 <= size <= MAX_BATCH or not 0 <= timeout <= 600:
            raise InvalidArgument(
                f"LD_MAX_BATCH_SIZE must be 1-{MAX_BATCH} and LD_BATCH_TIMEOUT 0-600 s"
            )
        level = env.get("LD_SERVER_LOGLEVEL", "DEBUG").upper()
        if not isinstance(logging.getLevelName(level), int):
            raise InvalidArgument(f"LD_SERVER_LOGLEVEL {level!r} is not a logging level")
        wait = env.get("LD_BATCH_WAIT_SINGLETONS", "0").strip().lower() in ("1", "true", "yes")
        return cls(size, timeout, wait, level)


@dataclass(eq=False)
class Pending:
    """One request waiting for its images."""

    count: int
    seed: int | None  # explicit seed, or None: random
    prompt: str
    owner: str | None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    arrived: float = field(default_factory=time.time)
    future: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """A request's share of its finished batch job."""

    job: Any  # the store's Job
    outputs: list[str]  # file names in the job's output dir
    seeds: list[int]


@dataclass(eq=False)
class Batch:
    key: tuple[Any, ...]
    spec: ImageSpec  # the first request's spec (seed and batch_count set at submission)
    base_seed: int
    items: list[Pending] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    full: asyncio.Event = field(default_factory=asyncio.Event)
    job_id: str | None = None

    @property
    def size(self) -> int:
        return sum(p.count for p in self.items)

    def fits(self, item: Pending, limit: int) -> bool:
        seed_ok = item.seed is None or item.seed == self.base_seed + self.size
        return seed_ok and self.size + item.count <= limit


Submit = Callable[[ImageSpec, str | None], Awaitable[Any]]
Status = Callable[[str], Awaitable[str | None]]
Wait = Callable[[str], Awaitable[Any]]


class Batcher:
    """Coalesces requests; ``submit`` queues a spec as one job, ``status`` reads a job's
    status, ``wait`` returns the job once finished (all async, supplied by the router)."""

    def __init__(self, settings: BatchSettings, submit: Submit, status: Status, wait: Wait):
        self.settings = settings
        self._submit, self._status, self._wait = submit, status, wait
        self.open: list[Batch] = []  # collecting, not yet submitted
        self.inflight: dict[str, Batch] = {}  # job id -> submitted batch, until it finishes
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_seed: int | None = None
        self.batches_processed = self.items_processed = self.requests_processed = 0
        self.jobs: list[str] = []  # ids of the submitted batch jobs, latest last (up to 100)
        self._waits: list[float] = []  # per processed request: arrival -> job start, seconds

    async def generate(self, spec: ImageSpec, key: tuple[Any, ...], item: Pending) -> Outcome:
        """Queue ``item`` (its spec ``spec``, signature ``key``) and wait for its images."""
        batch = next((b for b in self.open if b.key == key and b.fits(item, self.limit)), None)
        if batch is None:
            base = item.seed if item.seed is not None else random.randrange(2**31)
            batch = Batch(key=key, spec=spec, base_seed=base)
            self.open.append(batch)
            batch.items.append(item)
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            batch.items.append(item)
        logger.debug("request %s joins a batch of %d image(s)", item.request_id, batch.size)
        if batch.size >= self.limit:
            batch.full.set()
        return await item.future

    @property
    def limit(self) -> int:
        return self.settings.max_batch_size

    async def _run(self, batch: Batch) -> None:
        try:
            if self.settings.wait_singletons:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.batch_timeout):
                        await batch.full.wait()
            await asyncio.sleep(0)  # requests that arrived in the same instant join
            while not batch.full.is_set() and await self._earlier_busy(batch):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(HOLD_POLL):
                        await batch.full.wait()
            self.open.remove(batch)
            spec = replace(batch.spec, seed=batch.base_seed, batch_count=batch.size)
            job = await self._submit(spec, batch.items[0].owner)
        except Exception as exc:
            if batch in self.open:
                self.open.remove(batch)
            for item in batch.items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        batch.job_id = job.id
        self.inflight[job.id] = batch
        self.jobs = [*self.jobs[-99:], job.id]
        logger.info(
            "batch job %s: %d request(s), %d image(s), seeds from %d",
            job.id, len(batch.items), batch.size, batch.base_seed,
        )  # fmt: skip
        try:
            done = await self._wait(job.id)
        except Exception as exc:
            for item in batch.items:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        finally:
            self.inflight.pop(job.id, None)
        self._finish(batch, done)

    def _finish(self, batch: Batch, job: Any) -> None:
        seeds = list(job.result.get("seeds") or []) if job.result else []
        offset = 0
        for item in batch.items:
            names = list(job.outputs[offset : offset + item.count])
            mine = seeds[offset : offset + item.count]
            offset += item.count
            if not item.future.done():
                item.future.set_result(Outcome(job, names, mine))
            if job.started_at:
                self._waits = [*self._waits[-999:], max(0.0, job.started_at - item.arrived)]
        if job.status == "completed":
            self.batches_processed += 1
            self.items_processed += batch.size
            self.requests_processed += len(batch.items)
            if seeds:
                self.last_seed = seeds[-1]
        logger.info("batch job %s %s", job.id, job.status)

    async def _earlier_busy(self, batch: Batch) -> bool:
        """Whether a batch submitted before this one still waits in the queue or runs."""
        for job_id in list(self.inflight):
            if await self._status(job_id) in ("queued", "processing"):
                return True
        return False

    # -- telemetry -------------------------------------------------------------------------
    async def pending(self) -> list[tuple[Batch, Pending]]:
        """Requests not yet started by the engine: collecting, or in a batch job still queued."""
        found = [(b, p) for b in self.open for p in b.items]
        for job_id, batch in list(self.inflight.items()):
            if await self._status(job_id) == "queued":
                found.extend((batch, p) for p in batch.items)
        return found

    def avg_processed_wait(self) -> float:
        return round(sum(self._waits) / len(self._waits), 3) if self._waits else 0.0
