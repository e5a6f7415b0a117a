"""Model registry: typing, ids, refresh, listing, hashing and path safety on a synthetic tree."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from sdcpp import InvalidArgument, _safetensors
from sdcpp.registry import (
    AmbiguousModelError,
    ModelNotFoundError,
    ModelRegistry,
    ModelType,
    RegistryError,
    UnsafePathError,
    core,
    hashing,
    model_id,
)


class FakeDetector:
    """Reads ``arch``/``role`` from safetensors metadata; anything else fails like a bad file."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, path: Path) -> Any:
        self.calls.append(path.name)
        header, _ = _safetensors.read_header(path)
        meta = header.get("__metadata__", {})
        return SimpleNamespace(id=meta.get("arch"), role=meta.get("role"), name=path.stem)


def weights(path: Path, arch: str = "sd1", role: str = "checkpoint", n: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"w": np.arange(n, dtype=np.float32)}
    _safetensors.save(path, tensors, metadata={"arch": arch, "role": role})
    return path


def text(path: Path, content: str = "a cat") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


EXPECTED = {
    "checkpoints/sd15.safetensors": ModelType.CHECKPOINT,
    "loras/detail.safetensors": ModelType.LORA,
    "loras/style/anime.safetensors": ModelType.LORA,
    "vae/sdxl_vae.safetensors": ModelType.VAE,
    "text_encoders/clip_l/clip_l.safetensors": ModelType.TEXT_ENCODER,
    "esrgan/x4.pth": ModelType.ESRGAN,
    "prompts/cat.txt": ModelType.PROMPTS,
    "presets/fast.json": ModelType.PRESETS,
    "full.safetensors": ModelType.CHECKPOINT,
    "dit.safetensors": ModelType.DIFFUSION_MODEL,
    "root_lora.safetensors": ModelType.LORA,
}


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    weights(root / "checkpoints/sd15.safetensors", n=64)
    weights(root / "loras/detail.safetensors", role="lora", n=8)
    weights(root / "loras/style/anime.safetensors", arch="sdxl", role="lora", n=16)
    weights(root / "vae/sdxl_vae.safetensors", arch="sdxl", role="vae", n=32)
    weights(root / "text_encoders/clip_l/clip_l.safetensors", arch="clip_l", role="clip_l")
    (root / "esrgan").mkdir()
    (root / "esrgan/x4.pth").write_bytes(b"not a safetensors file at all")
    text(root / "prompts/cat.txt")
    text(root / "presets/fast.json", "{}")
    # Root-level files: typed by detection.
    weights(root / "full.safetensors", arch="sdxl", role="checkpoint")
    weights(root / "dit.safetensors", arch="flux_dev", role="diffusion_model")
    weights(root / "root_lora.safetensors", arch="sd1", role="lora")
    # Ignored: hidden, temp, unknown extension, root text, untyped folder, hidden folder.
    weights(root / "checkpoints/.hidden.safetensors")
    weights(root / "loras/.detail.safetensors.abc123.tmp")
    text(root / "checkpoints/notes.md")
    text(root / "readme.txt")
    weights(root / "other/x.safetensors")
    weights(root / ".cache/y.safetensors")
    weights(root / "checkpoints/.partial/z.safetensors")
    return root


@pytest.fixture
def detector() -> FakeDetector:
    return FakeDetector()


@pytest.fixture
def reg(models: Path, tmp_path: Path, detector: FakeDetector) -> ModelRegistry:
    return ModelRegistry(models, data_dir=tmp_path / "data", detector=detector)


def paths(reg: ModelRegistry, **kwargs: Any) -> list[str]:
    return [e.path for e in reg.list(limit=None, **kwargs).items]


def set_mtime(path: Path, seconds: int) -> None:
    os.utime(path, ns=(seconds * 10**9, seconds * 10**9))


# -- types ------------------------------------------------------------------------------------


def test_model_type_keeps_seed_names_and_bits() -> None:
    seed = {
        "LORA": 1,
        "CHECKPOINT": 2,
        "VAE": 4,
        "PRESETS": 8,
        "PROMPTS": 16,
        "NEG_PROMPTS": 32,
        "TAESD": 64,
        "ESRGAN": 128,
        "CONTROLNET": 256,
        "UPSCALER": 512,
        "EMBEDDING": 1024,
    }
    for name, value in seed.items():
        assert int(ModelType[name]) == value
    extras = [t for t in ModelType if t.name not in seed]
    assert {t.name for t in extras} == {"DIFFUSION_MODEL", "TEXT_ENCODER", "PHOTOMAKER"}
    assert all(int(t) > 1024 and int(t).bit_count() == 1 for t in extras)


