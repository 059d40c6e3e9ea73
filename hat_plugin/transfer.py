"""Moving images and frames between the host and a CUDA device without making the GPU or the host wait.

- ``Staging``: slots for the calls in flight on one device. A slot owns host buffers that are reused from call to
  call (page-locked on CUDA, so a copy is one DMA queued with ``non_blocking``) and, where asked, a CUDA stream of
  its own. A buffer is written again only after the copy that last read it is done (an event per buffer), so the
  host never waits for the GPU's compute, only for a copy that is long finished. With a ``limit``, a call waits
  for a free slot: at most that many run at once (the frame upscaler's ``streams``).
- ``StagingSlot.upload`` / ``upload_planes``: a host tensor, or a frame's numpy planes packed into one buffer, on
  the device; ``download_planes``: a frame's planes back, into one buffer with one wait for the slot's stream.
- ``to_host``: a result that leaves with the caller comes back into new pinned memory (up to ``PIN_LIMIT``;
  larger ones through pageable memory) with one synchronisation, at the end of an image.
- ``HostBlend``: when an output is too large for the device, each batch of tile outputs is copied into a slot's
  two pinned buffers in turn on a copy stream and blended on the host one batch behind, so the GPU computes the
  next batch while the CPU adds the previous one.

Other devices take the plain ``Tensor.to`` path; on the CPU a frame's planes are copied into the slot's buffer
(the caller's arrays may be read-only) and nothing else moves.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .tiling import Blender

__all__ = ["PIN_LIMIT", "HostBlend", "Staging", "StagingSlot", "to_host"]

PIN_LIMIT = 256 << 20  # bytes: larger buffers are not pinned (page-locked memory is scarce for the rest of the OS)


class _HostBuffer:
    """One reusable host buffer (bytes), pinned when it feeds a CUDA device, and the copy last queued from it."""

    def __init__(self, pinned: bool) -> None:
        self.pinned = pinned
        self.data = torch.empty(0, dtype=torch.uint8)
        self.copied: torch.cuda.Event | None = None

    def take(self, count: int, dtype: torch.dtype) -> Tensor:
        """``count`` elements of ``dtype`` to fill, once no queued copy still reads them. A buffer over
        ``PIN_LIMIT`` is made for this call only, in pageable memory."""
        nbytes = count * dtype.itemsize
        if self.pinned and nbytes > PIN_LIMIT:
            return torch.empty(count, dtype=dtype)
        if self.copied is not None:
            self.copied.synchronize()  # the copy queued from this buffer one use ago, not the compute after it
            self.copied = None
        if self.data.numel() < nbytes:
            self.data = torch.empty(nbytes, dtype=torch.uint8, pin_memory=self.pinned)
        return self.data[:nbytes].view(dtype)

    def queued(self, data: Tensor, device: torch.device) -> None:
        """Note that a copy from ``data`` (taken from this buffer) was queued on ``device``'s current stream."""
        if data.data_ptr() == self.data.data_ptr():
            event = torch.cuda.Event()  # type: ignore[no-untyped-call]
            event.record(torch.cuda.current_stream(device))
            self.copied = event


