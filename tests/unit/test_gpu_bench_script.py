"""scripts/gpu_bench.sh: its dry run checks the prerequisites and prints every step it would run.

The real run needs an NVIDIA GPU; the dry run is how CPU machines keep the script honest (a
renamed bench option or a missing build step shows here, not on the rare GPU machine).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_bench.sh"


def _dry_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True, text=True)


def test_dry_run_prints_the_build_and_the_bench_steps() -> None:
    proc = _dry_run("--quick")  # needs no nvcc: the dry run only says the real run would
    assert proc.returncode == 0, proc.stderr
    steps = [line[2:] for line in proc.stdout.splitlines() if line.startswith("+ ")]
    assert any("scripts/build_cuda.sh" in s for s in steps)
    bench = next(s for s in steps if " -m bench" in s)
    assert "--quick" in bench and "RESULTS-gpu.md" in bench and "--sdcpp-python" in bench
    assert "CUDA architecture" in proc.stdout  # one target, not nvcc's whole list
    # the venv gets what python -m bench checks for before its first row (the server rows'
    # client, the baselines' build tools), and the bench step finds the venv's tools first
    install = next(s for s in steps if "pip install" in s and "scikit-build-core" in s)
    assert all(tool in install.split() for tool in ("httpx2", "cmake", "ninja"))
    assert "PATH=" in bench and "gpu-venv/bin:" in bench
    # the CPU half of the bench step ran for real: imports from outside the checkout
    assert "python -m bench imports and parses its options" in proc.stdout


def test_bench_accepts_every_option_the_script_passes() -> None:
    text = SCRIPT.read_text()
    source = (SCRIPT.parents[1] / "bench" / "run.py").read_text()
    for option in ("--quick", "--sdcpp-python", "--out"):
        assert option in text and f'"{option}"' in source


def test_unknown_option_is_refused() -> None:
    proc = subprocess.run(["bash", str(SCRIPT), "--frobnicate"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown option --frobnicate" in proc.stderr
