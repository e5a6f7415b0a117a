"""The arithmetic of the model-switching, warm-job and cache rows: pure functions of measured
values, so tests/unit/test_bench_tools.py checks each row's ratio, goal and verdict without
timing anything. The modules that measure (switching.py, overhead.py, cache.py) only collect
the numbers and hand them here.
"""

from __future__ import annotations

import math
import statistics

from .table import Row, fmt, verdict

#: The issue's goal for the end-to-end wall of a warm job against sd-server's (#18).
WARM_JOB_LIMIT = 1.01
#: A switch between two loaded models may cost this much over a job on the same model: the
#: machines here are shared, so "no reload" is asserted by the load times, not by the ratio.
RESIDENT_SWITCH_LIMIT = 1.05
#: The "fast" preset's goal on the UNet model (#18): this speed-up at this PSNR or better.
FAST_SPEEDUP, FAST_PSNR = 1.5, 30.0


def ratio(ours: list[float], theirs: list[float]) -> float:
    """Median of ours over median of theirs: below 1 is faster."""
    return statistics.median(ours) / statistics.median(theirs)


def at_most(
    what: str,
    ours: list[float],
    theirs: list[float],
    limit: float | None,
    unit: str = "s",
    digits: int = 3,
) -> Row:
    """A row whose goal is ``ours <= limit x theirs`` (``limit`` None: an info row)."""
    r = ratio(ours, theirs)
    goal = "info" if limit is None else f"<= {limit:.2f}x"
    return Row(
        what,
        fmt(ours, unit, digits),
        fmt(theirs, unit, digits),
        f"{r:.3f}x",
        goal,
        "-" if limit is None else verdict(r <= limit),
    )


def load_row(label: str, ours: list[float], cli: list[float]) -> Row:
    """Model load: ``StableDiffusion()`` in a warm process vs sd-cli from its start to its
    first ``generate_image`` line (the engine context made). Goal <= 1.00x (#18)."""
    return at_most(
        f"{label}: model load, StableDiffusion() vs sd-cli start -> context made "
        "(file in page cache)",
        ours,
        cli,
        1.0,
    )


def resident_switch_row(
    label: str, switch: list[float], same: list[float], loads: list[float]
) -> Row:
    """A job on model B right after one on model A, both loaded, against a job on B right
    after one on B. PASS: no switch reloaded (every load time 0) and the wall is within
    RESIDENT_SWITCH_LIMIT of the same-model job's."""
    r = ratio(switch, same)
    reloads = sum(x > 0 for x in loads)
    return Row(
        f"{label}: switch to the other loaded model, job wall vs a job on the same model",
        fmt(switch),
        fmt(same),
        f"{r:.3f}x, reloads {reloads}/{len(loads)}",
        f"no reload, <= {RESIDENT_SWITCH_LIMIT:.2f}x",
        verdict(reloads == 0 and r <= RESIDENT_SWITCH_LIMIT),
    )


def evicted_switch_row(
    label: str,
    switch: list[float],
    cli: list[float],
    switch_loads: list[float],
    again_loads: list[float],
) -> Row:
    """A job on a model the cache evicted (it reloads) against sd-cli running the same job as a
    fresh process (what switching costs a sd-cli user). PASS: every switch reloaded exactly
    once (load time > 0, the next job on it 0) and its wall <= sd-cli's."""
    r = ratio(switch, cli)
    once = all(x > 0 for x in switch_loads) and not any(x > 0 for x in again_loads)
    return Row(
        f"{label}: switch to an evicted model (reloads), job wall vs a sd-cli run of that job",
        f"{fmt(switch)}, load {statistics.median(switch_loads):.3f} s",
        fmt(cli),
        f"{r:.3f}x, {'one reload per switch' if once else 'reloads differ'}",
        "reloads once, <= 1.00x",
        verdict(once and r <= 1.0),
    )


def first_step_row(label: str, resident: list[float], evicted: list[float]) -> Row:
    """Submit -> first sampling step reported, after a switch: loaded vs evicted model."""
    return Row(
        f"{label}: switch, submit -> first sampling step (loaded model | evicted model)",
        fmt(resident),
        fmt(evicted),
        f"reload adds {statistics.median(evicted) - statistics.median(resident):+.3f} s",
        "info",
        "-",
    )


def cold_start_row(label: str, ours: list[float], theirs: list[float]) -> Row:
    """Server process start -> first image in the client's hands, ours vs sd-server's."""
    return at_most(
        f"{label}: cold start, `sdcpp serve` start -> first image vs sd-server's",
        ours,
        theirs,
        None,
    )


def warm_job_row(label: str, ours: list[float], theirs: list[float]) -> Row:
    """End-to-end wall of a warm job: our submit -> final event -> PNG fetched, against
    sd-server's POST /sdapi/v1/txt2img answered with its image. Goal <= WARM_JOB_LIMIT (#18)."""
    return at_most(
        f"{label}: warm job end to end, submit -> image fetched vs sd-server txt2img",
        ours,
        theirs,
        WARM_JOB_LIMIT,
    )


def cache_row(
    model: str, what: str, seconds: list[float], off: list[float], psnr: float, goal_model: bool
) -> Row:
    """One step-cache candidate against ``off`` on the same model, seed and steps: speed-up
    (median off / median this) and the PSNR of its image against the off image. The "fast"
    preset on the model the #18 goal names (``goal_model``: the UNet model, synthetic SD1) has
    that goal; every other candidate is an info row (SDXS, distilled for one step, is not
    expected to hold 20 cached steps as close)."""
    speedup = statistics.median(off) / statistics.median(seconds)
    shown = "identical" if math.isinf(psnr) else f"{psnr:.1f} dB"
    goal, ok = "info", "-"
    if goal_model and what.startswith("preset fast"):
        goal = f">= {FAST_SPEEDUP}x at >= {FAST_PSNR:.0f} dB"
        ok = verdict(speedup >= FAST_SPEEDUP and psnr >= FAST_PSNR)
    return Row(
        f"cache: {model} {what}, speed-up and PSNR vs off",
        fmt(seconds),
        f"off {fmt(off)}",
        f"{speedup:.2f}x, {shown}",
        goal,
        ok,
    )
