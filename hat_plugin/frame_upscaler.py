"""Frames as planes in, upscaled frames as planes out: the one per-frame path of the video pipeline and the
VapourSynth filter.

A frame's planes go to the device through a staging slot (``transfer.Staging``: reused host buffers, pinned on
CUDA, one copy in), become RGB by the source's ``PlaneFormat``, are upscaled by a shared ``Upscaler``, become the
output's planes by its ``PlaneFormat`` on the device, and come back through the same slot (one copy out). At most
``streams`` frames run at once, each on its slot's own CUDA stream on a GPU; callers run them from their own
threads (PyTorch releases the GIL inside its kernels, and nothing here holds a lock while the model runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import Tensor

from .transfer import Staging

if TYPE_CHECKING:
    from .engine import Upscaler

__all__ = ["FrameUpscaler", "PlanarRGB", "PlaneFormat"]


class PlaneFormat(Protocol):
    """How a frame's planes and the engine's RGB meet (``video.colour.ColourConverter`` for videos, ``PlanarRGB``
    for the filter)."""

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy type of the planes' samples."""
        ...

    def rgb(self, planes: Sequence[Tensor]) -> Tensor:
        """The planes (on the device; 16-bit samples as int32) -> ``(1, 3, H, W)`` RGB floats in [0, 1]."""
        ...

    def planes(self, rgb: Tensor) -> list[Tensor]:
        """``(1, 3, H, W)`` RGB floats in [0, 1] -> the planes' samples, on ``rgb``'s device, one tensor type."""
        ...


class PlanarRGB:
    """R, G and B planes of floats in [0, 1] (VapourSynth's RGBS or RGBH), in one sample type."""

    def __init__(self, dtype: np.dtype[Any]) -> None:
        self._dtype = np.dtype(dtype)
        self._torch_type = torch.from_numpy(np.empty(0, self._dtype)).dtype

    @property
    def dtype(self) -> np.dtype[Any]:
        """float32 or float16."""
        return self._dtype

    def rgb(self, planes: Sequence[Tensor]) -> Tensor:
        """The three planes stacked into one ``(1, 3, H, W)`` frame."""
        return torch.stack(list(planes)).unsqueeze(0)

    def planes(self, rgb: Tensor) -> list[Tensor]:
        """The frame's planes, cast to the sample type on the device (half the bytes to copy for RGBH)."""
        return list(rgb[0].to(self._torch_type).unbind(0))


class FrameUpscaler:
    """One frame's planes in ``source``'s format -> the upscaled frame's planes in ``output``'s, ``streams`` at a
    time (a caller beyond that waits for a free slot). ``peak_active``: the most frames seen running at once."""

    def __init__(self, upscaler: Upscaler, source: PlaneFormat, output: PlaneFormat, streams: int = 1) -> None:
        self.upscaler = upscaler
        self.scale: int = upscaler.scale
        self.device = upscaler.device
        self.source, self.output = source, output
        self.staging = Staging(self.device, limit=streams, streams=True)
        if self.device.type == "cuda":  # what the formats placed on the device is complete before a stream reads it
            torch.cuda.current_stream(self.device).synchronize()

    @property
    def peak_active(self) -> int:
        """The most frames seen upscaling at once (for tests and benchmarks)."""
        return self.staging.peak_active

    def __call__(self, planes: Sequence[np.ndarray], into: Sequence[np.ndarray] | None = None) -> list[np.ndarray]:
        """The upscaled frame's planes: written into ``into`` when given (and returned), else new arrays."""
        with self.staging.slot() as slot, slot.on_stream(), torch.inference_mode():
            rgb = self.source.rgb(slot.upload_planes(planes))
            out = self.output.planes(self.upscaler.upscale_tensor(rgb))
            return slot.download_planes(out, self.output.dtype, into)
