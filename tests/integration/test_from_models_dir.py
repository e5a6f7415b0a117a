"""StableDiffusion.from_models_dir with the real engine and the synthetic SDXS checkpoint.

(Not named test_plan.py: tests/unit/test_plan.py exists, and without __init__.py files pytest's
default import mode refuses two test modules with one basename in a session.)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

import sdcpp


def test_from_models_dir_finds_plans_and_generates(tiny_path: Path, tmp_path: Path) -> None:
    checkpoints = tmp_path / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    target = checkpoints / tiny_path.name  # sdxs-v1.safetensors
    try:  # a link, not a symlink: the registry refuses symlinks that leave the models dir
        os.link(tiny_path, target)
    except OSError:
        shutil.copyfile(tiny_path, target)
    with sdcpp.StableDiffusion.from_models_dir(
        "sdxs-v1", models_dir=tmp_path / "models", n_threads=2
    ) as sd:
        assert sd.plan is not None and sd.recommended is not None
        assert (sd.plan.detection.id, sd.plan.load_as) == ("sdxs", "model")
        assert sd.plan.files == {} and sd.plan.missing == []
        assert sd.files == {"model": str(target.resolve())}
        options = sd.recommended.image_options()
        assert options == {"cfg_scale": 1.0, "steps": 1}  # docs/distilled_sd.md: mandatory
        (image,) = sd.generate("a cat", width=64, height=64, seed=3, **options)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert np.asarray(image).std() > 1.0  # not a blank image
    assert "Steps: 1, " in image.info["parameters"]
    assert "CFG scale: 1, " in image.info["parameters"]
