"""Scale-out rows (#19): ``python -m bench.scaleout [--jobs N] [--rounds N] [--steps N]``.

On one throw-away PostgreSQL (``tests/unit/pg_server.py``: ``initdb`` + ``pg_ctl`` on loopback,
removed at the end), one API process (``sdcpp serve --no-worker``) and ``sdcpp worker``s, the
tiny synthetic model (``synthetic.TINY_VARIANT``), in one run:

- throughput: the same batch of jobs with 1 worker of all the machine's threads, then 2
  workers with half each (this machine has 2 cores: the question is whether splitting them
  costs anything, not a speed-up from more hardware). Jobs per second from the first job's
  ``queued_time`` to the last one's ``end_time``, both on the database's clock; each setup
  first runs a warm-up batch so every worker has its model loaded.
- dispatch overhead: submit -> running (``start_time - queued_time`` of a job sent to an idle
  queue, both the store's clock) on PostgreSQL (a separate worker process, woken by NOTIFY)
  and on SQLite (the default ``sdcpp serve``, whose dispatcher is woken in-process), rounds
  interleaved.

The arithmetic is in the pure functions below (``throughput``, ``throughput_row``,
``dispatch_row``), unit-tested in tests/unit/test_bench_tools.py; the rest only measures.
Needs PostgreSQL binaries, psycopg, pytest (the test server helper) and httpx2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .table import Row, fmt, verdict

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
#: A worker polls the queue every second when it hears no NOTIFY: a dispatch slower than this
#: means it waited for the poll.
DISPATCH_LIMIT_MS = 100.0
#: Two workers splitting the cores may lose this much throughput to one with all of them.
SPLIT_LIMIT = 0.90


# -- arithmetic (unit-tested) -------------------------------------------------------------------


def throughput(jobs: Sequence[dict[str, Any]]) -> float:
    """Jobs per second of a batch: count over first queued -> last ended."""
    if not jobs:
        raise ValueError("no jobs")
    start = min(float(j["queued_time"]) for j in jobs)
    end = max(float(j["end_time"]) for j in jobs)
    if end <= start:
        raise ValueError("the batch ended before it started")
    return len(jobs) / (end - start)


def dispatch_ms(job: dict[str, Any]) -> float:
    """Submit -> running of one job, in milliseconds."""
    return (float(job["start_time"]) - float(job["queued_time"])) * 1000


def throughput_row(label: str, one: list[float], two: list[float], threads: int) -> Row:
    """2 workers of ``threads // 2`` threads against 1 of ``threads``: jobs/s, ratio, goal."""
    ratio = statistics.median(two) / statistics.median(one)
    return Row(
        f"scale-out: {label}, throughput of 2 workers x {threads // 2} threads vs "
        f"1 worker x {threads} (one PostgreSQL)",
        fmt(two, "jobs/s"),
        fmt(one, "jobs/s"),
        f"{ratio:.2f}x",
        f">= {SPLIT_LIMIT:.2f}x",
        verdict(ratio >= SPLIT_LIMIT),
    )


def dispatch_row(label: str, postgres: list[float], sqlite: list[float]) -> Row:
    """Submit -> running on PostgreSQL (remote worker) vs SQLite (in-process dispatcher)."""
    pg, lite = statistics.median(postgres), statistics.median(sqlite)
    return Row(
        f"scale-out: {label}, dispatch overhead submit -> running, PostgreSQL + worker vs "
        "SQLite serve",
        fmt(postgres, "ms", 1),
        fmt(sqlite, "ms", 1),
        f"{pg - lite:+.1f} ms",
        f"<= {DISPATCH_LIMIT_MS:g} ms (no poll wait)",
        verdict(pg <= DISPATCH_LIMIT_MS),
    )


# -- measuring ----------------------------------------------------------------------------------