def test_model_type_folders_and_extensions_include_the_seed_lists() -> None:
    assert {".safetensors", ".pt", ".ckpt"} <= set(ModelType.LORA.extensions)
    assert {".pth", ".pt"} <= set(ModelType.ESRGAN.extensions)
    assert set(ModelType.PRESETS.extensions) == {".json", ".yaml", ".yml"}
    assert set(ModelType.PROMPTS.extensions) == {".txt", ".json"}
    assert ".gguf" in ModelType.DIFFUSION_MODEL.extensions
    assert ModelType.LORA.folders[0] == "loras" and "lora" in ModelType.LORA.folders
    assert {"esrgan", "upscale_models"} <= set(ModelType.ESRGAN.folders)
    assert ModelType.TEXT_ENCODER.info.subfolders == ("clip_l", "clip_g", "t5xxl", "llm")
    assert ModelType.PROMPTS.is_text and not ModelType.VAE.is_text


def test_model_type_parse() -> None:
    assert ModelType.parse("lora") is ModelType.LORA
    assert ModelType.parse("LORAS") is ModelType.LORA
    assert ModelType.parse("upscale_models") is ModelType.ESRGAN
    assert ModelType.parse("lora,vae") == ModelType.LORA | ModelType.VAE
    assert ModelType.parse(4) is ModelType.VAE
    with pytest.raises(ValueError, match="unknown model type"):
        ModelType.parse("banana")


# -- scanning ---------------------------------------------------------------------------------


def test_scan_types_and_ignored_files(reg: ModelRegistry) -> None:
    got = {e.path: e.type for e in reg.list(limit=None).items}
    assert got == EXPECTED


def test_entry_fields(reg: ModelRegistry, models: Path) -> None:
    entry = reg.get("loras/style/anime.safetensors")
    stat = (models / entry.path).stat()
    assert entry.name == "anime"
    assert entry.architecture == "sdxl"
    assert (entry.size, entry.mtime) == (stat.st_size, stat.st_mtime)
    assert entry.sha256 is None and entry.error is None
    data = json.loads(json.dumps(entry.to_dict()))
    assert data["type"] == "lora" and data["type_value"] == 1 and data["id"] == entry.id


def test_broken_file_is_listed_as_unknown(reg: ModelRegistry) -> None:
    entry = reg.get("x4")
    assert entry.type is ModelType.ESRGAN
    assert entry.architecture == "unknown"
    assert entry.error is not None and "safetensors" in entry.error


def test_text_files_are_not_detected(reg: ModelRegistry, detector: FakeDetector) -> None:
    reg.refresh()
    assert reg.get("cat").architecture == "none"
    assert "cat.txt" not in detector.calls and "fast.json" not in detector.calls


