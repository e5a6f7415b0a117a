"""Seed 000's answers: images, telemetry, and errors in FastAPI's shape (the seed's server is
FastAPI): ``{"detail": message}``, or for a body that fails validation 422
``{"detail": [{"type", "loc", "msg", "input"}]}``."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from starlette.responses import JSONResponse

from ...errors import error_headers, lookup
from ...memory import rss_mb
from .batcher import Batcher, Pending

PREVIEW_CHARS = 30
# GET /api/telemetry's keys as seed 000 lists them, in its order ("sdcpp" follows: ours)
TELEMETRY_KEYS = (
    "uptime_seconds", "pending_count", "pending_by_signature", "pending_preview",
    "max_batch_size", "batch_timeout", "batches_processed", "items_processed",
    "requests_processed", "avg_processed_wait_s", "pending_avg_wait_s", "memory_info",
    "loaded_models_count", "loaded_models", "pipeline_import_ok", "pipeline_import_error",
)  # fmt: skip
# what schemas.signature compares, in the payload's names
SIGNATURE_FIELDS = (
    "prompt", "negative_prompt", "width", "height", "steps", "guidance_scale", "sampler",
    "scheduler", "hires_fix", "img2img_image", "enable_preview",
)  # fmt: skip
VRAM_NOTE = (
    "this build runs the engine on the CPU backend only (GET /api/system 'backends'): "
    "there is no VRAM, so vram_allocated_mb and vram_reserved_mb are 0"
)


def error(exc: Exception) -> JSONResponse:
    """Any exception in FastAPI's error shape, with the one error table's HTTP status."""
    if isinstance(exc, ValidationError):
        detail = [
            {
                "type": err.get("type"),
                "loc": ["body", *err.get("loc", ())],
                "msg": err.get("msg"),
                "input": err.get("input"),
            }
            for err in exc.errors(include_url=False, include_context=False)
        ]
        return JSONResponse({"detail": detail}, status_code=422)
    status, _, message = lookup(exc, input_errors=True)
    return JSONResponse({"detail": message}, status_code=status, headers=error_headers(exc))


def images(folder: Path, names: list[str]) -> dict[str, Any]:
    """``{"image": b64}`` for one image, ``{"images": [...]}`` for more: the PNG files as the
    worker wrote them (their ``parameters`` text chunk included)."""
    encoded = [base64.b64encode((folder / name).read_bytes()).decode() for name in names]
    return {"image": encoded[0]} if len(encoded) == 1 else {"images": encoded}


def _preview(item: Pending, now: float) -> dict[str, Any]:
    prompt = item.prompt
    text = prompt if len(prompt) <= PREVIEW_CHARS else prompt[:PREVIEW_CHARS] + "..."
    return {
        "request_id": item.request_id,
        "waiting_s": round(now - item.arrived, 3),
        "prompt_preview": text,
    }


async def telemetry(
    state: Any, batcher: Batcher, counts: dict[str, dict[str, int]], may_see: Any
) -> dict[str, Any]:
    """Seed 000's keys, in its order, from this server; ``sdcpp`` is ours (what the seed's
    keys cannot say: why VRAM is 0, the ignored fields, the batch jobs)."""
    now = time.time()
    pending = await batcher.pending()
    by_signature: dict[str, int] = {}
    for batch, _ in pending:
        key = repr(batch.key[1:])  # without the owner
        by_signature[key] = by_signature.get(key, 0) + 1
    waits = [now - item.arrived for _, item in pending]
    server_rss, worker_rss = rss_mb(), rss_mb(state.engine.pid) if state.engine.pid else None
    loaded = [Path(path).name for path in state.jobs.loaded_models]
    engine_state = str(state.engine.state)
    return {
        "uptime_seconds": round(now - state.started, 2),
        "pending_count": len(pending),
        "pending_by_signature": by_signature,
        "pending_preview": [_preview(p, now) for _, p in pending if may_see(p.owner)][:10],
        "max_batch_size": batcher.settings.max_batch_size,
        "batch_timeout": batcher.settings.batch_timeout,
        "batches_processed": batcher.batches_processed,
        "items_processed": batcher.items_processed,
        "requests_processed": batcher.requests_processed,
        "avg_processed_wait_s": batcher.avg_processed_wait(),
        "pending_avg_wait_s": round(sum(waits) / len(waits), 3) if waits else 0.0,
        "memory_info": {
            "vram_allocated_mb": 0,
            "vram_reserved_mb": 0,
            "system_ram_mb": round((server_rss or 0) + (worker_rss or 0), 2),
        },
        "loaded_models_count": len(loaded),
        "loaded_models": loaded,
        "pipeline_import_ok": engine_state != "stopped",
        "pipeline_import_error": None if engine_state != "stopped" else "engine worker stopped",
        "sdcpp": {
            "vram_note": VRAM_NOTE,
            "system_ram_note": "resident set (VmRSS) of the server plus its engine worker",
            "server_rss_mb": server_rss,
            "worker_rss_mb": worker_rss,
            "wait_singletons": batcher.settings.wait_singletons,
            "ignored_fields": dict(counts["ignored"]),
            "unknown_fields": dict(counts["unknown"]),
            "batch_jobs": batcher.jobs[-20:],
            "signature_fields": list(SIGNATURE_FIELDS),
            # a PostgreSQL queue: every worker on it (host, device, models, current job, ...)
            **({"workers": w()} if (w := getattr(state.jobs, "workers", None)) else {}),
        },
    }
