"""The bench's shared pieces: a result row, its formatting, and timed child processes."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Row:
    what: str
    ours: str
    baseline: str
    ratio: str
    goal: str
    verdict: str


def run_child(python: str, kind: str, model: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement child (its JSON result).

    The child runs as a script from a scratch directory, so ``import sdcpp`` finds the package
    installed in ``python``'s environment, never this checkout's sources.
    """
    proc = subprocess.Popen(
        [python, str(ROOT / "bench" / "children.py"), kind, str(model), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({proc.returncode}):\n{err[-3000:]}")
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    return json.loads(line[6:])


def timed_process(cmd: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, combined output) of one command."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out


def median_spread(values: list[float]) -> tuple[float, float]:
    med = statistics.median(values)
    return med, (max(values) - min(values)) if len(values) > 1 else 0.0


def fmt(values: list[float], unit: str = "s", digits: int = 3) -> str:
    med, spread = median_spread(values)
    return f"{med:.{digits}f} {unit} (±{spread / 2:.{digits}f}, n={len(values)})"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
