"""``inpainting_fill``: what the masked area of the init image holds before sampling.

A1111's four modes, and what this engine can do of each (it inpaints by keeping the init
image's latent outside the mask at every step; inside, it starts from the init image's latent
noised to ``denoising_strength``, exactly A1111's "original"):

- 1 ``original``: the init image as it is. Exact: nothing to do.
- 0 ``fill``: the masked area painted with the colours around it, in pixel space before the
  VAE encodes the image. Exact in kind (A1111 does this in pixel space too); the colours come
  from a push-pull fill of our own (the kept pixels averaged over ever smaller blocks, each
  masked pixel taking the finest average that reaches it), not A1111's repeated blurs, so
  they are close to A1111's but not identical.
- 2 ``latent noise``: A1111 replaces the masked latent with Gaussian noise *after* encoding.
  The engine takes no latent from us, so this is approximated in pixel space: the masked
  area becomes uniform random colour noise (seeded by the job's seed), whose encoding is
  noise-like. Not A1111's latent; same intent (the model ignores what was there).
- 3 ``latent nothing``: A1111 zeroes the masked latent. Approximated in pixel space with flat
  mid-grey, about what a zero latent decodes to with the SD VAEs.

In each mode the mask's feathered edge blends the filled pixels into the kept ones.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

ORIGINAL, FILL, LATENT_NOISE, LATENT_NOTHING = 1, 0, 2, 3
NAMES = {FILL: "fill", ORIGINAL: "original", LATENT_NOISE: "latent noise",
         LATENT_NOTHING: "latent nothing"}  # fmt: skip
MID_GREY = 127.5
_EPS = 1e-3


def _block_average(values: np.ndarray, factor: int) -> np.ndarray:
    """``values`` averaged over ``factor`` x ``factor`` blocks, spread back to full size."""
    height, width = values.shape
    small = Image.fromarray(values, "F").resize(
        (max(1, width // factor), max(1, height // factor)), Image.Resampling.BOX
    )
    return np.asarray(small.resize((width, height), Image.Resampling.BILINEAR))


def surrounding_colours(rgb: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Every pixel's estimate from the kept ones (``keep`` 1 = kept, 0 = masked): the
    coverage-weighted average at the finest block size where some kept pixel reaches it."""
    if keep.max() <= _EPS:  # nothing kept: no colour to take
        return np.full_like(rgb, MID_GREY)
    weights = keep.sum()
    estimate = np.empty_like(rgb)
    estimate[...] = (rgb * keep[..., None]).reshape(-1, 3).sum(0) / weights  # the mean colour
    factor = 1 << (max(rgb.shape[:2]).bit_length() - 1)
    while factor >= 1:
        coverage = _block_average(keep, factor)
        reached = coverage > _EPS
        for c in range(3):
            total = _block_average(np.ascontiguousarray(rgb[..., c] * keep), factor)
            estimate[..., c] = np.where(
                reached, total / np.maximum(coverage, _EPS), estimate[..., c]
            )
        factor //= 2
    return estimate


def apply(image: Image.Image, mask: Image.Image, mode: int, seed: int) -> Image.Image:
    """``image`` (RGB) with its masked area (``mask`` L, white = repaint) prepared as
    ``mode`` says; ``seed`` makes mode 2's noise reproducible."""
    if mode == ORIGINAL:
        return image
    rgb = np.asarray(image.convert("RGB"), np.float32)
    repaint = np.asarray(mask.convert("L"), np.float32) / 255.0
    if mode == FILL:
        filled = surrounding_colours(rgb, 1.0 - repaint)
    elif mode == LATENT_NOISE:
        noise = np.random.default_rng(seed & 0xFFFFFFFF).integers(0, 256, rgb.shape)
        filled = noise.astype(np.float32)
    elif mode == LATENT_NOTHING:
        filled = np.full_like(rgb, MID_GREY)
    else:
        raise ValueError(f"inpainting_fill must be 0, 1, 2 or 3, not {mode}")
    out = rgb * (1.0 - repaint[..., None]) + filled * repaint[..., None]
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")
