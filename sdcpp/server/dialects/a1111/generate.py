"""txt2img/img2img: an A1111 request as ordinary queued jobs, one per ``n_iter`` batch.

A1111 runs ``n_iter`` batches of ``batch_size`` images one after another; so does this: each
batch is one job of the one queue (listed, owned, cancellable), submitted when the previous
one has ended. ``/interrupt`` stops the running batch within a step and ends the request with
the images finished so far; ``/skip`` stops the running batch and goes on with the next. A
client that disconnects cancels its running batch. Seeds follow A1111: ``-1`` picks one at
random, batch ``i`` starts at ``seed + i * batch_size``. img2img with several init images
runs each batch as one job per image (the engine takes one init image per job), image ``j``
of batch ``i`` with seed ``seed + i * batch_size + j``, as A1111 seeds its batch.

``hr_checkpoint_name``: the engine's hires pass runs inside the one job, on the model that
job loaded; it cannot switch checkpoints between the passes. So a name that resolves to the
request's own checkpoint (or "Use same checkpoint") runs, an unknown one answers A1111's
"Could not find checkpoint" as 404, and any other checkpoint is refused (400) saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ...._safetensors import atomic_write
from ....registry.errors import ModelNotFoundError, RegistryError
from ...auth.identity import identity_of
from ...errors import job_error
from ...exceptions import ScriptNotFound
from ...jobs import FINISHED
from . import catalog, inputs, options, render, samplers
from .schemas import Img2ImgRequest, Txt2ImgRequest, to_spec

DISCONNECT_CHECK = 0.5  # seconds between checks that the waiting client is still there
_SAME = ("", "use same sampler", "use same scheduler", "use same checkpoint")


@dataclass
class Outcome:
    images: list[bytes] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    infotexts: list[str] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    interrupted: bool = False
    disconnected: bool = False


def _check_hires(req: Txt2ImgRequest) -> None:
    """Second-pass settings the engine's hires fix cannot take differently from the first."""
    for name in ("hr_sampler_name", "hr_scheduler"):
        value = getattr(req, name)
        if value and value.strip().lower() not in _SAME:
            raise ValueError(f"{name}: the hires pass uses the first pass's; leave it out")
    for name, first in (("hr_prompt", req.prompt), ("hr_negative_prompt", req.negative_prompt)):
        if getattr(req, name) not in ("", first):
            raise ValueError(f"{name}: the hires pass uses the first pass's prompt")
    if req.refiner_checkpoint and req.refiner_checkpoint.lower() not in ("", "none"):
        raise ValueError("refiner_checkpoint: this engine has no second-model refiner pass")


def _check_hr_checkpoint(registry: Any, req: Txt2ImgRequest, model: str | None) -> None:
    """``hr_checkpoint_name`` may only name the checkpoint the job runs with (module doc)."""
    name = (req.hr_checkpoint_name or "").strip()
    if name.lower() in _SAME:
        return
    try:
        entry = catalog.find_checkpoint(registry, name)
    except ModelNotFoundError:
        raise ModelNotFoundError(f"Could not find checkpoint with name {name}") from None
    if entry.id != model:
        raise ValueError(
            f"hr_checkpoint_name: {name!r} is another checkpoint than the first pass's; this "
            "engine runs the hires pass in the same job on the same model and cannot switch "
            "checkpoints between the passes (leave it out, or name the request's own)"
        )


@dataclass(frozen=True, slots=True)
class Batch:
    """One job of a request: its first seed, image count and (img2img) init image."""

    seed: int
    count: int
    init: bytes | None = None
    paste: inputs.PasteBack | None = None


def batches(req: Txt2ImgRequest, seed: int, prepared: inputs.Prepared | None) -> Iterator[Batch]:
    """The request's jobs in order (module doc: one per batch, or one per init image)."""
    images = prepared.inits if prepared is not None else [None]
    pastes = prepared.pastes if prepared is not None else [None]
    for i in range(req.n_iter):
        first = seed + i * req.batch_size
        if len(images) == 1:
            yield Batch(first, req.batch_size, images[0], pastes[0])
            continue
        for j, (init, paste) in enumerate(zip(images, pastes, strict=True)):
            yield Batch(first + j, 1, init, paste)


def _check_scripts(req: Txt2ImgRequest) -> None:
    """A1111 answers 422 for a script it does not have; there are none here (``/scripts``).
    An always-on script sent switched off (``args`` empty or starting with false, as webuiapi
    and SillyTavern send ADetailer/ControlNet when unused) changes nothing and passes."""
    if req.script_name:
        raise ScriptNotFound(f"Script '{req.script_name}' not found")
    for name, value in (req.alwayson_scripts or {}).items():
        args = value.get("args", []) if isinstance(value, dict) else []
        if args and args[0] is not False:
            raise ScriptNotFound(f"always on script {name} not found")


