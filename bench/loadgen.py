"""The control plane's load generator, in a process of its own.

    python -m bench.loadgen URL RATE SECONDS PATH [PATH ...]   -> one JSON line

Its own process, so that nothing else in the bench process competes with it for the GIL
while it times requests: the SSE reader that follows our jobs and the thread that reads
sd-server's log lines (a progress line per step) each took turns with the timing loop, and
each only while its own server was measured.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parents[1]


def load(
    base: str, paths: list[str], rate: float, seconds: float
) -> tuple[dict[str, list[float]], int]:
    """``open_loop`` run in a child process: latencies (ms) per path, and the error count."""
    cmd = [sys.executable, "-m", "bench.loadgen", base, str(rate), str(seconds), *paths]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return result["latencies"], int(result["errors"])


async def open_loop(
    base: str, paths: list[str], rate: float, seconds: float
) -> tuple[dict[str, list[float]], int]:
    """GET ``paths`` in turn at ``rate``/s for ``seconds``: latencies (ms) per path, errors.

    Open loop: request i starts at t0 + i/rate whether or not earlier ones answered, so a slow
    server cannot slow the load down. Bounded: rate*seconds requests, 2 s timeout each, at most
    8 connections. Every request opens a new connection, for both servers: on a kept-alive
    connection sd-server stalls ~44 ms per GET (a delayed-ACK/Nagle interaction), which would
    measure its socket handling rather than its behaviour during generation.
    """
    latencies: dict[str, list[float]] = {p: [] for p in paths}
    errors = 0
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=2) as client:

        async def one(path: str) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                response = await client.get(path)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies[path].append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        tasks = []
        for i in range(int(rate * seconds)):
            delay = t0 + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(paths[i % len(paths)])))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
    return latencies, errors


def main() -> int:
    base, rate, seconds, *paths = sys.argv[1:]
    latencies, errors = asyncio.run(open_loop(base, paths, float(rate), float(seconds)))
    print(json.dumps({"latencies": latencies, "errors": errors}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
