"""Per-frame HAT inference for the VapourSynth filter: planes in, planes out, ``num_streams`` at a time.

A ``FrameUpscaler`` is the ``std.ModifyFrame`` callback. VapourSynth calls it on its worker threads; each call
takes one of ``num_streams`` slots (a CUDA stream and reusable input and output buffers, pinned on CUDA: each frame
is one copy in and one copy out, queued on the slot's stream), so at most that many inferences run at once.
Torch releases the GIL inside its kernels, and nothing here holds a lock while the model runs. A failed frame is
returned with an error property that ``hat.InternalCheck`` turns into a VapourSynth frame error carrying just our
message.
"""

from __future__ import annotations

import logging
import queue
import threading
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import vapoursynth as vs

from hat_plugin import HATError, Upscaler
from hat_plugin.errors import describe_exception, is_out_of_memory, out_of_memory_message

from .errors import FUNCTION, message, worded

ERROR_PROP = "HATError"  # read by hat.InternalCheck in hat_shim.c

_log = logging.getLogger(__name__)


@dataclass
class _Slot:
    """What one concurrent inference owns: its CUDA stream (None on other devices) and input buffer."""

    stream: torch.cuda.Stream | None
    host_input: torch.Tensor  # (1, 3, H, W) in the clip's sample type; pinned when the model is on CUDA
    host_view: np.ndarray  # numpy view of host_input, what the planes are copied into
    host_output: torch.Tensor | None  # (1, 3, sH, sW) pinned, in the clip's sample type (CUDA only)


class FrameUpscaler:
    """Upscales one RGBS/RGBH frame per call with a shared ``hat_plugin.Upscaler``."""

    def __init__(self, upscaler: Upscaler, clip: vs.VideoNode, device: torch.device, num_streams: int) -> None:
        self.upscaler = upscaler
        self.scale: int = upscaler.scale
        self.device = device
        self.width, self.height = clip.width, clip.height
        self.peak_active = 0  # most inferences seen running at once; for tests and benchmarks
        self._active = 0
        self._count_lock = threading.Lock()
        self._slots: queue.SimpleQueue[_Slot] = queue.SimpleQueue()
        dtype = torch.float16 if clip.format.id == vs.RGBH else torch.float32
        on_cuda = device.type == "cuda"
        out_shape = (1, 3, self.height * self.scale, self.width * self.scale)
        for _ in range(num_streams):
            host = torch.empty((1, 3, self.height, self.width), dtype=dtype, pin_memory=on_cuda)
            stream = torch.cuda.Stream(device) if on_cuda else None
            host_out = torch.empty(out_shape, dtype=dtype, pin_memory=True) if on_cuda else None
            self._slots.put(_Slot(stream, host, host.numpy(), host_out))

    def __call__(self, n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        """ModifyFrame callback: ``f`` is [source frame, blank output frame with the source's properties]."""
        src, template = f
        out = template.copy()
        try:
            self._upscale_into(src, out)
        except Exception as exc:  # a frame error must never escape as a traceback or a crash
            out.props[ERROR_PROP] = self._describe(exc, n)
        return out

    def _upscale_into(self, src: vs.VideoFrame, out: vs.VideoFrame) -> None:
        """Copy the planes of ``src`` into a slot's buffer, run the model, write the result into ``out``."""
        slot = self._slots.get()
        self._count(+1)
        try:
            stream = torch.cuda.stream(slot.stream) if slot.stream is not None else nullcontext()
            with stream, torch.inference_mode():
                for plane in range(3):
                    np.copyto(slot.host_view[0, plane], np.asarray(src[plane]))
                x = slot.host_input
                if self.device.type != "cpu":
                    x = x.to(self.device, non_blocking=True)
                y = self.upscaler.upscale_tensor(x)
                if slot.host_output is not None and slot.stream is not None:
                    slot.host_output.copy_(y, non_blocking=True)  # one DMA (and the cast to RGBH on the GPU)
                    slot.stream.synchronize()
                    y = slot.host_output
                for plane in range(3):
                    torch.from_numpy(np.asarray(out[plane])).copy_(y[0, plane])
        finally:
            if slot.stream is not None:
                slot.stream.synchronize()  # the buffer is reused by the next frame: no copy may be in flight
            self._count(-1)
            self._slots.put(slot)

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self._active += delta
            self.peak_active = max(self.peak_active, self._active)

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
