"""sdcpp benchmarks: ratios against upstream sd-cli and the peer binding, measured in one run.

    python -m bench [--quick] [--peer-python PATH] [--out bench/RESULTS.md]

Machines here are noisy: A and B are interleaved, repeated, and reported as medians with their
spread. Every goal is printed PASS/MISS; a MISS never fails the run, a crash does.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import sdcpp
from sdcpp import synthetic

from .baselines import BaselineToolsMissing, build_sd_cli, require_build_tools

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


class Bench:
    def __init__(
        self, quick: bool, peer_python: str | None, threads: int, sdcpp_python: str
    ) -> None:
        self.quick = quick
        self.sdcpp_python = sdcpp_python
        self.peer_python = peer_python
        self.threads = threads
        self.rows: list[Row] = []
        self.work = Path(tempfile.mkdtemp(prefix="sdcpp-bench-"))
        self.sd_cli = build_sd_cli()

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(
            f"| {row.what} | {row.ours} | {row.baseline} | {row.ratio} | {row.goal} | "
            f"{row.verdict} |",
            flush=True,
        )

    def generation(self, label: str, model: Path, size: int, steps: int) -> None:
        rounds = 2 if self.quick else 3
        args = {
            "width": size,
            "height": size,
            "steps": steps,
            "seed": 42,
            "prompt": "a red fox",
            "threads": self.threads,
            "repeats": 4 if self.quick else 6,
            "eta": 1.0,
        }
        ours, peer, cli_times, cli_rss = [], [], [], []
        ours_png, cli_png = self.work / "ours.png", self.work / "cli.png"
        for _ in range(rounds):  # interleaved: ours, peer, sd-cli
            ours.append(
                run_child(self.sdcpp_python, "sdcpp", model, {**args, "png": str(ours_png)})
            )
            if self.peer_python:
                peer.append(run_child(self.peer_python, "peer", model, args))
            _, rss, out = timed_process(
                [
                    str(self.sd_cli),
                    "-m",
                    str(model),
                    "-p",
                    args["prompt"],
                    "-W",
                    str(size),
                    "-H",
                    str(size),
                    "--steps",
                    str(steps),
                    "-s",
                    "42",
                    "-t",
                    str(self.threads),
                    "-o",
                    str(cli_png),
                ]
            )
            found = re.search(r"generate_image completed in ([0-9.]+)s", out)
            assert found, out[-2000:]
            cli_times.append(float(found.group(1)))
            cli_rss.append(rss)
        warm = [t for r in ours for t in r["times_s"][1:]]
        ours_rss = [r["peak_rss_mb"] for r in ours]
        self.add(
            Row(
                f"{label}: warm generate() vs sd-cli self-reported",
                fmt(warm),
                fmt(cli_times),
                f"{statistics.median(warm) / statistics.median(cli_times):.2f}x",
                "info",
                "-",
            )
        )
        if peer:
            peer_warm = [t for r in peer for t in r["times_s"][1:]]
            ratio = statistics.median(warm) / statistics.median(peer_warm)
            self.add(
                Row(
                    f"{label}: warm generate() vs peer binding",
                    fmt(warm),
                    fmt(peer_warm),
                    f"{ratio:.2f}x",
                    "<= 1.00x",
                    verdict(ratio <= 1.0),
                )
            )
            peer_rss = [r["peak_rss_mb"] for r in peer]
            ratio = statistics.median(ours_rss) / statistics.median(peer_rss)
            self.add(
                Row(
                    f"{label}: peak RSS vs peer binding",
                    fmt(ours_rss, "MB", 0),
                    fmt(peer_rss, "MB", 0),
                    f"{ratio:.3f}x",
                    "<= 1.00x",
                    verdict(ratio <= 1.0),
                )
            )
        self.add(
            Row(
                f"{label}: peak RSS vs sd-cli",
                fmt(ours_rss, "MB", 0),
                fmt(cli_rss, "MB", 0),
                f"{statistics.median(ours_rss) / statistics.median(cli_rss):.3f}x",
                "info",
                "-",
            )
        )
        same = np.array_equal(
            np.asarray(Image.open(ours_png).convert("RGB")),
            np.asarray(Image.open(cli_png).convert("RGB")),
        )
        self.add(
            Row(
                f"{label}: pixels vs sd-cli PNG",
                "identical" if same else "different",
                "sd-cli",
                "-",
                "identical",
                verdict(same),
            )
        )

    def leak(self, model: Path) -> None:
        many = 60 if self.quick else 200
        result = run_child(
            self.sdcpp_python,
            "sdcpp",
            model,
            {
                "width": 64,
                "height": 64,
                "steps": 1,
                "seed": 1,
                "prompt": "x",
                "threads": self.threads,
                "repeats": many,
                "eta": 1.0,
            },
        )
        rss = result["rss_mb"]
        early, late = rss[many // 10 - 1], rss[-1]
        growth = late / early - 1
        self.add(
            Row(
                f"RSS after {many} generations vs after {many // 10}",
                f"{late:.1f} MB",
                f"{early:.1f} MB",
                f"{growth * 100:+.2f}%",
                "<= +2%",
                verdict(growth <= 0.02),
            )
        )

    def cli(self, label: str, model: Path, size: int, steps: int, rounds: int = 0) -> None:
        rounds = rounds or (3 if self.quick else 5)
        compile_bytecode(self.sdcpp_python)
        ours, theirs = [], []
        common = [
            "-m",
            str(model),
            "-p",
            "a red fox",
            "-W",
            str(size),
            "-H",
            str(size),
            "--steps",
            str(steps),
            "-s",
            "42",
            "-t",
            str(self.threads),
        ]
        sdcpp_cmd = [
            str(Path(self.sdcpp_python).with_name("sdcpp")),
            "generate",
            *common,
            "-o",
            str(self.work / "c1.png"),
        ]
        for _ in range(rounds):
            ours.append(timed_process(sdcpp_cmd)[0])
            theirs.append(
                timed_process([str(self.sd_cli), *common, "-o", str(self.work / "c2.png")])[0]
            )
        ratio = statistics.median(ours) / statistics.median(theirs)
        self.add(
            Row(
                f"{label}: `sdcpp generate` CLI wall vs sd-cli wall",
                fmt(ours),
                fmt(theirs),
                f"{ratio:.3f}x",
                "<= 1.05x",
                verdict(ratio <= 1.05),
            )
        )

    def convert(self, model: Path) -> None:
        """`sdcpp convert` vs `sd-cli -M convert`: command against command, each a fresh
        process as users (and the server's convert job child) run it; start-up included on
        both sides. The library call inside this long-lived process is an info row.

        Both overwrite their previous output every round, so both pay for freeing it; sd-cli
        does not wait for its data to reach the disk, sdcpp does (fsync of file and directory,
        atomic rename).
        """
        import hashlib

        rounds = 5 if self.quick else 9
        ours, theirs = [], []
        ours_hashes, cli_hashes = set(), set()
        ours_out, cli_out = self.work / "ours.gguf", self.work / "cli.gguf"
        cli_cmd = [
            str(self.sd_cli),
            "-M",
            "convert",
            "-m",
            str(model),
            "-o",
            str(cli_out),
            "--type",
            "q8_0",
        ]

        def sha256(path: Path) -> str:
            digest = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(1 << 24):
                    digest.update(chunk)
            return digest.hexdigest()

        compile_bytecode(self.sdcpp_python)
        ours_cmd = [str(Path(self.sdcpp_python).with_name("sdcpp")), "convert"]
        ours_cmd += ["-m", str(model), "-o", str(ours_out), "--type", "q8_0"]
        in_process: list[float] = []
        timed_process(ours_cmd)  # warm-up: page cache for both
        timed_process(cli_cmd)
        for _ in range(rounds):
            # sd-cli returns with its output still dirty in the page cache; without a sync, the
            # kernel writes it back during whatever runs next (our timing, 0.2-0.3 s here)
            os.sync()
            ours.append(timed_process(ours_cmd)[0])  # includes fsync + rename (atomic)
            ours_hashes.add(sha256(ours_out))  # outside the timings
            os.sync()
            theirs.append(timed_process(cli_cmd)[0])
            cli_hashes.add(sha256(cli_out))
            os.sync()
            started = time.perf_counter()
            sdcpp.convert(model, ours_out, type="q8_0")
            in_process.append(time.perf_counter() - started)
            ours_hashes.add(sha256(ours_out))
        speed = statistics.median(theirs) / statistics.median(ours)
        self.add(
            Row(
                "convert q8_0 throughput: `sdcpp convert` vs `sd-cli -M convert`",
                fmt(ours),
                fmt(theirs),
                f"{speed:.2f}x",
                ">= 0.95x",
                verdict(speed >= 0.95),
            )
        )
        speed = statistics.median(theirs) / statistics.median(in_process)
        self.add(
            Row(
                "convert q8_0 throughput: sdcpp.convert() in the bench process vs sd-cli",
                fmt(in_process),
                fmt(theirs),
                f"{speed:.2f}x",
                "info",
                "-",
            )
        )
        same = gguf_tensors(ours_out) == gguf_tensors(cli_out)
        self.add(
            Row(
                "convert q8_0: tensors (names, types, shapes, data) vs sd-cli",
                "identical" if same else "different",
                "sd-cli",
                "-",
                "identical",
                verdict(same),
            )
        )
        self.add(
            Row(
                f"convert q8_0: distinct output sha256 over {2 * rounds} runs (command, library)",
                str(len(ours_hashes)),
                f"{len(cli_hashes)} (sd-cli)",
                "-",
                "1 (reproducible)",
                verdict(len(ours_hashes) == 1),
            )
        )

    def detection(self) -> None:
        """Header-only detection time per file, including a 20 GB sparse file."""
        from sdcpp.detect import detect

        sparse = self.work / "sparse-20g.safetensors"
        header = json.dumps(
            {
                f"model.diffusion_model.double_blocks.{i}.img_attn.qkv.weight": {
                    "dtype": "F16",
                    "shape": [9216, 3072],
                    "data_offsets": [i * 56623104, (i + 1) * 56623104],
                }
                for i in range(19)
            }
            | {
                "model.diffusion_model.img_in.weight": {
                    "dtype": "F16",
                    "shape": [3072, 64],
                    "data_offsets": [0, 393216],
                }
            }
        ).encode()
        with sparse.open("wb") as f:  # a real header; the data is a 20 GB hole
            f.write(len(header).to_bytes(8, "little") + header)
            f.truncate(20 * 2**30)
        files = [synthetic.cached_checkpoint("sd1"), synthetic.cached_checkpoint("sdxs"), sparse]
        times = []
        for _ in range(5):
            for path in files:
                started = time.perf_counter()
                detect(path)
                times.append(time.perf_counter() - started)
        worst = max(times) * 1000
        self.add(
            Row(
                "detection per file (2 GB, 0.9 GB, 20 GB sparse)",
                fmt([t * 1000 for t in times], "ms", 1),
                "-",
                "-",
                "<= 50 ms",
                verdict(worst <= 50),
            )
        )

    def sha256(self) -> None:
        """Streaming SHA-256 vs coreutils sha256sum on the same (cached) 2 GB file."""
        from sdcpp.registry.hashing import sha256_file

        path = synthetic.cached_checkpoint("sd1")
        ours, theirs = [], []
        for _ in range(2 if self.quick else 3):
            started = time.perf_counter()
            sha256_file(path)
            ours.append(time.perf_counter() - started)
            theirs.append(timed_process(["sha256sum", str(path)])[0])
        speed = statistics.median(theirs) / statistics.median(ours)
        self.add(
            Row(
                "SHA-256 of 2 GB vs sha256sum",
                fmt(ours),
                fmt(theirs),
                f"{speed:.2f}x",
                ">= 0.80x",
                verdict(speed >= 0.8),
            )
        )


def compile_bytecode(python: str) -> None:
    """Write the measured sdcpp's ``.pyc`` files, as installing a wheel does.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (set on our dev machines) would
    otherwise compile every sdcpp module on every CLI start (~20 ms), which no installed
    package pays. Cached files that are up to date are left alone.
    """
    subprocess.run(
        [
            python,
            "-c",
            "import compileall, os, sdcpp; "
            "compileall.compile_dir(os.path.dirname(sdcpp.__file__), quiet=1)",
        ],
        check=True,
        cwd=tempfile.gettempdir(),  # the installed package, as run_child measures it
        stdout=subprocess.DEVNULL,
    )


def gguf_tensors(path: Path) -> dict[str, tuple[str, tuple[int, ...], str]]:
    """name -> (type, shape, sha256 of data): equal for files that differ only in order."""
    import hashlib

    from sdcpp.gguf import read_gguf

    info = read_gguf(path)
    out = {}
    with path.open("rb") as f:
        for t in info.tensors:
            f.seek(info.data_start + t.offset)
            data = f.read(t.nbytes or 0)
            out[t.name] = (t.type_name, t.shape, hashlib.sha256(data).hexdigest())
    return out


def header(threads: int) -> str:
    cpu = next(
        (
            x.split(":", 1)[1].strip()
            for x in Path("/proc/cpuinfo").read_text().splitlines()
            if x.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"# sdcpp benchmark results\n\nDate: {date.today()}  \nCPU: {cpu}  \n"
        f"Threads: {threads}  \nEngine: {sdcpp.engine_version()} ({sdcpp.engine_commit()})  \n"
        f"sdcpp: {sdcpp.__version__}\n\n"
        "| measurement | sdcpp | baseline | ratio | goal | verdict |\n|---|---|---|---|---|---|\n"
    )


def missing_requirements(no_server: bool) -> str | None:
    """Everything the run needs beyond ``pip install .``, named in one message before anything
    runs (the baselines' build tools; the server rows' HTTP client), or None."""
    try:
        require_build_tools()
    except BaselineToolsMissing as missing:
        return str(missing)
    if not no_server and importlib.util.find_spec("httpx2") is None:
        return (
            "python -m bench: the server rows drive sdcpp serve and sd-server with httpx2, "
            "which `pip install .` does not install: `pip install httpx2` (or the test extra, "
            "`pip install -e '.[test]'`), or skip those rows with --no-server."
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized: fewer rounds, small model")
    parser.add_argument(
        "--peer-python",
        "--peers",
        default=os.environ.get("SDCPP_PEER_PYTHON"),
        help="python of an env with stable-diffusion-cpp-python 0.4.7 installed",
    )
    parser.add_argument("--threads", type=int, default=sdcpp.num_physical_cores())
    parser.add_argument(
        "--sdcpp-python",
        default=sys.executable,
        help="python whose sdcpp is measured (a clean venv, like the peer's, "
        "keeps start-up imports comparable)",
    )
    parser.add_argument(
        "--no-server", action="store_true", help="skip the `sdcpp serve` vs sd-server rows"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    if problem := missing_requirements(args.no_server):
        print(problem, file=sys.stderr)
        return 2

    bench = Bench(args.quick, args.peer_python, args.threads, args.sdcpp_python)
    print(header(args.threads), end="")
    small = synthetic.cached_checkpoint(synthetic.TINY_VARIANT)
    bench.generation(f"{synthetic.TINY_VARIANT} 64x64 4 steps", small, 64, 4)
    if not args.quick:
        bench.generation("sd1 f16 64x64 1 step", synthetic.cached_checkpoint("sd1"), 64, 1)
    bench.leak(small)
    # A 2-second job measures mostly Python's start-up (~0.15 s); a typical one does not.
    bench.cli(f"{synthetic.TINY_VARIANT} 64x64 2 steps", small, 64, 2, 5 if args.quick else 9)
    if not args.quick:
        bench.cli("sd1 f16 256x256 4 steps", synthetic.cached_checkpoint("sd1"), 256, 4)
    bench.convert(small)
    bench.detection()
    bench.sha256()
    from .cache import cache_rows  # imported late, as the server rows: they import this module

    # same settings as the README's step-cache table: 64x64, 20 steps, same seed as off
    for variant in [synthetic.TINY_VARIANT] + ([] if args.quick else ["sd1"]):
        cache_rows(bench, variant, 20, 64, 1 if args.quick else 2)
    if not args.no_server:
        from .server import server_rows
        from .switching import switching_rows

        server_rows(bench, small)
        switching_rows(bench, small)
    table = "".join(
        f"| {r.what} | {r.ours} | {r.baseline} | {r.ratio} | {r.goal} | {r.verdict} |\n"
        for r in bench.rows
    )
    args.out.write_text(header(args.threads) + table)
    print(f"\nwritten to {args.out}")
    return 0
