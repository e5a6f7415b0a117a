"""ModelCache: LRU order, count and memory budget, keep-alive, checks before eviction."""

from __future__ import annotations

import pytest

from sdcpp.errors import InvalidArgument, ModelLoadError
from sdcpp.server.settings import Settings
from sdcpp.server.worker.model_cache import ModelCache


class Model:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _get(cache: ModelCache[Model], name: str, size: int = 0) -> tuple[Model, bool]:
    return cache.get(name, lambda: Model(name), label=f"/m/{name}", size=size)


def test_hits_cost_no_load_and_refresh_the_order() -> None:
    cache: ModelCache[Model] = ModelCache(max_models=2)
    a, loaded = _get(cache, "a")
    assert loaded and cache.loads == 1
    b, _ = _get(cache, "b")
    assert _get(cache, "a") == (a, False)  # switching back: no load
    assert cache.loads == 2 and cache.labels == ["/m/a", "/m/b"]
    _get(cache, "c")  # the least recently used (b) goes
    assert b.closed and not a.closed
    assert cache.labels == ["/m/c", "/m/a"] and cache.loads == 3


def test_memory_budget_evicts_until_it_fits() -> None:
    cache: ModelCache[Model] = ModelCache(max_models=5, budget_bytes=100)
    a, _ = _get(cache, "a", 40)
    b, _ = _get(cache, "b", 40)
    _get(cache, "c", 40)  # 120 > 100: a (the oldest) goes
    assert a.closed and not b.closed and cache.used_bytes == 80
    big, _ = _get(cache, "big", 500)  # larger than the budget: loaded alone
    assert cache.labels == ["/m/big"] and not big.closed


def test_failed_check_evicts_nothing() -> None:
    cache: ModelCache[Model] = ModelCache(max_models=1)
    a, _ = _get(cache, "a")

    def broken() -> None:
        raise ModelLoadError("model file is truncated")

    with pytest.raises(ModelLoadError):
        cache.get("bad", lambda: Model("bad"), broken, label="/m/bad")
    assert not a.closed and cache.labels == ["/m/a"] and cache.loads == 1


def test_keep_alive_unloads_idle_models() -> None:
    clock = Clock()
    cache: ModelCache[Model] = ModelCache(max_models=3, keep_alive=10, clock=clock)
    a, _ = _get(cache, "a")
    clock.now += 6
    b, _ = _get(cache, "b")
    assert cache.seconds_to_next_expiry() == pytest.approx(4)
    clock.now += 4
    assert cache.evict_idle() == ["/m/a"] and a.closed and not b.closed
    clock.now += 5
    _get(cache, "b")  # used again: its idle time starts over
    clock.now += 9
    assert cache.evict_idle() == [] and cache.labels == ["/m/b"]
    clock.now += 1
    assert cache.evict_idle() == ["/m/b"] and cache.seconds_to_next_expiry() is None


def test_no_keep_alive_never_expires() -> None:
    clock = Clock()
    cache: ModelCache[Model] = ModelCache(clock=clock)
    _get(cache, "a")
    clock.now += 1e9
    assert cache.seconds_to_next_expiry() is None and cache.evict_idle() == []


def test_remove_one_and_clear() -> None:
    cache: ModelCache[Model] = ModelCache(max_models=3)
    a, _ = _get(cache, "a")
    b, _ = _get(cache, "b")
    assert cache.remove("/m/a") and a.closed and cache.labels == ["/m/b"]
    assert not cache.remove("/m/a")
    cache.clear()
    assert b.closed and len(cache) == 0 and cache.label is None


@pytest.mark.parametrize(
    ("raw", "seconds"), [("300", 300.0), ("5m", 300.0), ("1h", 3600.0), ("none", 0.0), (45, 45.0)]
)
def test_keep_alive_setting(raw: object, seconds: float) -> None:
    assert Settings.load(cli={"keep_alive": raw}, env={}).keep_alive == seconds


@pytest.mark.parametrize(
    "values", [{"keep_alive": "soon"}, {"max_loaded_models": 0}, {"model_memory_mb": -1}]
)
def test_bad_cache_settings(values: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        Settings.load(cli=values, env={})
