"""What `python -m bench` needs beyond `pip install .` is named before it is used."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "third_party"))

import engine_source  # noqa: E402  (third_party/engine_source.py, standard library only)

from bench import baselines  # noqa: E402


def test_missing_build_tools_are_named_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None)
    with pytest.raises(baselines.BaselineToolsMissing) as refused:
        baselines.build_sd_cli(Path("/nonexistent"))
    message = str(refused.value)
    for needed in ("cmake", "ninja", "C++ compiler", "pip install cmake ninja"):
        assert needed in message


def test_present_build_tools_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    baselines.require_build_tools()  # raises nothing


def test_engine_source_is_fetched_without_scikit_build_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An environment made by `pip install .` has no scikit-build-core: pip must then build the
    sdist's metadata in its own isolated environment (the backend as a wheel), not in place."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "scikit_build_core" else real_find_spec(name, *a),
    )
    flags = engine_source.sdist_only_flags()
    assert "--no-build-isolation" not in flags
    assert flags == ["--no-binary", engine_source.PIN["distribution"]]


def test_engine_source_uses_the_backend_in_place_when_present(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Inside sdcpp's own build the backend is installed: no second isolated environment."""
    present = importlib.util.find_spec("json")  # any importable module's spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: present)
    assert engine_source.sdist_only_flags() == ["--no-binary", ":all:", "--no-build-isolation"]


