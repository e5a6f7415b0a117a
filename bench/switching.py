"""Model load, model switching and cold start rows (#18), on synthetic models only.

- load: ``StableDiffusion()`` in a warm process against sd-cli from its start to its first
  ``generate_image`` line (the engine context exists then), same file, threads and flags, the
  file in page cache for both (one discarded run of each first);
- switch: two same-sized synthetic SDXS files (seeds 0 and 1) in one ``sdcpp serve``; a job on
  B right after one on A, with both kept loaded (``max_loaded_models`` 2) and with the cache
  holding one (the default: B was evicted, it reloads once);
- cold start: server process start -> first image in the client's hands, ours and sd-server's,
  both asked with the same A1111 ``POST /sdapi/v1/txt2img`` body as soon as they answer.

The arithmetic of each row is in rows.py (unit-tested); this module only measures.
"""

from __future__ import annotations

import collections
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2 as httpx

from sdcpp import synthetic

from . import rows
from .baselines import build_sd_server
from .events import JobEvents
from .server import CFG, ENGINE_START, HOST, PROMPT, SAMPLER, Proc, free_port
from .table import run_child, timed_process

if TYPE_CHECKING:
    from .run import Bench

STEPS, SIZE = 4, 64
POLL = 0.01  # seconds between readiness probes in the cold start: at most this much is added


def server_env(bench: Bench) -> dict[str, str]:
    """Our server's environment: the bench's threads, and its engine thread at the priority
    sd-cli and sd-server run at. By default it runs niced in the SCHED_IDLE class, which on
    these shared machines hands every busy spell's CPU to other people's work (a 4-step job
    took 64 s instead of 2 during a compile); the rows compare engines, not schedulers."""
    env = {**os.environ, "SDCPP_THREADS": str(bench.threads)}
    return env | {"SDCPP_WORKER_IDLE_PRIORITY": "0", "SDCPP_WORKER_NICE": "0"}


def second_model() -> Path:
    """A synthetic SDXS file the size of the cached one, with other weights (seed 1), so the
    server sees two distinct models (different hashes). Written once, atomically."""
    path = (
        synthetic.default_cache_dir() / f"bench-sdxs-seed1-v{synthetic.FORMAT_VERSION}.safetensors"
    )
    if not path.exists():
        synthetic.write_checkpoint(path, "sdxs", seed=1)
    return path


def cli_args(bench: Bench, model: Path, out: Path, steps: int = STEPS) -> list[str]:
    args = [str(bench.sd_cli), "-m", str(model), "-p", PROMPT, "-W", str(SIZE), "-H", str(SIZE)]
    args += ["--steps", str(steps), "-s", "42", "-t", str(bench.threads)]
    return [*args, "--cfg-scale", str(CFG), "--sampling-method", SAMPLER, "-o", str(out)]


def sd_cli_load(bench: Bench, model: Path) -> float:
    """Seconds from spawning sd-cli to its first ``generate_image`` line (flushed per line)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cli_args(bench, model, bench.work / "load.png", steps=1),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    ready: float | None = None
    tail: collections.deque[str] = collections.deque(maxlen=40)
    for line in proc.stdout:
        if ready is None and ENGINE_START.search(line):
            ready = time.perf_counter()
        tail.append(line)
    if proc.wait() != 0 or ready is None:
        raise RuntimeError("sd-cli failed or logged no generate_image:\n" + "".join(tail))
    return ready - started


def load_rows(bench: Bench, model: Path, label: str) -> None:
    args = {"width": SIZE, "height": SIZE, "steps": 1, "seed": 42, "prompt": PROMPT}
    args |= {"threads": bench.threads, "repeats": 1, "eta": 1.0}
    run_child(bench.sdcpp_python, "sdcpp", model, args)  # page cache, both sides
    sd_cli_load(bench, model)
    ours, theirs = [], []
    for _ in range(3 if bench.quick else 7):
        ours.append(run_child(bench.sdcpp_python, "sdcpp", model, args)["load_s"])
        theirs.append(sd_cli_load(bench, model))
    bench.add(rows.load_row(label, ours, theirs))


class TwoModels:
    """``sdcpp serve`` over a data dir holding models A and B, keeping ``keep`` loaded."""

    def __init__(self, bench: Bench, a: Path, b: Path, keep: int) -> None:
        root = Path(tempfile.mkdtemp(prefix=f"switch{keep}-", dir=bench.work))
        checkpoints = root / "data" / "models" / "checkpoints"
        checkpoints.mkdir(parents=True)
        for name, path in (("a", a), ("b", b)):
            os.link(path, checkpoints / f"{name}.safetensors")  # hard links: no copies
        port = free_port()
        env = server_env(bench) | {"SDCPP_MAX_LOADED_MODELS": str(keep)}
        cmd = [str(Path(bench.sdcpp_python).with_name("sdcpp")), "serve", "--host", HOST]
        cmd += ["--port", str(port), "--data-dir", str(root / "data")]
        self.proc = Proc(cmd, env, root / "serve.log", port)
        self.proc.start("/readyz")
        self.http = httpx.Client(timeout=300)
        self.events = JobEvents(self.proc.url)

    def job(self, model: str) -> dict[str, float]:
        """One job on ``model``: wall (submit -> completed event), submit -> first sampling
        step, and the worker's load time for it (0: the model was loaded already)."""
        body = {"prompt": PROMPT, "width": SIZE, "height": SIZE, "steps": STEPS, "seed": 42}
        body |= {"cfg_scale": CFG, "sampling_method": SAMPLER}
        body["model"] = f"checkpoints/{model}.safetensors"
        started = time.perf_counter()
        response = self.http.post(self.proc.url + "/api/generate/text2img", json=body)
        response.raise_for_status()
        job_id = str(response.json()["job_id"])
        done = self.events.wait([job_id])
        first = self.events.steps[job_id][0][0]
        result: dict[str, Any] = self.http.get(f"{self.proc.url}/api/queue/job/{job_id}").json()
        return {
            "wall": done - started,
            "first_step": first - started,
            "load": float(result["result"]["load_time"]),
        }

    def stop(self) -> None:
        self.proc.stop()
        self.http.close()


