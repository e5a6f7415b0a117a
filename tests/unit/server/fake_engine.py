"""A stand-in for the engine worker client: same interface, no native code, no process.

Jobs "generate" a solid-colour PNG after emitting the worker's progress phases: ``loading``
(when the job's model is not the loaded one), ``sampling`` (steps 0..steps), ``hires`` (when
the params ask for it), ``decoding``. The prompt steers failures ("__fail__" -> failed,
"__crash__" -> crashed, "__slow__" -> runs until cancelled).
Loads check the file as the worker does (``check_model_file``) and keep the loaded model when
that fails; a finished job leaves its model loaded, as the worker's model slot does.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image

from sdcpp._files import check_model_file
from sdcpp._pngmeta import save_png
from sdcpp.errors import ModelLoadError


class FakeEngine:
    def __init__(self) -> None:
        self.state = "stopped"
        self.pid = 12345
        self.restarts = 0
        self.runs: list[tuple[str, str, dict[str, Any]]] = []
        self.loaded_model: str | None = None
        self.loads: list[dict[str, Any]] = []
        self._cancelled: set[str] = set()
        self._stopped = False
        self._lock = threading.Lock()

    def start(self) -> None:
        self.state = "ready"
        with self._lock:
            self._stopped = False

    def stop(self, timeout: float = 10) -> None:
        self.state = "stopped"
        with self._lock:
            self._stopped = True

    def cancel(self, job_id: str, *, grace: float | None = None) -> bool:
        with self._lock:
            self._cancelled.add(job_id)
        return True

    def load(self, params: dict[str, Any]) -> dict[str, Any]:
        self.loads.append(params)
        try:
            check_model_file(params["model"], "model")
        except ModelLoadError as exc:
            return {
                "type": "failed",
                "job_id": "load",
                "error": str(exc),
                "code": "MODEL_LOAD_FAILED",
            }
        self.loaded_model = params["model"]
        return {"type": "loaded", "job_id": "load", "model": params["model"], "load_time": 0.01}

    def unload(self, model: str | None = None) -> dict[str, Any]:
        if model is None or model == self.loaded_model:
            self.loaded_model = None
        return {"type": "unloaded", "job_id": "unload"}

    def run(
        self, job_id: str, kind: str, params: dict[str, Any], output_dir: str, on_event: Any
    ) -> dict[str, Any]:
        self.runs.append((job_id, kind, params))
        self.state = "busy"
        try:
            prompt = params.get("prompt", "")
            if prompt == "__crash__":
                self.restarts += 1
                return {"type": "crashed", "job_id": job_id, "error": "worker crashed: SIGABRT"}
            if prompt == "__fail__":
                return {
                    "type": "failed",
                    "job_id": job_id,
                    "error": "boom",
                    "code": "INTERNAL_ERROR",
                }
            steps = int(params.get("steps") or 2)
            model = params.get("model") or params.get("diffusion_model")
            if model and model != self.loaded_model:
                for step in range(4):
                    on_event(_progress(job_id, "loading", step, 3))
            passes = [("sampling", steps)] + ([("hires", steps)] if params.get("hires") else [])
            for phase, total in passes:
                for step in range(total + 1 if prompt != "__slow__" else 10**6):
                    with self._lock:
                        if job_id in self._cancelled:
                            return {"type": "cancelled", "job_id": job_id}
                        if self._stopped:
                            return {"type": "crashed", "job_id": job_id, "error": "worker stopped"}
                    on_event(_progress(job_id, phase, min(step, total), total))
                    if params.get("preview") and 0 < step <= total:  # the worker's step previews
                        frame = Image.new("RGB", (32, 32), (step * 20 % 256, 0, 0))
                        on_event(
                            {"type": "preview", "job_id": job_id, "step": step, "png": _png(frame)}
                        )
                    time.sleep(0.01)
            on_event(_progress(job_id, "decoding", 0, 1))
            out = Path(output_dir)
            out.mkdir(parents=True, exist_ok=True)
            names = []
            for i in range(int(params.get("batch_count", 1))):
                image = Image.new(
                    "RGB",
                    (params.get("width") or 64, params.get("height") or 64),
                    (10 * i, 100, 200),
                )
                image.info["parameters"] = f"{prompt}\nSteps: {steps}, Seed: {i}"
                save_png(image, out / f"image_{i}.png")
                names.append(f"image_{i}.png")
            if model:
                self.loaded_model = model
            return {
                "type": "done",
                "job_id": job_id,
                "outputs": names,
                "result": {
                    "seeds": list(range(len(names))),
                    "generation_time": 0.01,
                    "parameters": [f"{prompt}"] * len(names),
                },
            }
        finally:
            self.state = "ready"


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _progress(job_id: str, phase: str, step: int, total: int) -> dict[str, Any]:
    return {
        "type": "progress",
        "job_id": job_id,
        "phase": phase,
        "step": step,
        "total": total,
        "elapsed": 0.0,
    }