def test_missing_detect_module_gives_unknown(models: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sdcpp.detect", None)  # makes the lazy import fail
    entry = ModelRegistry(models).get("sd15")
    assert entry.architecture == "unknown"
    assert entry.error is not None and "detect" in entry.error


def test_ids_are_stable(reg: ModelRegistry, models: Path, detector: FakeDetector) -> None:
    first = {e.path: e.id for e in reg.list(limit=None).items}
    reg.refresh()
    second = {e.path: e.id for e in reg.list(limit=None).items}
    third = {e.path: e.id for e in ModelRegistry(models, detector=detector).list(limit=None).items}
    assert first == second == third
    path = "loras/style/anime.safetensors"
    assert first[path] == hashlib.sha1(path.encode()).hexdigest()[:16] == model_id(path)
    assert len(set(first.values())) == len(first)


def test_refresh_reports_found_updated_removed(reg: ModelRegistry, models: Path) -> None:
    first = reg.refresh()
    assert {e.path for e in first.found} == set(EXPECTED)
    assert first.total == len(EXPECTED) and not first.updated and not first.removed

    again = reg.refresh()
    assert (again.found, again.updated, again.removed) == ((), (), ())

    weights(models / "loras/new.safetensors", role="lora")
    set_mtime(models / "vae/sdxl_vae.safetensors", 1_000_000)
    (models / "prompts/cat.txt").unlink()
    report = reg.refresh()
    assert [e.path for e in report.found] == ["loras/new.safetensors"]
    assert [e.path for e in report.updated] == ["vae/sdxl_vae.safetensors"]
    assert [e.path for e in report.removed] == ["prompts/cat.txt"]
    assert report.to_dict()["removed"] == [
        {"id": model_id("prompts/cat.txt"), "path": "prompts/cat.txt"}
    ]
    with pytest.raises(ModelNotFoundError):
        reg.get("cat")


def test_detection_is_cached_until_the_file_changes(
    reg: ModelRegistry, models: Path, detector: FakeDetector
) -> None:
    reg.refresh()
    calls = len(detector.calls)
    reg.refresh()
    assert len(detector.calls) == calls
    set_mtime(models / "checkpoints/sd15.safetensors", 2_000_000)
    reg.refresh()
    assert detector.calls[calls:] == ["sd15.safetensors"]


# -- listing ----------------------------------------------------------------------------------


def test_filter_by_type_and_search(reg: ModelRegistry) -> None:
    loras = ["loras/style/anime.safetensors", "loras/detail.safetensors", "root_lora.safetensors"]
    assert paths(reg, type="lora") == loras
    assert paths(reg, type=ModelType.LORA) == loras
    assert sorted(paths(reg, type=ModelType.VAE | ModelType.ESRGAN)) == [
        "esrgan/x4.pth",
        "vae/sdxl_vae.safetensors",
    ]
    assert paths(reg, search="ANIME") == ["loras/style/anime.safetensors"]
    assert paths(reg, search="flux") == ["dit.safetensors"]  # matches the architecture
    assert paths(reg, search="sdxl lora") == ["loras/style/anime.safetensors"]
    assert [e.path for e in reg.by_type(ModelType.DIFFUSION_MODEL)] == ["dit.safetensors"]
    with pytest.raises(InvalidArgument):
        reg.list(type="banana")


def test_sort_orders(reg: ModelRegistry, models: Path) -> None:
    for i, rel in enumerate(["vae/sdxl_vae.safetensors", "loras/detail.safetensors"]):
        set_mtime(models / rel, 3_000_000 + i)
    reg.refresh()
    names = [e.name for e in reg.list(sort_by="name", limit=None).items]
    assert names == sorted(names, key=str.casefold)
    desc = [e.name for e in reg.list(sort_by="name", sort_order="desc", limit=None).items]
    assert desc == names[::-1]
    sizes = [e.size for e in reg.list(sort_by="size", limit=None).items]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    oldest = reg.list(sort_by="date", limit=2).items  # 1970 mtimes: older than the rest
    assert [e.path for e in oldest] == ["vae/sdxl_vae.safetensors", "loras/detail.safetensors"]
    newest_first = reg.list(sort_by="date", sort_order="desc", limit=None).items
    assert [e.path for e in newest_first[-2:]] == [e.path for e in oldest[::-1]]
    types = [int(e.type) for e in reg.list(sort_by="type", limit=None).items]
    assert types == sorted(types)
    with pytest.raises(InvalidArgument):
        reg.list(sort_by="color")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        reg.list(sort_order="up")  # type: ignore[arg-type]


def test_pagination(reg: ModelRegistry) -> None:
    everything = [e.path for e in reg.list(limit=None).items]
    pages = [reg.list(limit=4, page=n) for n in (1, 2, 3)]
    assert [p.total for p in pages] == [len(EXPECTED)] * 3
    assert pages[0].pages == 3 and [len(p.items) for p in pages] == [4, 4, 3]
    assert [e.path for p in pages for e in p.items] == everything
    assert reg.list(limit=4, page=9).items == ()
    assert reg.list(limit=4, page=2).to_dict()["page"] == 2
    with pytest.raises(InvalidArgument):
        reg.list(page=0)
    with pytest.raises(InvalidArgument):
        reg.list(limit=0)


def test_get_by_id_path_and_name(reg: ModelRegistry, models: Path) -> None:
    entry = reg.get("detail")
    assert reg.get(entry.id) == entry == reg.get("loras/detail.safetensors")
    assert reg.get("detail.safetensors") == entry
    weights(models / "checkpoints/detail.safetensors")
    reg.refresh()
    with pytest.raises(AmbiguousModelError, match="checkpoints/detail"):
        reg.get("detail")
    assert reg.get("detail", type="lora") == entry
    with pytest.raises(ModelNotFoundError):
        reg.get("nothing-by-this-name")


# -- hashing ----------------------------------------------------------------------------------


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Counts actual file reads by the registry's hashing function."""
    calls: list[Path] = []
    real = hashing.sha256_file

    def counting(path: Any, progress: Any = None) -> str:
        calls.append(Path(path))
        return real(path, progress)

    monkeypatch.setattr(core, "sha256_file", counting)
    return calls


def test_sha256_matches_hashlib_and_short_hash(
    reg: ModelRegistry, models: Path, hash_calls: list[Path]
) -> None:
    expected = hashlib.sha256((models / "checkpoints/sd15.safetensors").read_bytes()).hexdigest()
    assert reg.sha256("sd15") == expected
    assert reg.short_hash("sd15") == expected[:10]
    assert reg.get("sd15").sha256 == expected
    assert reg.get("sd15").to_dict()["short_hash"] == expected[:10]
    assert len(hash_calls) == 1  # the second and third lookups came from the cache


def test_hash_cache_persists_across_instances(
    reg: ModelRegistry, models: Path, tmp_path: Path, hash_calls: list[Path]
) -> None:
    digest = reg.sha256("sd15")
    cache = json.loads((tmp_path / "data/hash_cache.json").read_text())
    assert cache["files"]["checkpoints/sd15.safetensors"]["sha256"] == digest
    fresh = ModelRegistry(models, data_dir=tmp_path / "data", detector=FakeDetector())
    assert fresh.get("sd15").sha256 == digest  # filled at scan time from the cache
    assert fresh.sha256("sd15") == digest
    assert len(hash_calls) == 1


def test_hash_invalidated_when_file_changes(
    reg: ModelRegistry, models: Path, hash_calls: list[Path]
) -> None:
    path = models / "checkpoints/sd15.safetensors"
    old = reg.sha256("sd15")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, different content
    path.write_bytes(bytes(data))
    set_mtime(path, 4_000_000)
    new = reg.sha256("sd15")
    assert new != old and new == hashlib.sha256(bytes(data)).hexdigest()
    assert len(hash_calls) == 2


def test_concurrent_hash_requests_read_the_file_once(
    reg: ModelRegistry, hash_calls: list[Path]
) -> None:
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(reg.sha256("full"))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    assert len(hash_calls) == 1


def test_sha256_file_streams_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "CHUNK_BYTES", 1000)
    data = os.urandom(4500)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    seen: list[tuple[int, int]] = []
    digest = hashing.sha256_file(path, progress=lambda done, total: seen.append((done, total)))
    assert digest == hashlib.sha256(data).hexdigest()
    assert seen == [(1000, 4500), (2000, 4500), (3000, 4500), (4000, 4500), (4500, 4500)]