async def wait_for(request: Request, job_id: str, events: asyncio.Queue[Any]) -> Any:
    """The job once finished; None (after cancelling it) if the client went away."""
    jobs = request.app.state.jobs
    while (current := jobs.store.get(job_id)).status not in FINISHED:
        if await request.is_disconnected():
            jobs.cancel(job_id)
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DISCONNECT_CHECK):
                while True:
                    data = (await events.get())["data"]
                    if data.get("job_id") == job_id and data.get("status") in FINISHED:
                        break
    return current


def _collect(
    request: Request, job: Any, out: Outcome, keep: bool, paste: inputs.PasteBack | None
) -> None:
    jobs = request.app.state.jobs
    folder = jobs.output_dir(job.id)
    for name in job.outputs:
        data = (folder / name).read_bytes()
        if paste is not None:  # "only masked": back into the original, and so on disk too
            data = inputs.paste_back(data, paste)
            if keep:
                atomic_write(folder / name, [data])
        out.images.append(data)
    result = job.result or {}
    out.seeds.extend(int(s) for s in result.get("seeds", []))
    out.infotexts.extend(str(p) for p in result.get("parameters", []))
    out.width, out.height = result.get("width") or out.width, result.get("height") or out.height
    if not keep:  # save_images false: A1111 writes nothing to disk
        shutil.rmtree(folder, ignore_errors=True)


async def run(request: Request, req: Txt2ImgRequest) -> tuple[Outcome, Any]:
    """Run every batch of ``req``; (outcome, checkpoint entry used)."""
    app = request.app.state
    dialect = options.state_of(app)
    owner = identity_of(request.scope).job_owner
    registry = app.registry
    settings = await run_in_threadpool(
        options.settings_for, dialect, registry, owner, req.override_settings, app.settings.model
    )
    req.sampler()  # unknown names: refused before anything is queued
    _check_scripts(req)
    seed = req.seed if req.seed >= 0 else random.randrange(4294967294)
    hires = prepared = None
    if isinstance(req, Img2ImgRequest):
        prepared = await run_in_threadpool(inputs.prepare, req, app.settings.max_image_pixels, seed)
        req.width, req.height = prepared.width, prepared.height
        if len(prepared.inits) > 1:  # A1111: the batch is one image per init image
            req.batch_size = len(prepared.inits)
    elif req.enable_hr:
        _check_hires(req)
        await run_in_threadpool(_check_hr_checkpoint, registry, req, settings.model)
        upscaler, path = await run_in_threadpool(catalog.hires_upscaler, registry, req.hr_upscaler)
        hires = req.hires(upscaler, path)
    mask = prepared.mask if prepared is not None else None
    control = options.Run(owner)
    dialect.interrupted = dialect.skipped = False
    out = Outcome()
    async with app.events.subscribe() as events:
        for batch in batches(req, seed, prepared):
            spec = to_spec(req, settings, seed=batch.seed, hires=hires, init_image=batch.init,
                           mask_image=mask, batch_count=batch.count)  # fmt: skip
            job = await run_in_threadpool(app.generation.submit_spec, spec, owner)
            control.job_id, control.skipped = job.id, False
            dialect.runs[job.id] = control
            try:
                job = await wait_for(request, job.id, events)
            finally:
                dialect.runs.pop(control.job_id, None)
            if job is None:
                out.disconnected = True
                return out, None
            if job.status == "completed":
                await run_in_threadpool(_collect, request, job, out, req.save_images, batch.paste)
            elif job.status == "cancelled" and control.skipped and not control.interrupted:
                continue
            elif job.status == "cancelled":
                out.interrupted = True
                break
            elif not out.images:
                raise job_error(job)  # the table's status for the job's code
            else:
                break  # a later batch failed: answer with the images made before it
    entry = await run_in_threadpool(_checkpoint, request, settings.model)
    return out, entry


def _checkpoint(request: Request, model: str | None) -> Any:
    """The entry the jobs ran with (for ``info``): the chosen one, else the server's default,
    else the first image model (as the plan picks). None if it has gone meanwhile."""
    app = request.app.state
    registry = app.registry
    try:
        if model or app.settings.model:
            return registry.get(model or app.settings.model, type=catalog.IMAGE_TYPES)
    except RegistryError:
        return None
    found = registry.list(type=catalog.IMAGE_TYPES, limit=1).items
    return found[0] if found else None


def answer(req: Txt2ImgRequest, out: Outcome, entry: Any, started: float) -> dict[str, Any]:
    sampler, _ = req.sampler()
    info = render.info(
        req,
        seeds=out.seeds,
        infotexts=out.infotexts,
        width=out.width or req.width,
        height=out.height or req.height,
        checkpoint=entry,
        sampler=samplers.sampler_label(sampler),
        started=started,
        interrupted=out.interrupted,
    )
    include = getattr(req, "include_init_images", True)
    return {
        "images": [render.b64(data) for data in out.images] if req.send_images else [],
        "parameters": render.parameters(req, include),
        "info": info,
    }
