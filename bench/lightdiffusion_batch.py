"""Seed 000's batching: N same-signature requests coalesced into one job vs N separate jobs.

``python -m bench.lightdiffusion_batch [--requests 4] [--steps 4] [--size 64] [--rounds 3]``
starts a real ``sdcpp serve`` twice on the synthetic tiny model: once with
``LD_MAX_BATCH_SIZE=N LD_BATCH_WAIT_SINGLETONS=1`` (the N concurrent requests become one engine
call with ``batch_count=N``) and once with ``LD_MAX_BATCH_SIZE=1`` (N queued jobs). Each round
posts the N requests at once and times until the last answer; a warm-up round loads the model
first. Prints the medians and separate/coalesced (> 1: coalescing is faster).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx2 as httpx

from sdcpp import synthetic

from .server import Proc, free_port


def _round(url: str, n: int, body: dict[str, object]) -> float:
    errors: list[str] = []

    def post() -> None:
        r = httpx.post(f"{url}/api/generate", json=body, timeout=600)
        if r.status_code != 200:
            errors.append(r.text)

    threads = [threading.Thread(target=post) for _ in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return time.perf_counter() - started


def measure(knobs: dict[str, str], args: argparse.Namespace, work: Path) -> tuple[float, int]:
    """Median seconds per round of N concurrent requests, and the batch jobs the last made."""
    data = work / f"data-{knobs['LD_MAX_BATCH_SIZE']}"
    (data / "models" / "checkpoints").mkdir(parents=True)
    os.link(
        synthetic.cached_checkpoint(synthetic.TINY_VARIANT),
        data / "models" / "checkpoints" / "tiny.safetensors",
    )
    port = free_port()
    script = shutil.which("sdcpp") or str(Path(sys.executable).with_name("sdcpp"))
    env = {**os.environ, **knobs, "LD_BATCH_TIMEOUT": "5", "LD_SERVER_LOGLEVEL": "WARNING"}
    cmd = [script, "serve", "--port", str(port), "--data-dir", str(data)]
    proc = Proc(cmd, env, work / f"serve-{port}.log", port)
    proc.start("/readyz")
    body = {"prompt": "a lighthouse", "width": args.size, "height": args.size, "num_images": 1,
            "steps": args.steps}  # fmt: skip
    try:
        _round(proc.url, args.requests, body)  # warm-up: loads the model
        before = httpx.get(f"{proc.url}/api/telemetry", timeout=30).json()["batches_processed"]
        times = [_round(proc.url, args.requests, body) for _ in range(args.rounds)]
        after = httpx.get(f"{proc.url}/api/telemetry", timeout=30).json()["batches_processed"]
    finally:
        proc.stop()
    return statistics.median(times), (after - before) // args.rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = str(args.requests)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        together, jobs_a = measure(
            {"LD_MAX_BATCH_SIZE": n, "LD_BATCH_WAIT_SINGLETONS": "1"}, args, work
        )
        apart, jobs_b = measure(
            {"LD_MAX_BATCH_SIZE": "1", "LD_BATCH_WAIT_SINGLETONS": "0"}, args, work
        )
    print(
        f"{args.requests} requests, {args.size}x{args.size}, {args.steps} steps: coalesced "
        f"{together:.2f} s ({jobs_a} job/round), separate {apart:.2f} s ({jobs_b} jobs/round); "
        f"separate/coalesced = {apart / together:.2f}x"
    )


if __name__ == "__main__":
    main()
