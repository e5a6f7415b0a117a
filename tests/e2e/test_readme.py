"""The README's quick start, run as written, against a fresh directory.

The shell lines are read out of README.md (not copied here), so the README cannot go stale
without this test failing. What is adapted, and only that: the port (``SDCPP_PORT``, a free
one instead of 8080) and ``pip install .``, which the test run has already done with the
README's second command (CI runs that command itself).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bash_blocks() -> list[list[str]]:
    """Every ```bash block of the README as its command lines (comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
    return [
        [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
        for block in blocks
    ]


def quick_start() -> tuple[str, str, str, str]:
    """(serve, test command, synthetic model line, curl command) as the README writes them."""
    first, curl_block = bash_blocks()[:2]
    install_and_serve, install_and_test = first
    text = README.read_text()
    synthetic = re.search(r"`(python -m sdcpp\.synthetic [^`]+)`", text)
    assert synthetic, "the README no longer says how to write a synthetic model"
    curl = " ".join(line.rstrip("\\").strip() for line in curl_block if not line.startswith("#"))
    return install_and_serve, install_and_test, synthetic.group(1), curl


def test_readme_opens_with_the_two_commands() -> None:
    serve, test_command, _, _ = quick_start()
    assert serve == "pip install . && sdcpp serve"
    assert test_command == "pip install -e '.[test]' && pytest"
    ci = (README.parent / ".ci" / "run").read_text()
    assert test_command in ci, ".ci/run must run the README's test command verbatim"


class QuickStart:
    def __init__(self, cwd: Path) -> None:
        self.cwd, self.port = cwd, free_port()
        self.env = {**os.environ, "SDCPP_PORT": str(self.port), "SDCPP_THREADS": "2"}
        self.server: subprocess.Popen[bytes] | None = None

    def shell(self, command: str, timeout: float = 120) -> str:
        command = command.replace("localhost:8080", f"localhost:{self.port}")
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{command!r} failed:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def serve(self, install_and_serve: str) -> None:
        serve = install_and_serve.split("&&", 1)[1].strip()
        self.log = self.cwd / "serve.log"
        with self.log.open("wb") as log:  # the child keeps its own copy of the descriptor
            self.server = subprocess.Popen(
                shlex.split(serve), cwd=self.cwd, env=self.env, stderr=log
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.server.poll() is None, "sdcpp serve exited during start-up"
            try:
                if httpx.get(f"http://localhost:{self.port}/readyz", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("sdcpp serve did not become ready")

    def stop(self) -> None:
        if self.server and self.server.poll() is None:
            self.server.send_signal(signal.SIGTERM)
            self.server.wait(timeout=20)

    def finished_image(self, submitted: str) -> bytes:
        """Poll and download as the curl block's comment says."""
        job_id = json.loads(submitted)["job_id"]
        base = f"http://localhost:{self.port}/api/queue/job/{job_id}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            job = httpx.get(base, timeout=5).json()
            if job["status"] in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.3)
        assert job["status"] == "completed", job
        image = httpx.get(f"{base}/output/image_0.png", timeout=5)
        assert image.status_code == 200
        return image.content


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[QuickStart]:
    run = QuickStart(tmp_path)
    yield run
    run.stop()


@pytest.mark.parametrize("order", ["serve-first", "model-first"])
def test_quick_start_works_as_written(quick: QuickStart, order: str) -> None:
    """The README's order (serve, write the model, curl) and the other one both work: the
    running server notices the new model file without a restart."""
    install_and_serve, _, synthetic, curl = quick_start()
    if order == "serve-first":
        quick.serve(install_and_serve)
        quick.shell(synthetic)
    else:
        quick.shell(synthetic)
        quick.serve(install_and_serve)
    assert (quick.cwd / "sdcpp-data" / "models" / "checkpoints").is_dir()
    png = quick.finished_image(quick.shell(curl))
    assert png.startswith(b"\x89PNG")
    # one clear start-up line at INFO: address, data dir, models found, auth mode, UI URL
    [line] = [x for x in quick.log.read_text().splitlines() if "sdcpp serve on" in x]
    models = 1 if order == "model-first" else 0
    assert f"http://127.0.0.1:{quick.port}" in line and "sdcpp-data" in line
    assert f"{models} model(s)" in line and "auth none" in line
    assert f"web UI at http://127.0.0.1:{quick.port}/ui/" in line