def test_unreadable_hash_cache_is_ignored(models: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "hash_cache.json").write_text("{not json")
    reg = ModelRegistry(models, data_dir=data_dir, detector=FakeDetector())
    expected = hashlib.sha256((models / "full.safetensors").read_bytes()).hexdigest()
    assert reg.sha256("full") == expected
    assert json.loads((data_dir / "hash_cache.json").read_text())["version"] == 1


def test_file_changing_while_hashed_is_not_cached(
    reg: ModelRegistry, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def touching(path: Any, progress: Any = None) -> str:
        set_mtime(Path(path), 5_000_000)
        return "0" * 64

    monkeypatch.setattr(core, "sha256_file", touching)
    with pytest.raises(RegistryError, match="changed while"):
        reg.sha256("full")
    assert reg.get("full").sha256 is None


# -- path safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["../x", "loras/../../x", "/etc/passwd", "..\\x", "", "a/\x00b", "C:/x"]
)
def test_traversal_is_refused(reg: ModelRegistry, bad: str) -> None:
    with pytest.raises(UnsafePathError):
        reg.resolve(bad)


def test_resolve_by_id_and_relative_path(reg: ModelRegistry, models: Path) -> None:
    entry = reg.get("sd15")
    target = (models / "checkpoints/sd15.safetensors").resolve()
    assert reg.resolve(entry.id) == target
    assert reg.resolve("checkpoints/./sd15.safetensors") == target
    with pytest.raises(ModelNotFoundError):
        reg.resolve("checkpoints/missing.safetensors")


