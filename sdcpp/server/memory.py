"""Process memory figures read from ``/proc`` (Linux): resident set size in MiB.

RSS is the process's pages resident in RAM: for the worker that is the loaded weights, the
engine's compute buffers and Python. Elsewhere (no ``/proc``) the figures are None, never a guess.
"""

from __future__ import annotations

import os
from pathlib import Path


def rss_mb(pid: int | None = None) -> float | None:
    """``VmRSS`` of ``pid`` (this process when None) in MiB, or None when unreadable."""
    status = Path(f"/proc/{pid or os.getpid()}/status")
    try:
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 2)  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        return None
    return None
