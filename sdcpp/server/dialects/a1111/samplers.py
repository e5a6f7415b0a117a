"""AUTOMATIC1111's sampler and scheduler spellings <-> the engine's names.

A1111 writes samplers as "Euler a", "DPM++ 2M" and schedulers as "karras" (name) or "Karras"
(label); older clients send the combined form "DPM++ 2M Karras". The A1111-facing labels come
from ``sdcpp.parameters`` (the ones written into every PNG), so a name read back from an image
is accepted here. Samplers and schedulers the engine lacks are refused with the known list.
"""

from __future__ import annotations

from typing import Any

from ....options import SampleMethod, Scheduler
from ....parameters import SAMPLER_NAMES, SCHEDULER_NAMES
from ...exceptions import NotFound

# A1111's aliases ("k_euler_a"...) for the samplers the engine has.
_SAMPLER_ALIASES: dict[SampleMethod, tuple[str, ...]] = {
    SampleMethod.EULER_A: ("k_euler_a", "k_euler_ancestral"),
    SampleMethod.EULER: ("k_euler",),
    SampleMethod.HEUN: ("k_heun",),
    SampleMethod.DPM2: ("k_dpm_2",),
    SampleMethod.DPMPP2S_A: ("k_dpmpp_2s_a",),
    SampleMethod.DPMPP2M: ("k_dpmpp_2m",),
    SampleMethod.LCM: ("k_lcm",),
    SampleMethod.DDIM_TRAILING: ("ddim",),
}
# A1111 scheduler names (1.9+) -> the engine's. "normal" and "uniform" space the steps evenly
# over the model's own sigmas, which is the engine's "discrete".
_A1111_SCHEDULERS: dict[str, Scheduler] = {
    "uniform": Scheduler.DISCRETE,
    "normal": Scheduler.DISCRETE,
    "karras": Scheduler.KARRAS,
    "exponential": Scheduler.EXPONENTIAL,
    "sgm_uniform": Scheduler.SGM_UNIFORM,
    "kl_optimal": Scheduler.KL_OPTIMAL,
    "align_your_steps": Scheduler.AYS,
    "simple": Scheduler.SIMPLE,
}
AUTOMATIC = ("automatic", "", "use same scheduler")


class UnknownSampler(NotFound, ValueError):
    """A sampler or scheduler name this engine has no equivalent for (A1111: 404)."""


def _fold(name: str) -> str:
    return " ".join(name.strip().lower().split())


def _sampler_table() -> dict[str, SampleMethod]:
    table: dict[str, SampleMethod] = {}
    for method in SampleMethod:
        table[_fold(method.value)] = method
        table[_fold(SAMPLER_NAMES[method])] = method
        for alias in _SAMPLER_ALIASES.get(method, ()):
            table[_fold(alias)] = method
    return table


def _scheduler_table() -> dict[str, Scheduler]:
    table: dict[str, Scheduler] = {_fold(k): v for k, v in _A1111_SCHEDULERS.items()}
    for scheduler in Scheduler:
        table.setdefault(_fold(scheduler.value), scheduler)
        table.setdefault(_fold(SCHEDULER_NAMES[scheduler]), scheduler)
    return table


SAMPLERS = _sampler_table()
SCHEDULERS = _scheduler_table()


def parse_scheduler(name: str | None) -> Scheduler | None:
    """The engine scheduler for an A1111 name or label; None for "automatic" (the plan's)."""
    if name is None or _fold(name) in AUTOMATIC:
        return None
    found = SCHEDULERS.get(_fold(name))
    if found is None:
        known = ", ".join(sorted({s["name"] for s in scheduler_list()}))
        raise UnknownSampler(f"scheduler {name!r} not found; known: automatic, {known}")
    return found


def parse_sampler(
    name: str | None, scheduler: str | None = None
) -> tuple[SampleMethod | None, Scheduler | None]:
    """(sampler, scheduler) for A1111's ``sampler_name``/``scheduler``. A combined name
    ("DPM++ 2M Karras") carries its scheduler, which wins over an "automatic" one."""
    chosen = parse_scheduler(scheduler)
    if name is None or not name.strip():
        return None, chosen
    folded = _fold(name)
    if (method := SAMPLERS.get(folded)) is not None:
        return method, chosen
    for label, implied in sorted(SCHEDULERS.items(), key=lambda kv: -len(kv[0])):
        if folded.endswith(" " + label):
            method = SAMPLERS.get(folded[: -len(label) - 1].strip())
            if method is not None:
                return method, chosen or implied
    known = ", ".join(SAMPLER_NAMES[m] for m in SampleMethod)
    raise UnknownSampler(f"sampler {name!r} not found; known: {known}")


def sampler_label(method: SampleMethod | str | None) -> str | None:
    """A1111's spelling of an engine sampler name ("euler_a" -> "Euler a")."""
    if method is None:
        return None
    return SAMPLER_NAMES.get(SampleMethod(method), str(method))


def sampler_list() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/samplers``: [{name, aliases, options}] for every engine sampler."""
    return [
        {
            "name": SAMPLER_NAMES[m],
            "aliases": [m.value, *_SAMPLER_ALIASES.get(m, ())],
            "options": {},
        }
        for m in SampleMethod
    ]


def _scheduler_item(name: str, label: str, scheduler: Scheduler) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "aliases": [scheduler.value],
        "default_rho": 7.0 if scheduler is Scheduler.KARRAS else -1,
        "need_inner_model": False,
    }


def scheduler_list() -> list[dict[str, Any]]:
    """``GET /sdapi/v1/schedulers``: "automatic", A1111's names the engine has, then the
    engine's other schedulers under their own names."""
    items: list[dict[str, Any]] = [
        {
            "name": "automatic",
            "label": "Automatic",
            "aliases": None,
            "default_rho": -1,
            "need_inner_model": False,
        }
    ]
    for name, scheduler in _A1111_SCHEDULERS.items():
        label = "Normal" if name == "normal" else SCHEDULER_NAMES[scheduler]
        items.append(_scheduler_item(name, label, scheduler))
    listed = set(_A1111_SCHEDULERS.values())
    for scheduler in Scheduler:
        if scheduler not in listed:
            items.append(_scheduler_item(scheduler.value, SCHEDULER_NAMES[scheduler], scheduler))
    return items
