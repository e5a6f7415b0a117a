"""A job's progress: one monotonic fraction over the whole job, its phase, steps and ETA.

The worker reports ``(phase, step, total)`` of the phase it is in (``loading`` tensors,
``sampling`` steps of every image of the batch, the ``hires`` second pass, ``decoding``,
``saving``; ``converting`` for conversions). Each phase owns a fixed share of the job, in order,
so ``progress`` is the shares of the phases done plus the current phase's share times its
``step / total``. It never goes backwards: a report that would lower it (a late message of an
earlier phase) changes the phase shown, not the fraction. A phase that does not happen (no
``loading`` for a cached model, no ``hires`` pass) is skipped forward.

Job JSON fields (seed 004's plus ours, kept consistent)::

    phase          queued | starting | loading | sampling | hires | decoding | saving | done
                   (converting for conversions); a failed or cancelled job keeps the phase it
                   ended in
    progress       0.0 .. 1.0 over the whole job, monotonic; 1.0 only when completed
    step           the current phase's step (tensors loaded, sampling steps, images saved)
    current_step   = step (seed 004's name)
    total_steps    the current phase's total; a completed job keeps the counts of its last
                   sampling phase (e.g. 20/20)
    eta_s          seconds left, from the current phase's measured step rate (None until a step
                   of a non-loading phase was measured; 0 when finished)
    time_remaining = eta_s in milliseconds (seed 004)
    speed          steps per second in the current phase (seed 004)
    sampling_pass  while running: sampling phases entered (1 sampling, 2 hires)

A finished job stores its last record (``final``) in its result under ``progress``, so a
completed job still shows its phase and step counts after the live state is gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

IMAGE_KINDS = frozenset({"txt2img", "img2img", "inpaint", "inpainting", "controlnet"})
SAMPLING_PHASES = ("sampling", "hires")
# Shares of the job per phase, in order. Fixed guesses of where the time goes on a typical
# job (sampling dominates); they only need to be in order and to sum to 1.
_IMAGE = (("loading", 0.10), ("sampling", 0.80), ("decoding", 0.08), ("saving", 0.02))
_HIRES = (
    ("loading", 0.10),
    ("sampling", 0.40),
    ("hires", 0.40),
    ("decoding", 0.08),
    ("saving", 0.02),
)
_PLANS: dict[str, tuple[tuple[str, float], ...]] = {
    "video": (("loading", 0.10), ("sampling", 0.70), ("decoding", 0.10), ("saving", 0.10)),
    "upscale": (("loading", 0.20), ("sampling", 0.70), ("saving", 0.10)),
    "convert": (("converting", 0.95), ("saving", 0.05)),
}
RUNNING_CAP = 0.999  # 1.0 means completed: a running job never shows it


def phase_plan(kind: str, params: Mapping[str, Any]) -> list[tuple[str, float]]:
    """The phases a job of ``kind`` goes through, in order, with their shares of the job."""
    if kind in IMAGE_KINDS:
        return list(_HIRES if has_hires(params) else _IMAGE)
    return list(_PLANS.get(kind, _IMAGE))


def has_hires(params: Mapping[str, Any]) -> bool:
    hires = params.get("hires")
    return isinstance(hires, Mapping) and str(hires.get("upscaler", "")).lower() != "none"


class ProgressTracker:
    """Progress of the running job (in memory: it changes several times a second)."""

    def __init__(
        self,
        kind: str,
        params: Mapping[str, Any],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._plan = phase_plan(kind, params)
        self._started_wall = time.time()
        self.phase = "starting"
        self.step = 0
        self.total = 0
        self.fraction = 0.0
        self.preview: bytes | None = None
        self._phase_t0 = clock()  # when the current phase began
        self._phase_f0 = 0.0  # the fraction then
        self._phase_step0 = 0  # its first step seen
        self._last_sampling: tuple[int, int] | None = None
        self.sampling_pass = 0  # sampling phases entered: 1 sampling, 2 its hires pass

    def update(self, phase: str, step: int, total: int) -> None:
        now = self._clock()
        if phase != self.phase:
            self._enter(phase)
            self.phase = phase
            self.sampling_pass += phase in SAMPLING_PHASES
            self._phase_t0, self._phase_f0, self._phase_step0 = now, self.fraction, step
        self.step, self.total = max(0, step), max(0, total)
        if phase in SAMPLING_PHASES:
            self._last_sampling = (self.step, self.total)
        target = self._fraction_in(phase)
        if target is not None:
            self.fraction = min(RUNNING_CAP, max(self.fraction, target))

    def _enter(self, phase: str) -> None:
        """The first report of a job that skips ``loading`` (a cached model) starts the plan at
        its phase: nothing was shown yet, so the skipped share is dropped, not jumped over."""
        names = [name for name, _ in self._plan]
        if self.fraction == 0.0 and self.phase == "starting" and phase in names:
            rest = self._plan[names.index(phase) :]
            scale = sum(w for _, w in rest) or 1.0
            self._plan = [(name, w / scale) for name, w in rest]

    def _fraction_in(self, phase: str) -> float | None:
        start = 0.0
        for name, weight in self._plan:
            if name == phase:
                within = min(1.0, self.step / self.total) if self.total else 0.0
                return start + weight * within
            start += weight
        return None  # a phase the plan does not know: shown, the fraction held

    def eta_s(self) -> float | None:
        """Seconds left: the rest of the job at the rate the current phase has moved the
        fraction, i.e. its measured steps per second."""
        if self.phase in ("loading", "starting") or self.step <= self._phase_step0:
            return None
        elapsed = self._clock() - self._phase_t0
        moved = self.fraction - self._phase_f0
        if elapsed <= 0 or moved <= 0:
            return None
        return (1.0 - self.fraction) * elapsed / moved

    def speed(self) -> float | None:
        elapsed = self._clock() - self._phase_t0
        steps = self.step - self._phase_step0
        return steps / elapsed if steps > 0 and elapsed > 0 else None

    def view(self) -> dict[str, Any]:
        eta = self.eta_s()
        return {
            "phase": self.phase,
            "progress": round(self.fraction, 4),
            "step": self.step,
            "current_step": self.step,
            "total_steps": self.total,
            "eta_s": None if eta is None else round(eta, 1),
            "time_elapsed": int((time.time() - self._started_wall) * 1000),
            "time_remaining": None if eta is None else int(eta * 1000),
            "speed": self.speed(),
            "sampling_pass": self.sampling_pass,
        }

    def final(self, status: str) -> dict[str, Any]:
        """The record a finished job keeps (``result["progress"]``)."""
        if status == "completed":  # every step of its last sampling phase was done
            _, total = self._last_sampling or (self.step, self.total)
            return {"phase": "done", "progress": 1.0, "step": total, "total_steps": total}
        return {
            "phase": self.phase,
            "progress": round(self.fraction, 4),
            "step": self.step,
            "total_steps": self.total,
        }


def progress_fields(
    status: str, params: Mapping[str, Any], result: Mapping[str, Any], live: Any
) -> dict[str, Any]:
    """The progress fields of a job's JSON: live while it runs, else what it ended with."""
    if live is not None and status == "processing":
        data: dict[str, Any] = live.view()
        data["has_preview"] = live.preview is not None
        return data
    steps = int(params.get("steps") or 0)
    stored = result.get("progress")
    if isinstance(stored, Mapping) and status != "queued":
        record = dict(stored)
    elif status == "completed":  # finished before progress was recorded
        record = {"phase": "done", "progress": 1.0, "step": steps, "total_steps": steps}
    else:  # queued, or ended without running (cancelled in the queue)
        phase = "starting" if status == "processing" else "queued"
        record = {"phase": phase, "progress": 0.0, "step": 0, "total_steps": steps}
    finished = status in ("completed", "failed", "cancelled")
    return {
        "phase": record.get("phase"),
        "progress": record.get("progress", 0.0),
        "step": record.get("step", 0),
        "current_step": record.get("step", 0),
        "total_steps": record.get("total_steps", 0),
        "eta_s": 0.0 if finished else None,
        "time_remaining": 0 if finished else None,
        "speed": None,
    }