def _sdcpp() -> str:
    return shutil.which("sdcpp") or str(Path(sys.executable).with_name("sdcpp"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Setup:
    """Processes of one measurement, stopped (SIGTERM, then SIGKILL) on close."""

    def __init__(self, root: Path, model: Path, env: dict[str, str]) -> None:
        self.root, self.env = root, env
        self.models = root / "models"
        (self.models / "checkpoints").mkdir(parents=True, exist_ok=True)
        target = self.models / "checkpoints" / "tiny.safetensors"
        if not target.exists():
            os.link(model, target)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.url = ""

    def _spawn(self, args: list[str], log: str, extra: dict[str, str]) -> None:
        with open(self.root / log, "ab") as out:
            proc = subprocess.Popen(
                [_sdcpp(), *args], env={**self.env, **extra}, stdout=out, stderr=out
            )
        self.procs.append(proc)

    def serve(self, name: str, extra: dict[str, str], threads: int) -> None:
        import httpx2 as httpx

        port = _free_port()
        data = self.root / name
        data.mkdir(exist_ok=True)
        if not (data / "models").exists():
            (data / "models").symlink_to(self.models, target_is_directory=True)
        args = ["serve", "--port", str(port), "--data-dir", str(data)]
        self._spawn(args, f"{name}.log", {"SDCPP_THREADS": str(threads), **extra})
        self.url = f"http://{HOST}:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not become ready; see {self.root / name}.log")

    def worker(self, database: str, threads: int, outputs: Path, i: int) -> None:
        args = ["worker", "--database", database, "--models-dir", str(self.models)]
        args += ["--output-dir", str(outputs), "--data-dir", str(self.root / f"worker{i}")]
        self._spawn([*args, "--threads", str(threads)], f"worker{i}.log", {})

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _request(steps: int, size: int, seed: int) -> dict[str, Any]:
    return {"prompt": "a red fox", "width": size, "height": size, "steps": steps, "seed": seed}


def run_batch(
    url: str, bodies: list[dict[str, Any]], timeout: float = 1800
) -> list[dict[str, Any]]:
    """Submit every body, then wait for all of them; their final job JSONs."""
    import httpx2 as httpx

    with httpx.Client(base_url=url, timeout=30) as client:
        ids = []
        for body in bodies:
            answer = client.post("/api/generate/text2img", json=body)
            answer.raise_for_status()
            ids.append(str(answer.json()["job_id"]))
        done: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while len(done) < len(ids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(ids) - len(done)} jobs did not finish")
            for job_id in ids:
                if job_id not in done:
                    job = client.get(f"/api/queue/job/{job_id}").json()
                    if job["status"] in ("completed", "failed", "cancelled"):
                        if job["status"] != "completed":
                            raise RuntimeError(f"job {job_id} {job['status']}: {job['error']}")
                        done[job_id] = job
            time.sleep(0.05)
    return [done[i] for i in ids]


def _wait_workers(url: str, n: int) -> None:
    import httpx2 as httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        workers = httpx.get(f"{url}/api/status", timeout=5).json().get("workers", [])
        if len([w for w in workers if w.get("state") != "lost"]) >= n:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{n} workers did not register")


@contextmanager
def postgres_setup(
    server: Any, root: Path, model: Path, env: dict[str, str], workers: int, threads: int
) -> Iterator[Setup]:
    """A fresh schema, one ``--no-worker`` API process and ``workers`` workers."""
    database = server.fresh_url()
    setup = Setup(root, model, env)
    outputs = root / "outputs"
    try:
        shared = {"SDCPP_DATABASE_URL": database, "SDCPP_OUTPUT_DIR": str(outputs)}
        setup.serve("api", {**shared, "SDCPP_RUN_WORKER": "0"}, threads)
        for i in range(workers):
            setup.worker(database, max(1, threads // workers), outputs, i)
        _wait_workers(setup.url, workers)
        yield setup
    finally:
        setup.close()


def measure(args: argparse.Namespace) -> list[Row]:
    sys.path.insert(0, str(ROOT / "tests" / "unit"))
    from pg_server import start_server  # the tests' throw-away server: same facts, same cleanup

    from sdcpp import synthetic

    model = synthetic.cached_checkpoint(synthetic.TINY_VARIANT)
    env = {**os.environ, "SDCPP_WORKER_IDLE_PRIORITY": "0", "SDCPP_WORKER_NICE": "0"}
    server = start_server()
    label = f"tiny {args.size}x{args.size} {args.steps} steps"
    try:
        with tempfile.TemporaryDirectory(prefix="sdcpp-bench-scaleout-") as tmp:
            root = Path(tmp)
            rates: dict[int, list[float]] = {1: [], 2: []}
            for workers in (1, 2):
                with postgres_setup(server, root / f"w{workers}", model, env, workers, 2) as s:
                    run_batch(s.url, [_request(args.steps, args.size, i) for i in range(2)])
                    for r in range(args.rounds):
                        bodies = [
                            _request(args.steps, args.size, r * 100 + i) for i in range(args.jobs)
                        ]
                        rates[workers].append(throughput(run_batch(s.url, bodies)))
                        print(
                            f"{workers} worker(s), round {r + 1}: {rates[workers][-1]:.3f} jobs/s"
                        )
            pg_ms: list[float] = []
            lite_ms: list[float] = []
            with postgres_setup(server, root / "dispatch-pg", model, env, 1, 2) as pg:
                lite = Setup(root / "dispatch-sqlite", model, env)
                try:
                    lite.serve("serve", {}, 2)
                    for r in range(args.rounds * 2):  # interleaved: the same load for both
                        for url, into in ((pg.url, pg_ms), (lite.url, lite_ms)):
                            job = run_batch(url, [_request(1, args.size, r)])[0]
                            into.append(dispatch_ms(job))
                finally:
                    lite.close()
    finally:
        server.stop()
    return [throughput_row(label, rates[1], rates[2], 2), dispatch_row(label, pg_ms, lite_ms)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--jobs", type=int, default=8, help="jobs per throughput batch")
    parser.add_argument("--rounds", type=int, default=3, help="batches per setup")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args(argv)
    rows = measure(args)
    print("| measurement | sdcpp | baseline | ratio | goal | verdict |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.what} | {r.ours} | {r.baseline} | {r.ratio} | {r.goal} | {r.verdict} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