class StagingSlot:
    """What one call in flight owns for its copies: host buffers by role, reused, and its own CUDA stream when the
    slot was made with one (None otherwise: copies go on the caller's current stream)."""

    def __init__(self, device: torch.device, stream: bool = False) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if stream and self.cuda else None  # type: ignore[no-untyped-call]
        self._buffers: dict[str, _HostBuffer] = {}

    def on_stream(self) -> AbstractContextManager[object]:
        """The slot's stream as the current one (nothing to do without one)."""
        return torch.cuda.stream(self.stream) if self.stream is not None else nullcontext()

    def host(self, role: str, count: int, dtype: torch.dtype) -> Tensor:
        """A 1-D host tensor of ``count`` elements to fill, this slot's buffer for ``role`` (pinned on CUDA)."""
        buffer = self._buffers.get(role)
        if buffer is None:
            buffer = self._buffers[role] = _HostBuffer(pinned=self.cuda)
        return buffer.take(count, dtype)

    def upload(self, x: Tensor, role: str = "input") -> Tensor:
        """``x`` on the device; a CPU tensor goes to CUDA through this slot's ``role`` buffer without waiting."""
        if x.device == self.device:
            return x
        if x.device.type != "cpu" or not self.cuda:
            return x.to(self.device, non_blocking=self.cuda)  # to the host: waits for the copy
        staged = self.host(role, x.numel(), x.dtype)
        staged.view(x.shape).copy_(x)  # one host copy, made contiguous on the way (a permuted numpy image, say)
        return self._send(staged, role).view(x.shape)

    def upload_planes(self, planes: Sequence[np.ndarray]) -> list[Tensor]:
        """A frame's planes (one sample type, any sizes) on the device, packed into one buffer and one copy.
        16-bit samples arrive as int32 (PyTorch computes little in unsigned 16-bit)."""
        kind = np.dtype(np.int32) if planes[0].dtype == np.uint16 else planes[0].dtype
        sizes = [plane.size for plane in planes]
        staged = self.host("planes", sum(sizes), torch.from_numpy(np.empty(0, kind)).dtype)
        for part, plane in zip(_parts(staged, sizes), planes, strict=True):
            np.copyto(part.numpy().reshape(plane.shape), plane)
        sent = self._send(staged, "planes") if self.cuda else staged
        return [part.view(plane.shape) for part, plane in zip(_parts(sent, sizes), planes, strict=True)]

    def download_planes(
        self, planes: Sequence[Tensor], dtype: np.dtype[Any], into: Sequence[np.ndarray] | None = None
    ) -> list[np.ndarray]:
        """A frame's planes (on the device, one type) on the host as ``dtype``: written into ``into`` when given
        (and returned), else into new arrays. On CUDA, one buffer and one wait for this slot's stream."""
        if self.cuda:
            sizes = [plane.numel() for plane in planes]
            staged = self.host("results", sum(sizes), planes[0].dtype)
            parts = [part.view(plane.shape) for part, plane in zip(_parts(staged, sizes), planes, strict=True)]
            for part, plane in zip(parts, planes, strict=True):
                part.copy_(plane, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            arrays = [part.numpy() for part in parts]
        else:
            arrays = [plane.to("cpu").numpy() for plane in planes]
        if into is not None:
            for target, array in zip(into, arrays, strict=True):
                np.copyto(target, array, casting="unsafe")  # codes are in range: a cast, not a clip
            return list(into)
        if self.cuda:  # the buffer serves the next frame: the caller gets copies
            return [np.array(array, dtype=dtype) for array in arrays]
        return [np.ascontiguousarray(array.astype(dtype, copy=False)) for array in arrays]

    def _send(self, staged: Tensor, role: str) -> Tensor:
        sent = staged.to(self.device, non_blocking=True)
        self._buffers[role].queued(staged, self.device)
        return sent


def _parts(flat: Tensor, sizes: list[int]) -> list[Tensor]:
    """``flat`` cut into consecutive pieces of ``sizes`` elements (views)."""
    parts, start = [], 0
    for size in sizes:
        parts.append(flat.narrow(0, start, size))
        start += size
    return parts


class Staging:
    """The slots of one device: each call takes one and gives it back. With ``limit``, that many slots (each with
    a CUDA stream of its own when ``streams``) and a call waits for a free one; without, a slot per call in flight.
    ``peak_active`` is the most calls seen holding slots at once (for tests and benchmarks)."""

    def __init__(self, device: torch.device, limit: int | None = None, streams: bool = False) -> None:
        self.device = device
        self.limit = limit
        self.streams = streams
        self.peak_active = 0
        self._active = 0
        self._lock = threading.Lock()
        self._free: queue.SimpleQueue[StagingSlot] = queue.SimpleQueue()
        for _ in range(limit or 0):
            self._free.put(StagingSlot(device, streams))

    @contextmanager
    def slot(self) -> Iterator[StagingSlot]:
        """A free slot for the length of the ``with``; when its stream is its own, nothing is left in flight on it
        after."""
        if self.limit is not None:
            slot = self._free.get()
        else:
            try:
                slot = self._free.get_nowait()
            except queue.Empty:
                slot = StagingSlot(self.device, self.streams)
        self._count(+1)
        try:
            yield slot
        finally:
            if slot.stream is not None:
                slot.stream.synchronize()  # its buffers serve the next call: no copy of this one may be in flight
            self._count(-1)
            self._free.put(slot)

    def _count(self, delta: int) -> None:
        with self._lock:
            self._active += delta
            self.peak_active = max(self.peak_active, self._active)


def to_host(x: Tensor, device: torch.device) -> Tensor:
    """``x`` copied to ``device``; from CUDA to the CPU into pinned memory when small enough, synchronising once.
    The copy is the caller's to keep, so it goes into new memory (PyTorch's pinned cache), not a slot's buffer."""
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

    def __init__(self, blender: Blender, device: torch.device, slot: StagingSlot) -> None:
        self.blender = blender
        self.device = device
        self.slot = slot  # two of its buffers take turns: one is being blended while the next batch lands
        self._batches = 0
        self.copies = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
        self._pending: deque[tuple[list[tuple[int, int]], Tensor, torch.cuda.Event]] = deque()

    def add(self, jobs: list[tuple[int, int]], out: Tensor) -> None:
        """Queue the copy of ``out`` (tile outputs for ``jobs`` = (image, tile) pairs); blend the previous batch."""
        compute = torch.cuda.current_stream(self.device)
        self.copies.wait_stream(compute)
        host = self.slot.host(f"blend{self._batches % 2}", out.numel(), out.dtype).view(out.shape)
        self._batches += 1
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
