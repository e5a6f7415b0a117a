"""``Upscaler``: an ESRGAN model (e.g. Real-ESRGAN x4plus) that enlarges images.

The file is planned first (``sdcpp.plan.upscaler_plan``, the same plan the server's upscale
jobs show): a checkpoint or other non-upscaler is refused naming what it is, and the plan's
tile size is the default."""

from __future__ import annotations

import os
import threading
from typing import Any

from PIL import Image

from . import _native
from ._files import check_model_file
from .errors import InvalidArgument
from .images import ImageLike, to_array, to_pil
from .plan import UpscalerPlan, upscaler_plan

__all__ = ["Upscaler"]


class Upscaler:
    """>>> with Upscaler("RealESRGAN_x4plus.safetensors") as up:   # doctest: +SKIP
    ...     big = up.upscale(Image.open("small.png"))"""

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        n_threads: int | None = None,
        tile_size: int | None = None,  # None: the plan's (UPSCALE_TILE_SIZE)
        offload_params_to_cpu: bool = False,
        direct: bool = False,
    ) -> None:
        path = check_model_file(model, "upscaler")
        self.plan: UpscalerPlan = upscaler_plan(path)  # ModelLoadError: not an upscaler
        tile_size = self.plan.tile_size if tile_size is None else tile_size
        if n_threads is not None and n_threads < 1:
            raise InvalidArgument("n_threads must be at least 1")
        if not 16 <= tile_size <= 4096:
            raise InvalidArgument("tile_size must be between 16 and 4096")
        threads = n_threads if n_threads is not None else _native.num_physical_cores()
        self.model = str(path)
        self._lock = threading.Lock()
        self._ctx: Any = _native.UpscalerContext(
            str(path), offload_params_to_cpu, direct, threads, tile_size
        )

    @property
    def factor(self) -> int:
        """The model's native scale (4 for Real-ESRGAN x4plus)."""
        return int(self._ctx.factor)

    def upscale(self, image: ImageLike, factor: int | None = None) -> Image.Image:
        """Enlarge ``image`` by ``factor`` (default: the model's own)."""
        scale = self.factor if factor is None else factor
        if not isinstance(scale, int) or not 1 <= scale <= 16:
            raise InvalidArgument("factor must be an integer between 1 and 16")
        array = to_array(image, name="image")
        if array.shape[0] * array.shape[1] * scale * scale > 16384 * 16384:
            raise InvalidArgument("the upscaled image would be larger than 16384x16384 pixels")
        with self._lock:
            return to_pil(self._ctx.upscale(array, scale))

    def close(self) -> None:
        self._ctx.close()

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
