"""A1111 sampler/scheduler spellings -> the engine's names, and the lists A1111 answers."""

from __future__ import annotations

import pytest

from sdcpp.options import SampleMethod, Scheduler
from sdcpp.server.dialects.a1111.samplers import (
    UnknownSampler,
    parse_sampler,
    sampler_label,
    sampler_list,
    scheduler_list,
)


@pytest.mark.parametrize(
    ("name", "scheduler", "want"),
    [
        ("Euler a", None, (SampleMethod.EULER_A, None)),
        ("euler a", "Automatic", (SampleMethod.EULER_A, None)),
        ("k_dpmpp_2m", "karras", (SampleMethod.DPMPP2M, Scheduler.KARRAS)),
        ("DPM++ 2M Karras", None, (SampleMethod.DPMPP2M, Scheduler.KARRAS)),
        ("DPM++ 2M Karras", "exponential", (SampleMethod.DPMPP2M, Scheduler.EXPONENTIAL)),
        ("DPM++ 2S a Karras", "automatic", (SampleMethod.DPMPP2S_A, Scheduler.KARRAS)),
        ("DPM++ 2M SGM Uniform", None, (SampleMethod.DPMPP2M, Scheduler.SGM_UNIFORM)),
        ("DDIM", "Align Your Steps", (SampleMethod.DDIM_TRAILING, Scheduler.AYS)),
        ("LCM", "normal", (SampleMethod.LCM, Scheduler.DISCRETE)),
        ("dpm++2m", "kl_optimal", (SampleMethod.DPMPP2M, Scheduler.KL_OPTIMAL)),
        (None, "Simple", (None, Scheduler.SIMPLE)),
        ("", None, (None, None)),
    ],
)
def test_spellings(name: str | None, scheduler: str | None, want: tuple[object, object]) -> None:
    assert parse_sampler(name, scheduler) == want


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UnknownSampler, match="known: Euler, Euler a"):
        parse_sampler("UniPC")
    with pytest.raises(UnknownSampler, match="karras"):
        parse_sampler("Euler", "beta")
    with pytest.raises(UnknownSampler):
        parse_sampler("DPM++ 3M SDE Karras")


def test_lists_round_trip() -> None:
    for item in sampler_list():
        assert parse_sampler(item["name"])[0] is not None
        assert set(item) == {"name", "aliases", "options"}
    for item in scheduler_list():
        assert set(item) == {"name", "label", "aliases", "default_rho", "need_inner_model"}
        parse_sampler("Euler", item["name"])
        parse_sampler("Euler", item["label"])
    assert sampler_label("euler_a") == "Euler a" and sampler_label(None) is None
    names = [item["name"] for item in scheduler_list()]
    assert {"automatic", "normal", "uniform", "karras", "gits", "lcm"} <= set(names)
    assert len(names) == len(set(names))