def test_operator_symlinks_to_another_disk_are_listed_and_resolve(
    reg: ModelRegistry, models: Path, tmp_path: Path
) -> None:
    # Sharing one models folder between tools: a file link and a whole typed folder link.
    outside = weights(tmp_path / "other-disk/shared.safetensors")
    (models / "checkpoints/shared.safetensors").symlink_to(outside)
    (models / "controlnet").symlink_to(outside.parent, target_is_directory=True)
    reg.refresh()
    listed = paths(reg)
    assert "checkpoints/shared.safetensors" in listed
    assert "controlnet/shared.safetensors" in listed
    assert reg.resolve("checkpoints/shared.safetensors") == outside.resolve()
    assert reg.resolve("controlnet/shared.safetensors") == outside.resolve()
    # A client-given name still cannot leave the root by itself.
    with pytest.raises(UnsafePathError):
        reg.resolve("../other-disk/shared.safetensors")


def test_new_and_removed_files_are_noticed_without_refresh(
    reg: ModelRegistry, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sdcpp.registry.core as core

    monkeypatch.setattr(core, "RESCAN_INTERVAL_S", 0.0)
    before = paths(reg)
    new = weights(models / "checkpoints/late.safetensors")
    assert reg.get("late").path == "checkpoints/late.safetensors"  # a miss rescans
    assert "checkpoints/late.safetensors" in paths(reg)
    new.unlink()
    reg.refresh()
    assert paths(reg) == before


def test_listing_rescans_at_most_every_interval(
    reg: ModelRegistry, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sdcpp.registry.core as core

    monkeypatch.setattr(core, "RESCAN_INTERVAL_S", 3600.0)
    paths(reg)
    weights(models / "checkpoints/late.safetensors")
    assert "checkpoints/late.safetensors" not in paths(reg)  # within the interval: cached
    monkeypatch.setattr(core, "RESCAN_INTERVAL_S", 0.0)
    paths(reg)  # stale: answers at once, rescans in the background
    assert reg._background is not None
    reg._background.join(10)
    monkeypatch.setattr(core, "RESCAN_INTERVAL_S", 3600.0)
    assert "checkpoints/late.safetensors" in paths(reg)


def test_symlink_inside_the_root_is_allowed(reg: ModelRegistry, models: Path) -> None:
    (models / "checkpoints/alias.safetensors").symlink_to("../full.safetensors")
    reg.refresh()
    entry = reg.get("checkpoints/alias.safetensors")
    assert entry.type is ModelType.CHECKPOINT
    assert reg.resolve(entry.id) == (models / "full.safetensors").resolve()
    assert reg.sha256(entry.id) == reg.sha256("full")


# -- layout, stats, requirements --------------------------------------------------------------


def test_ensure_layout_and_directories(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "fresh", detector=FakeDetector())
    assert not any(d.exists for d in reg.directories())
    created = reg.ensure_layout()
    assert {"checkpoints", "diffusion_models", "loras", "esrgan", "neg_prompts"} <= set(created)
    assert "text_encoders/t5xxl" in created
    assert all(d.exists for d in reg.directories())
    assert reg.ensure_layout() == []
    assert len(reg) == 0


def test_stats(reg: ModelRegistry) -> None:
    stats = reg.stats()
    assert stats["total"]["count"] == len(EXPECTED)
    assert stats["by_type"]["lora"]["count"] == 3
    assert stats["by_type"]["lora"]["bytes"] == sum(e.size for e in reg.by_type("lora"))
    assert stats["by_type"]["photomaker"] == {"count": 0, "bytes": 0}
    assert sum(t["bytes"] for t in stats["by_type"].values()) == stats["total"]["bytes"]


def test_requirements_come_from_the_plan_for_a_registry_model(
    reg: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry only lists and detects; what a model needs is the plan's answer."""
    from sdcpp import plan
    from sdcpp.plan import _load

    assert plan.requirements(reg, "dit") == ["vae", "clip_l", "t5xxl"]
    seen: list[Any] = []

    def companions(detection: Any) -> list[str]:
        seen.append(detection)
        return ["vae", "t5xxl"]

    monkeypatch.setattr(_load, "companions_for", companions)
    assert plan.requirements(reg, "dit") == ["vae", "t5xxl"]
    assert seen[0].id == "flux_dev"
    assert plan.requirements(reg, "cat") == []  # text files have no detection
    with pytest.raises(ModelNotFoundError):
        plan.requirements(reg, "nope")