def test_python_m_bench_names_a_missing_http_client_before_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An env made by `pip install .` has no httpx2: the run stops at once with one message
    (it used to fail with an ImportError after the library rows)."""
    from bench import run

    monkeypatch.setattr(shutil, "which", lambda tool: f"/usr/bin/{tool}")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "httpx2" else real_find_spec(name, *a),
    )
    assert run.main(["--quick"]) == 2
    assert "pip install httpx2" in capsys.readouterr().err
    assert run.missing_requirements(no_server=True) is None  # --no-server needs no client


# -- the arithmetic of the #18 rows (bench/rows.py): ratios, goals and verdicts, no timing ------


def test_load_row_passes_at_or_below_sd_cli_and_misses_above() -> None:
    from bench import rows

    faster = rows.load_row("sdxs", [1.0, 1.1, 1.2], [1.2, 1.2, 1.3])
    assert faster.ratio == f"{1.1 / 1.2:.3f}x" and faster.goal == "<= 1.00x"
    assert faster.verdict == "PASS" and "model load" in faster.what
    assert rows.load_row("sdxs", [1.3], [1.2]).verdict == "MISS"


def test_resident_switch_misses_on_any_reload_even_when_fast() -> None:
    from bench import rows

    ok = rows.resident_switch_row("s", [1.00, 1.02], [1.00, 1.01], [0.0, 0.0])
    assert ok.verdict == "PASS" and "reloads 0/2" in ok.ratio
    reloaded = rows.resident_switch_row("s", [1.0, 1.0], [1.0, 1.0], [0.0, 0.4])
    assert reloaded.verdict == "MISS" and "reloads 1/2" in reloaded.ratio
    slow = rows.resident_switch_row("s", [1.2], [1.0], [0.0])
    assert slow.verdict == "MISS"  # 1.2x over the same-model job: more than a switch costs


def test_evicted_switch_needs_one_reload_per_switch_and_to_beat_sd_cli() -> None:
    from bench import rows

    ok = rows.evicted_switch_row("s", [1.5, 1.6], [2.0, 2.2], [0.5, 0.6], [0.0, 0.0])
    assert ok.verdict == "PASS" and "one reload per switch" in ok.ratio
    assert "load 0.550 s" in ok.ours
    never_reloaded = rows.evicted_switch_row("s", [1.5], [2.0], [0.0], [0.0])
    assert never_reloaded.verdict == "MISS" and "reloads differ" in never_reloaded.ratio
    reloaded_twice = rows.evicted_switch_row("s", [1.5], [2.0], [0.5], [0.5])
    assert reloaded_twice.verdict == "MISS"
    assert rows.evicted_switch_row("s", [2.5], [2.0], [0.5], [0.0]).verdict == "MISS"


def test_first_step_row_reports_what_the_reload_adds() -> None:
    from bench import rows

    row = rows.first_step_row("s", [0.2, 0.3, 0.25], [0.8, 0.75, 0.9])
    assert row.ratio == "reload adds +0.550 s" and row.verdict == "-"


def test_cold_start_row_is_info_with_the_ratio() -> None:
    from bench import rows

    row = rows.cold_start_row("s", [3.0, 3.2], [2.0, 2.0])
    assert row.ratio == "1.550x" and row.goal == "info" and row.verdict == "-"


def test_warm_job_row_holds_the_one_percent_goal() -> None:
    from bench import rows

    assert rows.warm_job_row("s", [1.005, 1.01], [1.0, 1.0]).verdict == "PASS"
    missed = rows.warm_job_row("s", [1.02, 1.03], [1.0, 1.0])
    assert missed.verdict == "MISS" and missed.goal == "<= 1.01x" and missed.ratio == "1.025x"


def test_cache_row_goal_only_for_the_fast_preset_on_the_goal_model() -> None:
    from bench import rows

    fast = "preset fast (ucache, {'reuse_threshold': 1.0})"
    ok = rows.cache_row("sd1", fast, [1.0, 1.0], [2.0, 2.0], 35.0, goal_model=True)
    assert ok.verdict == "PASS" and ok.ratio == "2.00x, 35.0 dB" and ok.goal.startswith(">= 1.5x")
    assert rows.cache_row("sd1", fast, [1.0], [2.0], 28.0, goal_model=True).verdict == "MISS"
    assert rows.cache_row("sd1", fast, [1.0], [1.4], 40.0, goal_model=True).verdict == "MISS"
    other = rows.cache_row("sd1", "mode spectrum (engine defaults)", [1.0], [3.0], 20.0, True)
    assert other.goal == "info" and other.verdict == "-"
    not_unet = rows.cache_row("sdxs", fast, [1.0], [2.0], 35.0, goal_model=False)
    assert not_unet.goal == "info"
    same = rows.cache_row("sd1", "mode ucache (engine defaults)", [1.0], [1.0], float("inf"), True)
    assert same.ratio == "1.00x, identical"


def test_cache_psnr_and_candidates() -> None:
    import numpy as np

    from bench import cache

    a = np.zeros((4, 4, 3), np.uint8)
    assert cache.psnr(a, a) == float("inf")
    assert abs(cache.psnr(a, a + 1) - 10 * np.log10(255.0**2)) < 1e-9  # MSE 1
    labels = [label for label, _ in cache.candidates("sd1")]
    assert labels[0] == "off"
    assert any(x.startswith("preset fast") for x in labels)
    assert any(x.startswith("preset balanced") for x in labels)
    assert {"mode ucache (engine defaults)", "mode spectrum (engine defaults)"} <= set(labels)
    assert [label for label, _ in cache.candidates("unknown-arch")] == ["off"]


# -- the arithmetic of the scale-out rows (bench/scaleout.py, #19): no timing ---------------------


def test_scaleout_throughput_counts_jobs_over_first_queued_to_last_ended() -> None:
    from bench import scaleout

    jobs = [
        {"queued_time": 100.0, "start_time": 100.1, "end_time": 101.0},
        {"queued_time": 100.5, "start_time": 101.0, "end_time": 104.0},
    ]
    assert scaleout.throughput(jobs) == 2 / 4.0
    assert abs(scaleout.dispatch_ms(jobs[0]) - 100.0) < 1e-6
    with pytest.raises(ValueError, match="no jobs"):
        scaleout.throughput([])
    with pytest.raises(ValueError, match="ended before"):
        scaleout.throughput([{"queued_time": 5.0, "end_time": 5.0}])


def test_scaleout_throughput_row_holds_the_split_goal() -> None:
    from bench import scaleout

    even = scaleout.throughput_row("tiny", [0.50, 0.52], [0.50, 0.49], threads=2)
    assert even.ratio == f"{0.495 / 0.51:.2f}x" and even.verdict == "PASS"
    assert "2 workers x 1 threads vs 1 worker x 2" in even.what and even.goal == ">= 0.90x"
    assert even.ours.endswith("jobs/s (±0.005, n=2)")  # the 2-worker figure is ours
    assert scaleout.throughput_row("tiny", [1.0], [0.8], threads=2).verdict == "MISS"


def test_scaleout_dispatch_row_passes_only_without_a_poll_wait() -> None:
    from bench import scaleout

    fast = scaleout.dispatch_row("tiny", [12.0, 14.0, 13.0], [2.0, 3.0, 2.5])
    assert fast.verdict == "PASS" and fast.ratio == "+10.5 ms" and fast.goal.startswith("<= 100")
    polled = scaleout.dispatch_row("tiny", [480.0, 520.0], [2.0])  # a 1 s poll, on average
    assert polled.verdict == "MISS" and polled.ratio == "+498.0 ms"
