"""Context plans: load method, companions chosen by detected kind, errors, defaults, fallback.

Model directories are built from header-valid safetensors files (the data section is a sparse
hole) with the real tensor names and shapes of ``test_detect``'s tables, so every plan here
starts from the real detector. Loading is always a fake loader: no native context is created.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_detect import CASES, Table, flux, flux2, kl_vae, mmdit, qwen_image, t5, wan
from test_detect import DM as PREFIX
from test_detect import write_safetensors as _write

from sdcpp import ModelLoadError, StableDiffusion, UnsupportedError
from sdcpp.detect import MODEL_IDS, detect_from_tensors
from sdcpp.plan import (
    ARCHITECTURES,
    COMPANION_SLOTS,
    ContextPlan,
    RecommendedDefaults,
    companions_for,
    kind_tags,
    load_from_models_dir,
    load_with_fallback,
    missing_companions,
    plan_for,
    plan_from_registry,
    raise_if_missing,
    raise_if_unsupported,
    requirements,
)
from sdcpp.registry import ModelRegistry

# ---- tables the detection tests do not have ----------------------------------------------------


def umt5() -> Table:
    return t5() | {"shared.weight": (256384, 4096)}  # UMT5's 256k multilingual vocabulary


def wan_vae(z: int) -> Table:
    return {"decoder.middle.0.residual.0.gamma": (384, 1, 1, 1), "conv2.weight": (z, z, 1, 1, 1)}


def qwen3(hidden: int) -> Table:
    t: Table = {"model.embed_tokens.weight": (151936, hidden)}
    for i in range(2):
        t[f"model.layers.{i}.self_attn.q_proj.weight"] = (4096, hidden)
        t[f"model.layers.{i}.self_attn.q_norm.weight"] = (128,)
    return t


def clip_l() -> Table:
    return CASES["clip_l"]()


def clip_vision_h() -> Table:
    return CASES["clip_vision"]()


def llm_qwen25vl() -> Table:
    return CASES["llm"]()


def put(root: Path, relpath: str, table: Table) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    return _write(path, table)


def candidates(**tables: Table) -> list[tuple[str, Any]]:
    """(fake path, detection) pairs: plans only look at detections and paths."""
    return [(f"/m/{name}.safetensors", detect_from_tensors(t)) for name, t in tables.items()]


def names(plan: ContextPlan) -> dict[str, str]:
    return {slot: Path(path).name for slot, path in plan.files.items()}


class FakeLoader:
    """Stands in for StableDiffusion; ``fail`` lists load methods that raise ModelLoadError."""

    def __init__(self, *fail: str) -> None:
        self.fail = set(fail)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(kwargs)
        method = "model" if "model" in kwargs else "diffusion_model"
        if method in self.fail:
            raise ModelLoadError(f"failed to load model: {method} refused")
        return SimpleNamespace(kwargs=kwargs)


@pytest.fixture
def flux_dir(tmp_path: Path) -> Path:
    """A FLUX.1 [dev] with every companion, plus look-alikes that must not be chosen (each
    sorts before the right file, so picking by path alone would be wrong)."""
    root = tmp_path / "models"
    put(root, "diffusion_models/flux1-dev.safetensors", flux())
    put(root, "vae/a_sd15_vae.safetensors", kl_vae(""))  # 4 channels
    put(root, "vae/ae.safetensors", kl_vae("", 16))
    put(root, "vae/a_wan_2.1_vae.safetensors", wan_vae(16))  # 16 channels, but a WanVAE
    put(root, "text_encoders/clip_l.safetensors", clip_l())
    put(root, "text_encoders/a_umt5_xxl.safetensors", umt5())
    put(root, "text_encoders/t5xxl/t5xxl_fp16.safetensors", t5())
    return root


# ---- the table ---------------------------------------------------------------------------------


def test_every_model_id_has_a_row_and_slots_are_constructor_keywords() -> None:
    assert set(MODEL_IDS) <= set(ARCHITECTURES)
    keywords = inspect.signature(StableDiffusion.__init__).parameters
    assert all(slot in keywords for slot in COMPANION_SLOTS)
    for key, spec in ARCHITECTURES.items():
        assert spec.load_as in ("model", "diffusion_model"), key
        assert all(c.slot in COMPANION_SLOTS for c in spec.companions), key
        assert all(c.hint for c in spec.companions), key


def test_kind_tags_tell_vae_channels_and_encoder_families_apart() -> None:
    tags = {
        name: kind_tags(detect_from_tensors(table))
        for name, table in {
            "kl4": kl_vae(""),
            "kl16": kl_vae("vae.", 16),
            "wan16": wan_vae(16),
            "wan48": wan_vae(48),
            "t5": t5(),
            "umt5": umt5(),
            "qwen3": qwen3(2560),
            "vl": llm_qwen25vl(),
            "cv": clip_vision_h(),
        }.items()
    }
    assert tags["kl4"] == ("vae", "vae:kl4")
    assert tags["kl16"] == ("vae", "vae:kl16")
    assert tags["wan16"] == ("vae", "vae:wan16")
    assert tags["wan48"] == ("vae", "vae:wan48")
    assert tags["t5"] == ("t5xxl", "t5xxl:t5")
    assert tags["umt5"] == ("t5xxl", "t5xxl:umt5")
    assert tags["qwen3"] == ("llm", "llm:qwen3", "llm:qwen3@2560")
    assert tags["vl"] == ("llm", "llm:qwen2.5-vl", "llm:qwen2.5-vl@3584")
    assert tags["cv"] == ("clip_vision", "clip_vision:vit-h")


# ---- checkpoints -------------------------------------------------------------------------------


def test_sd1_checkpoint_loads_as_model_without_companions(tmp_path: Path) -> None:
    root = tmp_path / "models"
    ckpt = put(root, "checkpoints/sd15.safetensors", CASES["sd1"]())
    put(root, "vae/ae.safetensors", kl_vae("", 16))
    put(root, "text_encoders/clip_l.safetensors", clip_l())
    plan = plan_from_registry(ModelRegistry(root), "sd15")
    assert plan.load_as == "model"
    assert plan.files == {} and plan.missing == []
    assert plan.loader_kwargs() == {"model": str(ckpt.resolve())}
    assert plan.defaults == RecommendedDefaults()  # the engine's defaults suit SD 1.x
    raise_if_missing(plan)  # nothing to complain about


def test_checkpoint_parts_decide_which_companions_are_asked_for() -> None:
    # SD3 Medium with its encoders and VAE inside: nothing else
    assert plan_for(detect_from_tensors(CASES["sd3"]())).missing == []
    # SD3.5 Large as released: MMDiT + VAE in a checkpoint, the three encoders outside
    large = detect_from_tensors(mmdit(38, p=PREFIX) | kl_vae("first_stage_model.", 16))
    plan = plan_for(large, candidates(l=clip_l(), t=t5(), vae=kl_vae("", 16)))
    assert (large.id, plan.load_as) == ("sd3.5_large", "model")
    assert names(plan) == {"clip_l": "l.safetensors", "t5xxl": "t.safetensors"}
    assert [m.slot for m in plan.missing] == ["clip_g"]
    assert plan.defaults.cfg_scale == 4.5 and plan.defaults.keep_clip_on_cpu is True


def test_sdxl_optional_vae_is_suggested_not_attached() -> None:
    plan = plan_for(detect_from_tensors(CASES["sdxl"]()), candidates(v=kl_vae("")))
    assert plan.files == {} and plan.missing == []
    assert any(n.startswith("optional vae: sdxl_vae-fp16-fix") for n in plan.notes)
    assert (plan.defaults.width, plan.defaults.height) == (1024, 1024)


# ---- standalone diffusion models ---------------------------------------------------------------


def test_flux_dev_resolves_16ch_vae_clip_l_and_t5_from_the_dir(flux_dir: Path) -> None:
    reg = ModelRegistry(flux_dir)
    plan = plan_from_registry(reg, "flux1-dev")
    assert plan.load_as == "diffusion_model"
    assert names(plan) == {
        "vae": "ae.safetensors",
        "clip_l": "clip_l.safetensors",
        "t5xxl": "t5xxl_fp16.safetensors",
    }
    assert plan.missing == []
    kwargs = plan.loader_kwargs()
    assert kwargs["diffusion_model"].endswith("flux1-dev.safetensors") and "model" not in kwargs
    assert plan.defaults.image_options() == {"cfg_scale": 1.0}
    assert plan.defaults.context_options() == {"keep_clip_on_cpu": True}
    # the registry's hooks answer from the same table
    assert requirements(reg, "flux1-dev") == ["vae", "clip_l", "t5xxl"]
    assert missing_companions(reg, "flux1-dev") == []
    assert missing_companions(reg, "ae") == []  # a VAE needs nothing


def test_missing_t5xxl_is_a_model_load_error_naming_it(flux_dir: Path) -> None:
    (flux_dir / "text_encoders/t5xxl/t5xxl_fp16.safetensors").unlink()
    assert missing_companions(ModelRegistry(flux_dir), "flux1-dev") == ["t5xxl"]
    with pytest.raises(ModelLoadError) as info:
        StableDiffusion.from_models_dir("flux1-dev", models_dir=flux_dir)
    message = str(info.value)
    assert message.startswith("FLUX.1 [dev] (flux1-dev.safetensors) needs t5xxl: ")
    assert "a T5-XXL encoder (e.g. t5xxl_fp16.safetensors) in models/text_encoders/" in message
    assert "unsuitable: a_umt5_xxl.safetensors is UMT5-XXL encoder" in message
    assert "needs vae" not in message and "needs clip_l" not in message


def test_every_missing_companion_is_named(tmp_path: Path) -> None:
    plan = plan_for(detect_from_tensors(flux()), path=tmp_path / "flux.gguf")
    with pytest.raises(ModelLoadError) as info:
        raise_if_missing(plan)
    parts = str(info.value).split("; ")
    assert [p.split(": ")[0] for p in parts] == [
        "FLUX.1 [dev] (flux.gguf) needs vae",
        "FLUX.1 [dev] (flux.gguf) needs clip_l",
        "FLUX.1 [dev] (flux.gguf) needs t5xxl",
    ]
    assert "16-channel FLUX.1/SD3 VAE (e.g. ae.safetensors) in models/vae/" in parts[0]
    assert companions_for(detect_from_tensors(flux(chroma=True))) == ["vae", "t5xxl"]


def test_wan21_i2v_needs_clip_vision_umt5_and_the_wan_vae() -> None:
    i2v = detect_from_tensors(wan(40, 5120, 36, img_emb=True))
    pool = candidates(
        ae=kl_vae("", 16),
        wan_2_1_vae=wan_vae(16),
        wan2_2_vae=wan_vae(48),
        t5xxl=t5(),
        umt5=umt5(),
        clip_vision_h=clip_vision_h(),
    )
    plan = plan_for(i2v, pool)
    assert names(plan) == {
        "vae": "wan_2_1_vae.safetensors",
        "t5xxl": "umt5.safetensors",
        "clip_vision": "clip_vision_h.safetensors",
    }
    assert plan.defaults.video_options() == {
        "cfg_scale": 6.0,
        "width": 832,
        "height": 480,
        "flow_shift": 3.0,
        "video_frames": 33,
    }
    without_vision = plan_for(i2v, [c for c in pool if "clip_vision" not in c[0]])
    assert [m.slot for m in without_vision.missing] == ["clip_vision"]
    # TI2V 5B decodes with the 48-channel Wan 2.2 VAE instead
    ti2v = plan_for(detect_from_tensors(wan(30, 3072, 48)), pool)
    assert names(ti2v) == {"vae": "wan2_2_vae.safetensors", "t5xxl": "umt5.safetensors"}


def test_wan22_a14b_pairs_the_high_noise_expert_by_kind_and_shape() -> None:
    low = detect_from_tensors(wan(40, 5120, 36))
    pool = candidates(
        b_low=wan(40, 5120, 36),  # the main file itself: never its own companion
        c_high=wan(40, 5120, 36),
        a_other=wan(39, 5120, 36),  # same id, other tensors: not an expert of this model
        vae=wan_vae(16),
        umt5=umt5(),
    )
    plan = plan_for(low, pool, path="/m/b_low.safetensors")
    assert low.id == "wan2.2_i2v"
    assert names(plan)["high_noise_diffusion_model"] == "c_high.safetensors"
    assert plan.defaults.high_noise_steps == 8
    alone = plan_for(low, pool[:1] + pool[2:], path="/m/b_low.safetensors")
    assert [m.slot for m in alone.missing] == ["high_noise_diffusion_model"]


def test_qwen_image_needs_its_llm_and_the_qwen_vae() -> None:
    qwen = detect_from_tensors(qwen_image())
    pool = candidates(ae=kl_vae("", 16), qwen_vae=wan_vae(16), vl=llm_qwen25vl(), q3=qwen3(2560))
    plan = plan_for(qwen, pool)
    assert names(plan) == {"vae": "qwen_vae.safetensors", "llm": "vl.safetensors"}
    assert plan.defaults.cfg_scale == 2.5 and plan.defaults.width == 1024
    missing = plan_for(qwen, [c for c in pool if "vl" not in c[0]]).missing
    assert [m.slot for m in missing] == ["llm"]
    assert missing[0].unsuitable == ("q3.safetensors is Qwen3 text encoder",)
    # Edit-2511 needs the zero_cond_t flag: a context setting, not a hint
    edit = plan_for(detect_from_tensors(qwen_image(edit_flag=True)), pool)
    assert edit.context == {"qwen_image_zero_cond_t": True}


def test_flux2_klein_llm_is_chosen_by_text_width() -> None:
    pool = candidates(a_q3_8b=qwen3(4096), b_q3_4b=qwen3(2560), vae=kl_vae("", 32))
    four = plan_for(detect_from_tensors(flux2(5, 20, 3072, 7680)), pool)
    nine = plan_for(detect_from_tensors(flux2(8, 24, 4096, 12288)), pool)
    assert names(four) == {"vae": "vae.safetensors", "llm": "b_q3_4b.safetensors"}
    assert names(nine)["llm"] == "a_q3_8b.safetensors"
    assert four.defaults.steps == 4
    dev = plan_for(detect_from_tensors(flux2()), pool)
    assert [m.slot for m in dev.missing] == ["llm"]  # FLUX.2 [dev] reads Mistral


def test_ties_are_broken_by_path_order() -> None:
    pool = candidates(z_ae=kl_vae("", 16), m_ae=kl_vae("", 16), l=clip_l(), t=t5())
    plan = plan_for(detect_from_tensors(flux()), reversed(pool))
    assert names(plan)["vae"] == "m_ae.safetensors"
    assert any("2 files fit, chose the first by path" in n for n in plan.notes)


def test_unknown_and_unsupported_architectures() -> None:
    odd = detect_from_tensors({f"{PREFIX}mystery.weight": (4, 4)})
    plan = plan_for(odd, candidates(vae=kl_vae("")), path="/m/odd.safetensors")
    assert (odd.id, plan.load_as, plan.files, plan.missing) == ("unknown", "model", {}, [])
    assert "seed 002's fallback" in plan.notes[0]
    raise_if_unsupported(plan)
    ltx = plan_for(detect_from_tensors(CASES["ltxv"]()))
    with pytest.raises(UnsupportedError, match="no LTX-Video"):
        raise_if_unsupported(ltx)


def test_recommended_defaults_serialise_plainly() -> None:
    sdxs = ARCHITECTURES["sdxs"].defaults
    assert sdxs.image_options() == {"cfg_scale": 1.0, "steps": 1}
    wan22 = ARCHITECTURES["wan2.2_i2v"].defaults
    assert wan22.video_options()["high_noise_cfg_scale"] == 3.5
    assert "guidance" not in wan22.video_options()
    assert wan22.context_options() == {"offload_params_to_cpu": True, "diffusion_flash_attn": True}
    assert ARCHITECTURES["chroma"].defaults.to_dict()["chroma_use_dit_mask"] is False


# ---- loading -----------------------------------------------------------------------------------


def test_explicit_overrides_win_and_recommendations_are_attached(flux_dir: Path) -> None:
    (flux_dir / "text_encoders/t5xxl/t5xxl_fp16.safetensors").unlink()  # given explicitly below
    mine = flux_dir / "elsewhere" / "my_t5.safetensors"
    loader = FakeLoader()
    sd = load_from_models_dir(
        "flux1-dev",
        models_dir=flux_dir,
        loader=loader,
        t5xxl=mine,
        vae=None,  # explicit None: attach no VAE at all
        keep_clip_on_cpu=False,
    )
    (call,) = loader.calls
    assert call["t5xxl"] == str(mine)
    assert "vae" not in call
    assert call["clip_l"].endswith("clip_l.safetensors")
    assert call["keep_clip_on_cpu"] is False  # passed through untouched
    assert sd.recommended == ARCHITECTURES["flux_dev"].defaults
    assert sd.plan.files["t5xxl"] == mine and sd.plan.missing == []


def test_plan_context_settings_reach_the_loader_unless_overridden(tmp_path: Path) -> None:
    root = tmp_path / "models"
    put(root, "diffusion_models/edit.safetensors", qwen_image(edit_flag=True))
    put(root, "vae/qwen_image_vae.safetensors", wan_vae(16))
    put(root, "text_encoders/qwen_2.5_vl_7b.safetensors", llm_qwen25vl())
    loader = FakeLoader()
    load_from_models_dir("edit", models_dir=root, loader=loader)
    load_from_models_dir("edit", models_dir=root, loader=loader, qwen_image_zero_cond_t=False)
    assert [c["qwen_image_zero_cond_t"] for c in loader.calls] == [True, False]


def test_fallback_logs_and_tries_the_other_method(
    flux_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    plan = plan_from_registry(ModelRegistry(flux_dir), "flux1-dev")
    loader = FakeLoader("diffusion_model")
    with caplog.at_level(logging.WARNING, logger="sdcpp.plan"):
        loaded = load_with_fallback(plan, loader=loader, n_threads=2)
    assert ["model" in c for c in loader.calls] == [False, True]
    assert loaded.kwargs["model"] == str(plan.model_path)
    assert loaded.kwargs["t5xxl"] == str(plan.files["t5xxl"]) and loaded.kwargs["n_threads"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "diffusion_model_path failed" in warnings[0]
    assert "retrying with model_path" in warnings[0]
    assert "with model_path (the fallback)" in warnings[1]


def test_fallback_failure_raises_the_first_error_with_the_second_appended(
    flux_dir: Path,
) -> None:
    plan = plan_from_registry(ModelRegistry(flux_dir), "flux1-dev")
    loader = FakeLoader("model", "diffusion_model")
    with pytest.raises(ModelLoadError) as info:
        load_with_fallback(plan, loader=loader)
    assert str(info.value) == (
        "failed to load model: diffusion_model refused "
        "(retry with model_path also failed: failed to load model: model refused)"
    )
    assert isinstance(info.value.__cause__, ModelLoadError)
    assert len(loader.calls) == 2


def test_from_models_dir_refuses_non_models_and_explicit_main_files(flux_dir: Path) -> None:
    with pytest.raises(ValueError, match="is a vae"):
        load_from_models_dir("ae", models_dir=flux_dir, loader=FakeLoader())
    with pytest.raises(ValueError, match="chooses diffusion_model="):
        load_from_models_dir(
            "flux1-dev", models_dir=flux_dir, loader=FakeLoader(), diffusion_model="x"
        )
