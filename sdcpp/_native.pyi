"""Type stub of the raw binding (csrc/). Use the sdcpp package instead of this module."""

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]  # (H, W) or (H, W, C), C-contiguous

HAS_CANCEL: bool
__version__: str

class _PybindEnum:
    """pybind11's enums: not ``enum.Enum`` (no iteration), but named, int-valued members."""

    __members__: ClassVar[dict[str, Any]]
    def __init__(self, value: int) -> None: ...
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __hash__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...

class _EngineEnum(_PybindEnum):
    @property
    def library_name(self) -> str: ...
    @classmethod
    def from_library_name(cls, name: str) -> Any: ...

class RngType(_EngineEnum):
    STD_DEFAULT: ClassVar[RngType]
    CUDA: ClassVar[RngType]
    CPU: ClassVar[RngType]
    COUNT: ClassVar[RngType]

class SampleMethod(_EngineEnum):
    EULER: ClassVar[SampleMethod]
    EULER_A: ClassVar[SampleMethod]
    COUNT: ClassVar[SampleMethod]

class Scheduler(_EngineEnum):
    DISCRETE: ClassVar[Scheduler]
    KARRAS: ClassVar[Scheduler]
    COUNT: ClassVar[Scheduler]

class Prediction(_EngineEnum):
    COUNT: ClassVar[Prediction]

class SdType(_EngineEnum):
    F32: ClassVar[SdType]
    F16: ClassVar[SdType]
    Q8_0: ClassVar[SdType]
    COUNT: ClassVar[SdType]

class Preview(_EngineEnum):
    NONE: ClassVar[Preview]
    PROJ: ClassVar[Preview]
    TAE: ClassVar[Preview]
    VAE: ClassVar[Preview]

class LoraApplyMode(_EngineEnum): ...
class HiresUpscaler(_EngineEnum): ...

class LogLevel(_PybindEnum):
    DEBUG: ClassVar[LogLevel]
    INFO: ClassVar[LogLevel]
    WARN: ClassVar[LogLevel]
    ERROR: ClassVar[LogLevel]

class CacheMode(_PybindEnum):
    DISABLED: ClassVar[CacheMode]
    EASYCACHE: ClassVar[CacheMode]
    UCACHE: ClassVar[CacheMode]
    DBCACHE: ClassVar[CacheMode]
    TAYLORSEER: ClassVar[CacheMode]
    CACHE_DIT: ClassVar[CacheMode]
    SPECTRUM: ClassVar[CacheMode]

class CtxParams:
    """sd_ctx_params_t; every *_path is "" for unset. Other fields: see stable-diffusion.h."""

    model_path: str
    diffusion_model_path: str
    vae_path: str
    embeddings: list[tuple[str, str]]
    n_threads: int
    free_params_immediately: bool
    vae_decode_only: bool
    wtype: SdType
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...
    def to_str(self) -> str: ...

class SampleParams:
    sample_steps: int
    sample_method: SampleMethod
    scheduler: Scheduler
    txt_cfg: float
    eta: float
    slg_layers: list[int]
    custom_sigmas: list[float]
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...
    def to_str(self) -> str: ...

class TilingParams:
    enabled: bool
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...

class CacheParams:
    mode: CacheMode
    scm_mask: str
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...

class HiresParams:
    enabled: bool
    upscaler: HiresUpscaler
    model_path: str
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...

class Lora:
    path: str
    multiplier: float
    is_high_noise: bool
    def __init__(self, path: str, multiplier: float = 1.0, is_high_noise: bool = False) -> None: ...

class ImgGenParams:
    prompt: str
    negative_prompt: str
    loras: list[Lora]
    width: int
    height: int
    seed: int
    batch_count: int
    init_image: Image | None
    mask_image: Image | None
    control_image: Image | None
    ref_images: list[Image]
    pm_id_images: list[Image]
    sample_params: SampleParams
    vae_tiling_params: TilingParams
    cache: CacheParams
    hires: HiresParams
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...
    def to_str(self) -> str: ...

class VidGenParams:
    prompt: str
    init_image: Image | None
    end_image: Image | None
    control_frames: list[Image]
    sample_params: SampleParams
    high_noise_sample_params: SampleParams
    video_frames: int
    def __getattr__(self, name: str) -> Any: ...
    def __setattr__(self, name: str, value: Any) -> None: ...

ProgressFn = Callable[[int, int, float], Any]
PreviewFn = Callable[[int, list[Image], bool], Any]

class Context:
    def __init__(self, params: CtxParams, progress: ProgressFn | None = None) -> None: ...
    def generate_image(
        self,
        params: ImgGenParams,
        progress: ProgressFn | None = None,
        preview: PreviewFn | None = None,
        preview_mode: Preview = ...,
        preview_interval: int = 1,
        preview_denoised: bool = True,
        preview_noisy: bool = False,
    ) -> list[Image]: ...
    def generate_video(
        self,
        params: VidGenParams,
        progress: ProgressFn | None = None,
        preview: PreviewFn | None = None,
        preview_mode: Preview = ...,
        preview_interval: int = 1,
        preview_denoised: bool = True,
        preview_noisy: bool = False,
    ) -> list[Image]: ...
    def set_cancel(self, cancel: bool = True) -> None: ...
    @property
    def cancelled(self) -> bool: ...
    def default_sample_method(self) -> SampleMethod: ...
    def default_scheduler(self, sample_method: SampleMethod) -> Scheduler: ...
    def supports_image_generation(self) -> bool: ...
    def supports_video_generation(self) -> bool: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...

class UpscalerContext:
    def __init__(
        self,
        path: str,
        offload_params_to_cpu: bool = False,
        direct: bool = False,
        n_threads: int = ...,
        tile_size: int = 128,
    ) -> None: ...
    def upscale(self, image: Image, factor: int, progress: ProgressFn | None = None) -> Image: ...
    @property
    def factor(self) -> int: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...

def convert(
    input_path: str,
    output_path: str,
    output_type: SdType,
    vae_path: str = "",
    tensor_type_rules: str = "",
    convert_name: bool = False,
    progress: ProgressFn | None = None,
) -> None: ...
def preprocess_canny(
    image: Image,
    high_threshold: float = 0.08,
    low_threshold: float = 0.08,
    weak: float = 0.8,
    strong: float = 1.0,
    inverse: bool = False,
) -> Image: ...
def system_info() -> str: ...
def num_physical_cores() -> int: ...
def engine_version() -> str: ...
def engine_commit() -> str: ...
def set_log_callback(callback: Callable[[int, str], Any] | None) -> None: ...
def last_error() -> str: ...
