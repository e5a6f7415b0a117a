"""sdcpp benchmarks: ratios against upstream sd-cli and the peer binding, measured in one run.

    python -m bench [--quick] [--peer-python PATH] [--out bench/RESULTS.md]

Machines here are noisy: A and B are interleaved, repeated, and reported as medians with their
spread. Every goal is printed PASS/MISS; a MISS never fails the run, a crash does.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import statistics
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

import sdcpp
from sdcpp import synthetic

from .baselines import BaselineToolsMissing, build_sd_cli, require_build_tools
from .table import ROOT, Row, fmt, run_child, timed_process, verdict
from .tool_rows import ToolRows, compile_bytecode


class Bench(ToolRows):
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
