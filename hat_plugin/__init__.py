"""hat-plugin: HAT super-resolution (Hybrid Attention Transformer, CVPR 2023) for images and video.

Few, obvious entry points::

    import hat_plugin
    up = hat_plugin.Upscaler("HAT-S_SRx4")          # a manifest name or a weights file
    up = hat_plugin.Upscaler("HAT-S_SRx4", hat_plugin.EngineOptions(device="cpu", tile=256))
    big = up.upscale(pixels)                          # numpy HxWxC, uint8/uint16/float

    model = hat_plugin.load_model("HAT_SRx4.pth")    # the nn.Module, config detected, strict load

Names are imported on first use, so ``hat_plugin.weights`` and the CLI's ``models`` command start without
loading PyTorch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    Cancelled,
    CheckpointError,
    DataError,
    DeviceError,
    DownloadError,
    HATError,
    ImageError,
    ManifestError,
    ModelNotFoundError,
    OptionError,
    OutOfMemoryError,
    OutputError,
    TrainingError,
    UnsafeURLError,
)
from .lazy import lazy_attributes

if TYPE_CHECKING:
    from .arch import HAT
    from .checkpoint import load_model, read_state_dict
    from .config import PRESETS, HATConfig, detect_config
    from .engine import Upscaler
    from .options import EngineOptions
    from .runtime import configure_process

__version__ = "0.1.0"

_LAZY = {
    "HAT": "arch",
    "load_model": "checkpoint",
    "read_state_dict": "checkpoint",
    "PRESETS": "config",
    "HATConfig": "config",
    "detect_config": "config",
    "Upscaler": "engine",
    "EngineOptions": "options",
    "configure_process": "runtime",
}

__all__ = [
    "HAT",
    "PRESETS",
    "Cancelled",
    "CheckpointError",
    "DataError",
    "DeviceError",
    "DownloadError",
    "EngineOptions",
    "HATConfig",
    "HATError",
    "ImageError",
    "ManifestError",
    "ModelNotFoundError",
    "OptionError",
    "OutOfMemoryError",
    "OutputError",
    "TrainingError",
    "UnsafeURLError",
    "Upscaler",
    "configure_process",
    "detect_config",
    "load_model",
    "read_state_dict",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
