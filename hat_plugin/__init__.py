"""hat-plugin: HAT super-resolution (Hybrid Attention Transformer, CVPR 2023) for images and video.

Few, obvious entry points::

    import hat_plugin
    up = hat_plugin.Upscaler("HAT-S_SRx4")          # a manifest name or a weights file
    big = up.upscale(pixels)                          # numpy HxWxC, uint8/uint16/float

    model = hat_plugin.load_model("HAT_SRx4.pth")    # the nn.Module, config detected, strict load
"""

from .arch import HAT
from .checkpoint import load_model, read_state_dict
from .config import PRESETS, HATConfig, detect_config
from .engine import Upscaler
from .errors import (
    Cancelled,
    CheckpointError,
    DeviceError,
    DownloadError,
    HATError,
    ImageError,
    ModelNotFoundError,
    OutputError,
)

__version__ = "0.1.0"

__all__ = [
    "HAT",
    "PRESETS",
    "Cancelled",
    "CheckpointError",
    "DeviceError",
    "DownloadError",
    "HATConfig",
    "HATError",
    "ImageError",
    "ModelNotFoundError",
    "OutputError",
    "Upscaler",
    "detect_config",
    "load_model",
    "read_state_dict",
]
