"""A stand-in for the engine worker client: same interface, no native code, no process.

Jobs "generate" a solid-colour PNG after emitting progress events; the prompt steers failures
("__fail__" -> failed, "__crash__" -> crashed, "__slow__" -> runs until cancelled).
Loads check the file as the worker does (``check_model_file``) and keep the loaded model when
that fails; a finished job leaves its model loaded, as the worker's model slot does.
"""

from __future__ import annotations

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
            for step in range(1, steps + 1 if prompt != "__slow__" else 10**6):
                with self._lock:
                    if job_id in self._cancelled:
                        return {"type": "cancelled", "job_id": job_id}
                    if self._stopped:
                        return {"type": "crashed", "job_id": job_id, "error": "worker stopped"}
                on_event(
                    {
                        "type": "progress",
                        "job_id": job_id,
                        "phase": "sampling",
                        "step": min(step, steps),
                        "total": steps,
                        "elapsed": 0.0,
                    }
                )
                time.sleep(0.01)
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
            if params.get("model"):
                self.loaded_model = params["model"]
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
