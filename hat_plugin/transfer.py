"""Moving images between the host and a CUDA device without making the tile loop wait.

- ``to_device``: a CPU tensor goes through pinned memory with ``non_blocking``, so the copy is a DMA queued on the
  current stream and the host goes on launching work.
- ``to_host``: a result comes back into pinned memory (up to ``PIN_LIMIT``; larger ones through pageable memory)
  with one synchronisation, at the end of an image.
- ``HostBlend``: when an output is too large for the device, each batch of tile outputs is copied into pinned
  buffers on a copy stream and blended on the host one batch behind, so the GPU computes the next batch while the
  CPU adds the previous one.

Other devices take the plain ``Tensor.to`` path.
"""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor

from .tiling import Blender

__all__ = ["PIN_LIMIT", "HostBlend", "to_device", "to_host"]

PIN_LIMIT = 256 << 20  # bytes: larger results are not pinned (page-locked memory is scarce for the rest of the OS)


def to_device(x: Tensor, device: torch.device) -> Tensor:
    """``x`` on ``device``; from the CPU to CUDA through pinned memory, without waiting for the copy."""
    if x.device == device:
        return x
    if x.device.type == "cpu" and device.type == "cuda":
        if x.is_pinned() and x.is_contiguous():
            staged = x
        else:  # one host copy into pinned memory, made contiguous on the way (a permuted numpy image, say)
            staged = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
            staged.copy_(x)
        return staged.to(device, non_blocking=True)  # the pinned block is kept until the copy is done
    return x.to(device, non_blocking=True)


def to_host(x: Tensor, device: torch.device) -> Tensor:
    """``x`` copied to ``device``; from CUDA to the CPU into pinned memory when small enough, synchronising once."""
    if x.device == device:
        return x
    if x.is_cuda and device.type == "cpu" and x.numel() * x.element_size() <= PIN_LIMIT:
        host = torch.empty(x.shape, dtype=x.dtype, pin_memory=True)
        host.copy_(x, non_blocking=True)
        torch.cuda.current_stream(x.device).synchronize()
        return host
    return x.to(device)


class HostBlend:
    """Blends a CUDA engine's tile outputs into a ``Blender`` on the host, one batch behind the GPU."""

    def __init__(self, blender: Blender, device: torch.device) -> None:
        self.blender = blender
        self.device = device
        self.copies = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
        self._pending: deque[tuple[list[tuple[int, int]], Tensor, torch.cuda.Event]] = deque()

    def add(self, jobs: list[tuple[int, int]], out: Tensor) -> None:
        """Queue the copy of ``out`` (tile outputs for ``jobs`` = (image, tile) pairs); blend the previous batch."""
        compute = torch.cuda.current_stream(self.device)
        self.copies.wait_stream(compute)
        host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
        with torch.cuda.stream(self.copies):
            host.copy_(out, non_blocking=True)
        out.record_stream(self.copies)  # its memory must not be reused before the copy has read it
        done = torch.cuda.Event()  # type: ignore[no-untyped-call]
        done.record(self.copies)
        self._pending.append((jobs, host, done))
        while len(self._pending) > 1:
            self._blend_oldest()

    def _blend_oldest(self) -> None:
        jobs, host, done = self._pending.popleft()
        done.synchronize()  # waits for a copy queued a batch ago, not for the work in flight
        for (item, index), tile_out in zip(jobs, host, strict=True):
            self.blender.add(index, item, tile_out)

    def result(self) -> Tensor:
        """Blend what is still in flight and return the blended image (on the host)."""
        while self._pending:
            self._blend_oldest()
        return self.blender.result()
