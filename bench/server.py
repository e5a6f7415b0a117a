"""Server rows: `sdcpp serve` side by side with upstream sd-server built from the same source.

Both servers run at once (idle servers cost no CPU) so every measurement interleaves ours and
theirs round by round; only loopback addresses are ever contacted. Same model, size, steps,
seed, sampler, cfg and threads for ours, sd-server and sd-cli.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx2 as httpx
import numpy as np

from . import dialect_rows
from .baselines import build_sd_server
from .cancel import cancels
from .events import FINAL, JobEvents
from .loadgen import load
from .overhead import overhead
from .table import Row, fmt, timed_process, verdict

if TYPE_CHECKING:
    from .run import Bench

HOST = "127.0.0.1"  # loopback only: the load generator must never reach another machine
PROMPT = "a red fox"
# cfg 1.0 and euler_a stated explicitly: the servers' per-model defaults need not agree.
CFG, SAMPLER = 1.0, "euler_a"
ENGINE_START = re.compile(r"generate_image \d+x\d+")
ENGINE_END = re.compile(r"generate_image completed in ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Proc:
    """A server subprocess with its output in a file, started until its ready URL answers."""

    def __init__(self, cmd: list[str], env: dict[str, str], log: Path, port: int) -> None:
        self.cmd, self.env, self.log, self.port = cmd, env, log, port
        self.url = f"http://{HOST}:{port}"
        self.proc: subprocess.Popen[bytes] | None = None
        # (perf_counter when read, line) of everything the server printed: sd-server logs
        # its engine's start and end of generate_image, flushed line by line, so stamping
        # lines as they arrive times its engine to the millisecond (its own log rounds to 10).
        self.lines: list[tuple[float, str]] = []

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log.open("wb") as out:
            for raw in self.proc.stdout:
                self.lines.append((time.perf_counter(), raw.decode(errors="replace")))
                out.write(raw)
                out.flush()

    def start(self, ready_path: str, timeout: float = 180) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.log.parent,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                output = "".join(line for _, line in self.lines)
                raise RuntimeError(f"{self.cmd[0]} exited:\n{output[-3000:]}")
            try:
                if httpx.get(self.url + ready_path, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.cmd[0]} not ready after {timeout} s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers: a stuck server must not outlive the run."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def rss_mb(self) -> float:
        """VmRSS of the process and all its descendants (our server + its worker)."""
        assert self.proc is not None
        total, todo = 0, [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue  # exited meanwhile
            found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
            total += int(found.group(1)) if found else 0
        return total / 1024


class Servers:
    """Ours and sd-server, started together, with one request helper per API."""

    def __init__(self, bench: Bench, model: Path) -> None:
        self.bench, self.model = bench, model
        root = Path(tempfile.mkdtemp(prefix="server-", dir=bench.work))
        checkpoints = root / "data" / "models" / "checkpoints"
        checkpoints.mkdir(parents=True)
        os.link(model, checkpoints / model.name)  # a hard link: no copy of 0.9 GB
        self.data_dir = root / "data"
        self.root = root
        self.sd_server = build_sd_server()
        self.ours: Proc | None = None
        self.theirs: Proc | None = None
        self.events: JobEvents | None = None
        self.http = httpx.Client(timeout=300)

    def start_ours(self) -> Proc:
        port = free_port()
        script = str(Path(self.bench.sdcpp_python).with_name("sdcpp"))
        env = {**os.environ, "SDCPP_THREADS": str(self.bench.threads)}
        cmd = [script, "serve", "--host", HOST, "--port", str(port)]
        cmd += ["--data-dir", str(self.data_dir)]
        proc = Proc(cmd, env, self.root / f"ours-{port}.log", port)
        proc.start("/readyz")
        return proc

    def start(self) -> None:
        self.ours = self.start_ours()
        self.events = JobEvents(self.ours.url)
        port = free_port()
        cmd = [str(self.sd_server), "-m", str(self.model), "--listen-ip", HOST]
        cmd += ["--listen-port", str(port), "-t", str(self.bench.threads)]
        self.theirs = Proc(cmd, dict(os.environ), self.root / "sd-server.log", port)
        self.theirs.start("/sdapi/v1/samplers")  # it listens only once the model is loaded

    def stop(self) -> None:
        for proc in (self.ours, self.theirs):
            if proc is not None:
                proc.stop()

    # ours
    def submit(self, url: str, steps: int, seed: int = 42) -> str:
        body = {"prompt": PROMPT, "width": 64, "height": 64, "steps": steps, "seed": seed}
        body |= {"cfg_scale": CFG, "sampling_method": SAMPLER}
        response = self.http.post(url + "/api/generate/text2img", json=body)
        response.raise_for_status()
        return str(response.json()["job_id"])

    def job(self, url: str, job_id: str) -> dict[str, Any]:
        return dict(self.http.get(f"{url}/api/queue/job/{job_id}").json())

    # sd-server
    def txt2img(self, steps: int, seed: int = 42) -> None:
        assert self.theirs is not None
        body = {"prompt": PROMPT, "width": 64, "height": 64, "steps": steps, "seed": seed}
        body |= {"cfg_scale": CFG, "sampler_name": SAMPLER}
        response = self.http.post(self.theirs.url + "/sdapi/v1/txt2img", json=body)
        response.raise_for_status()
        assert response.json()["images"], "sd-server returned no image"

    def engine_time(self, since: int, timeout: float = 5) -> float:
        """sd-server's engine time of the one generate_image it logged after line ``since``:
        from its "generate_image WxH" line (logged right after the engine starts its clock)
        to its "generate_image completed" line, as the lines arrived."""
        assert self.theirs is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # it logs before it answers; the pipe may trail
            lines = self.theirs.lines[since:]
            start = [t for t, line in lines if ENGINE_START.search(line)]
            end = [t for t, line in lines if ENGINE_END.search(line)]
            if start and end:
                assert len(start) == len(end) == 1, "sd-server ran more than one generation"
                return end[0] - start[0]
            time.sleep(0.005)
        raise RuntimeError("sd-server logged no generate_image start/end")

    def warm_up(self) -> None:
        assert self.ours is not None and self.events is not None
        for _ in range(2):
            self.events.wait([self.submit(self.ours.url, 4)])
            self.txt2img(4)


def settle() -> None:
    """Let the previous job's engine threads go to sleep before the next timed request.

    Both engines use OpenMP, whose threads spin for several milliseconds after each parallel
    region before they sleep. sd-server's spin at normal priority: a request timed right after
    its job shared the CPUs with them (ours spin in the idle class and take nothing from it).
    Measured: ours 7.6-7.8 ms without this pause, 6.4-6.7 ms with it (sd-server 2.0-2.4 both).
    """
    time.sleep(0.1)


def sequence(bench: Bench, s: Servers) -> None:
    """(b) four jobs back to back on a warm server vs four sd-cli processes."""
    assert s.ours is not None and s.events is not None
    cli = [str(bench.sd_cli), "-m", str(s.model), "-p", PROMPT, "-W", "64", "-H", "64"]
    cli += ["--steps", "4", "-s", "42", "-t", str(bench.threads), "--cfg-scale", str(CFG)]
    cli += ["--sampling-method", SAMPLER, "-o", str(s.root / "cli.png")]
    ours, theirs, clis = [], [], []
    for _ in range(2 if bench.quick else 3):
        started = time.perf_counter()
        # all four queued before the first finishes: the queue, not the client, orders them
        ids = [s.submit(s.ours.url, 4) for _ in range(4)]
        ours.append(s.events.wait(ids) - started)
        started = time.perf_counter()
        for _ in range(4):  # its sync API answers one image per request
            s.txt2img(4)
        theirs.append(time.perf_counter() - started)
        clis.append(sum(timed_process(cli)[0] for _ in range(4)))
    speed_ours = statistics.median(clis) / statistics.median(ours)
    speed_theirs = statistics.median(clis) / statistics.median(theirs)
    bench.add(
        Row(
            "server: warm 4-job sequence, speed-up over 4 sd-cli runs "
            f"(4 sd-cli: {statistics.median(clis):.2f} s)",
            f"{fmt(ours)} = {speed_ours:.2f}x",
            f"sd-server {fmt(theirs)} = {speed_theirs:.2f}x",
            f"{speed_ours / speed_theirs:.3f}x",
            ">= sd-server's speed-up",
            verdict(speed_ours >= speed_theirs),
        )
    )


def percentiles(values: list[float]) -> str:
    p50, p99 = np.percentile(values, [50, 99])
    return f"p50 {p50:.2f} / p99 {p99:.2f} ms (n={len(values)})"


def control_plane(bench: Bench, s: Servers, rate: float = 200, seconds: float = 5) -> None:
    """(c) cheap GETs at a fixed rate while a long job generates on the same server.

    Rounds alternate ours and sd-server (each round: one long job, ``seconds`` of load), so a
    noisy spell on the machine lands on both rather than on whichever went second.
    """
    assert s.ours is not None and s.theirs is not None and s.events is not None
    steps = 80  # long enough (> 8 s here) to outlast the load window
    paths = ["/api/health", "/api/queue/status", "/sdapi/v1/progress"]
    ours: dict[str, list[float]] = {p: [] for p in paths}
    theirs: list[float] = []
    ours_errors = theirs_errors = 0
    ours_busy = theirs_busy = True
    for _ in range(2 if bench.quick else 4):
        job_id = s.submit(s.ours.url, steps)
        deadline = time.monotonic() + 60
        while s.job(s.ours.url, job_id).get("current_step", 0) < 1:  # sampling, not loading
            assert time.monotonic() < deadline, "long job never started"
            time.sleep(0.05)
        got, errors = load(s.ours.url, paths, rate, seconds)
        ours_errors += errors
        for path, values in got.items():
            ours[path] += values
        ours_busy &= s.job(s.ours.url, job_id)["status"] not in FINAL
        s.events.wait([job_id])

        worker = threading.Thread(target=s.txt2img, args=(steps,))
        worker.start()
        time.sleep(1.0)  # past text encoding: its sync request gives no progress to wait on
        got, errors = load(s.theirs.url, ["/sdapi/v1/samplers"], rate, seconds)
        theirs_errors += errors
        theirs += got["/sdapi/v1/samplers"]
        theirs_busy &= worker.is_alive()
        worker.join()

    their_p99 = float(np.percentile(theirs, 99))
    note = "" if ours_busy else " (ours' job ended before the load did)"
    note += "" if theirs_busy else " (sd-server's job ended before the load did)"
    for path, values in ours.items():
        p99 = float(np.percentile(values, 99))
        bench.add(
            Row(
                f"server: GET {path} at {rate:.0f} req/s during a {steps}-step job{note}",
                percentiles(values) + (f", {ours_errors} errors" if ours_errors else ""),
                "sd-server GET /sdapi/v1/samplers "
                + percentiles(theirs)
                + (f", {theirs_errors} errors" if theirs_errors else ""),
                f"{p99 / their_p99:.2f}x p99",
                "p99 <= 10 ms and <= sd-server's",
                verdict(p99 <= 10 and p99 <= their_p99 and not ours_errors),
            )
        )


def rss_growth(bench: Bench, s: Servers) -> None:
    """(d) RSS of a fresh server + worker after N 1-step jobs vs after 5."""
    many = 20 if bench.quick else 50
    proc = s.start_ours()
    try:
        events = JobEvents(proc.url)
        early = 0.0
        for i in range(many):
            events.wait([s.submit(proc.url, 1, seed=i)])
            if i == 4:
                time.sleep(0.5)  # let the result's bookkeeping settle before sampling
                early = proc.rss_mb()
        time.sleep(0.5)
        late = proc.rss_mb()
    finally:
        proc.stop()
    growth = late / early - 1
    bench.add(
        Row(
            f"server: RSS (server + worker) after {many} jobs vs after 5",
            f"{late:.1f} MB",
            f"{early:.1f} MB",
            f"{growth * 100:+.2f}%",
            "<= +2%",
            verdict(growth <= 0.02),
        )
    )


def server_rows(bench: Bench, model: Path) -> None:
    servers = Servers(bench, model)
    try:
        servers.start()
        servers.warm_up()
        overhead(bench, servers)
        dialect_rows.txt2img_wall(bench, servers)
        dialect_rows.openai_generate_wall(bench, servers)
        sequence(bench, servers)
        control_plane(bench, servers)
        cancels(bench, servers)  # last on this server: its RSS is measured around them
    finally:
        servers.stop()
    try:
        rss_growth(bench, servers)  # on a fresh server of its own: the job count starts at 0
    finally:
        servers.http.close()


if __name__ == "__main__":  # the server rows alone: python -m bench.server [--quick]
    import sys

    import sdcpp
    from sdcpp import synthetic

    from .run import Bench

    only = Bench("--quick" in sys.argv, None, sdcpp.num_physical_cores(), sys.executable)
    server_rows(only, synthetic.cached_checkpoint(synthetic.TINY_VARIANT))