def switch_rows(bench: Bench, a: Path, label: str) -> None:
    b = second_model()
    rounds = 3 if bench.quick else 6
    resident: dict[str, list[float]] = {"switch": [], "same": [], "load": [], "first": []}
    server = TwoModels(bench, a, b, keep=2)
    try:
        server.job("a"), server.job("b")  # both loaded and warm
        for _ in range(rounds):
            server.job("a")
            switched, same = server.job("b"), server.job("b")
            resident["switch"].append(switched["wall"])
            resident["first"].append(switched["first_step"])
            resident["load"].append(switched["load"])
            resident["same"].append(same["wall"])
    finally:
        server.stop()
    evicted: dict[str, list[float]] = {"switch": [], "load": [], "again": [], "first": []}
    cli: list[float] = []
    server = TwoModels(bench, a, b, keep=1)
    try:
        server.job("a"), server.job("b")
        for _ in range(rounds):
            server.job("a")  # evicts B
            switched, again = server.job("b"), server.job("b")
            evicted["switch"].append(switched["wall"])
            evicted["first"].append(switched["first_step"])
            evicted["load"].append(switched["load"])
            evicted["again"].append(again["load"])
            cli.append(timed_process(cli_args(bench, b, bench.work / "switch.png"))[0])
    finally:
        server.stop()
    bench.add(
        rows.resident_switch_row(label, resident["switch"], resident["same"], resident["load"])
    )
    bench.add(
        rows.evicted_switch_row(label, evicted["switch"], cli, evicted["load"], evicted["again"])
    )
    bench.add(rows.first_step_row(label, resident["first"], evicted["first"]))


def first_image(cmd: list[str], env: dict[str, str], port: int, ready: str, log: Path) -> float:
    """Seconds from spawning a server to the first txt2img answer with an image in it."""
    url = f"http://{HOST}:{port}"
    body = {"prompt": PROMPT, "width": SIZE, "height": SIZE, "steps": STEPS, "seed": 42}
    body |= {"cfg_scale": CFG, "sampler_name": SAMPLER}
    with log.open("wb") as out, httpx.Client(timeout=300) as http:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
        try:
            deadline = time.monotonic() + 180
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[0]} never became ready:\n{log.read_text()[-3000:]}")
                try:
                    if http.get(url + ready, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(POLL)
            response = http.post(url + "/sdapi/v1/txt2img", json=body)
            response.raise_for_status()
            assert response.json()["images"], f"{cmd[0]} answered no image"
            return time.perf_counter() - started
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def cold_start_rows(bench: Bench, model: Path, label: str) -> None:
    """Both servers restarted per round, one at a time; our data dir is reused, as a user's
    restart does (its model index already made by the discarded first round)."""
    root = Path(tempfile.mkdtemp(prefix="cold-", dir=bench.work))
    checkpoints = root / "data" / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    os.link(model, checkpoints / model.name)
    sd_server = build_sd_server()
    env = server_env(bench)
    ours_cmd = [str(Path(bench.sdcpp_python).with_name("sdcpp")), "serve", "--host", HOST]
    ours_cmd += ["--data-dir", str(root / "data"), "--port"]
    theirs_cmd = [str(sd_server), "-m", str(model), "--listen-ip", HOST, "-t", str(bench.threads)]
    theirs_cmd += ["--listen-port"]
    ours, theirs = [], []
    for i in range(1 + (2 if bench.quick else 5)):  # round 0 warms caches and is discarded
        port = free_port()
        t = first_image([*ours_cmd, str(port)], env, port, "/readyz", root / "ours.log")
        port = free_port()
        u = first_image(
            [*theirs_cmd, str(port)],
            dict(os.environ),
            port,
            "/sdapi/v1/samplers",
            root / "sd-server.log",
        )
        if i:
            ours.append(t)
            theirs.append(u)
    bench.add(rows.cold_start_row(label, ours, theirs))


def switching_rows(bench: Bench, model: Path) -> None:
    label = f"{synthetic.TINY_VARIANT} {SIZE}x{SIZE} {STEPS} steps"
    load_rows(bench, model, synthetic.TINY_VARIANT)
    switch_rows(bench, model, f"server: {label}")
    cold_start_rows(bench, model, f"server: {label}")


if __name__ == "__main__":  # these rows alone: python -m bench.switching [--quick]
    import sys

    import sdcpp

    from .run import Bench

    only = Bench("--quick" in sys.argv, None, sdcpp.num_physical_cores(), sys.executable)
    switching_rows(only, synthetic.cached_checkpoint(synthetic.TINY_VARIANT))
