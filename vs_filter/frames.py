"""The VapourSynth side of per-frame inference: the ``std.ModifyFrame`` callback around the engine's
``FrameUpscaler``.

VapourSynth calls it on its worker threads; the frame upscaler takes each frame through one of ``num_streams``
staging slots (a CUDA stream and reused buffers, pinned on CUDA), so at most that many inferences run at once. This
module only reads the planes of a ``vs.VideoFrame``, writes the result into the output frame, and turns a failure
into an error property that ``hat.InternalCheck`` makes a VapourSynth frame error carrying just our message.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import vapoursynth as vs

from hat_plugin import HATError, Upscaler
from hat_plugin.errors import describe_exception, is_out_of_memory, out_of_memory_message
from hat_plugin.frame_upscaler import FrameUpscaler, PlanarRGB

from .errors import FUNCTION, message, worded

ERROR_PROP = "HATError"  # read by hat.InternalCheck in hat_shim.c

_log = logging.getLogger(__name__)


class FrameCallback:
    """Upscales one RGBS/RGBH frame per call with a shared ``hat_plugin.Upscaler``, ``num_streams`` at a time."""

    def __init__(self, upscaler: Upscaler, clip: vs.VideoNode, device: torch.device, num_streams: int) -> None:
        self.scale: int = upscaler.scale
        self.device = device
        self.width, self.height = clip.width, clip.height
        planes = PlanarRGB(np.dtype(np.float16 if clip.format.id == vs.RGBH else np.float32))
        self.frames = FrameUpscaler(upscaler, planes, planes, num_streams)

    @property
    def peak_active(self) -> int:
        """The most inferences seen running at once (for tests and benchmarks)."""
        return self.frames.peak_active

    def __call__(self, n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        """ModifyFrame callback: ``f`` is [source frame, blank output frame with the source's properties]."""
        src, template = f
        out = template.copy()
        try:
            self.frames([np.asarray(src[plane]) for plane in range(3)], [np.asarray(out[plane]) for plane in range(3)])
        except Exception as exc:  # a frame error must never escape as a traceback or a crash
            out.props[ERROR_PROP] = self._describe(exc, n)
        return out

    def _describe(self, exc: Exception, n: int) -> str:
        """A user-facing message for a failed frame."""
        size = f"{self.width}x{self.height} -> {self.width * self.scale}x{self.height * self.scale}"
        if is_out_of_memory(exc):
            return message(out_of_memory_message(self.device, what=f"frame {n}, {size}; or use fewer num_streams"))
        if isinstance(exc, HATError):
            return message(f"frame {n}: {worded(exc)}")
        if isinstance(exc, vs.Error):
            return message(f"frame {n}: {exc}")
        _log.error("%s: frame %d failed", FUNCTION, n, exc_info=exc)
        return message(f"frame {n} ({size}) failed: {describe_exception(exc)}")
