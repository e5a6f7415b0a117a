"""The tool rows of ``python -m bench``: GGUF conversion, header-only detection and SHA-256,
each against the command-line tool people would use instead. A mixin of ``run.Bench``, which
supplies ``add``, ``work``, ``quick``, ``sd_cli`` and ``sdcpp_python``."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import sdcpp
from sdcpp import synthetic

from .table import Row, fmt, timed_process, verdict


class ToolRows:
    quick: bool
    sdcpp_python: str
    sd_cli: Path
    work: Path

    def add(self, row: Row) -> None:
        raise NotImplementedError  # run.Bench prints and keeps the row

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
