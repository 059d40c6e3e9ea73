"""Engine state that CUDA kernels read from several streams: made once, ordered before every reader, freed safely.

A tensor made on one CUDA stream (the first caller's) and read on another (another thread's; the VapourSynth
filter's ``num_streams``) needs two things: the reading stream must wait for the work that made it, and the caching
allocator must not give its memory to another tensor while a stream may still read it. ``Shared`` does both for
one cached value: the maker's stream records an event after making it; each other stream waits for that event the
first time it asks (stream order then covers all its later uses) and is registered with the allocator
(``Tensor.record_stream``), which reuses the memory only once the work queued on every registered stream is done.

CUDA graph capture must not build a cached value: the kernels of a capture only run at replay, so the value
would be cached unwritten. ``recording(pins)`` collects every value a warm-up run reads (and keeps it alive for
as long as the graph is kept); inside ``capturing(pins)`` lookups are answered from those pins alone and anything
else raises ``CaptureMiss``, which the graph runner reports. Both are per thread: other threads' eager calls are
unaffected.

On the CPU (and any device without streams) values are handed out as they are.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = ["CaptureMiss", "CudaOps", "Pins", "Shared", "SizeCache", "StreamOps", "capturing", "lookup", "recording"]


class CaptureMiss(RuntimeError):
    """A CUDA graph capture asked for a cached value that its warm-up run did not make."""


class StreamOps(Protocol):
    """The stream operations ``Shared`` needs (CUDA's in the engine; a recording fake in the CPU tests)."""

    def current(self, device: torch.device) -> Any:
        """The stream work is queued on now, on ``device``."""

    def key(self, stream: Any) -> Hashable:
        """A hashable identity of ``stream``."""

    def record(self, stream: Any) -> Any:
        """An event recorded on ``stream`` now."""

    def wait(self, stream: Any, event: Any) -> None:
        """Make ``stream`` wait for ``event``."""

    def register(self, tensors: tuple[Tensor, ...], stream: Any) -> None:
        """Tell the allocator ``stream`` uses ``tensors`` (their memory is reused only once its work is done)."""

    def capturing(self, device: torch.device) -> bool:
        """Whether the current stream is being captured into a CUDA graph."""


class CudaOps:
    """``StreamOps`` of CUDA."""

    def current(self, device: torch.device) -> torch.cuda.Stream:
        return torch.cuda.current_stream(device)

    def key(self, stream: torch.cuda.Stream) -> Hashable:
        return (stream.device_index, stream.cuda_stream)

    def record(self, stream: torch.cuda.Stream) -> torch.cuda.Event:
        event = torch.cuda.Event()  # type: ignore[no-untyped-call]
        event.record(stream)
        return event

    def wait(self, stream: torch.cuda.Stream, event: torch.cuda.Event) -> None:
        stream.wait_event(event)

    def register(self, tensors: tuple[Tensor, ...], stream: torch.cuda.Stream) -> None:
        for t in tensors:
            t.record_stream(stream)

    def capturing(self, device: torch.device) -> bool:
        return torch.cuda.is_current_stream_capturing()


CUDA_OPS = CudaOps()


def _tensors(value: object) -> tuple[Tensor, ...]:
    """The tensors in ``value`` (a tensor, or a tuple or list holding some)."""
    if isinstance(value, Tensor):
        return (value,)
    if isinstance(value, tuple | list):
        return tuple(t for v in value for t in _tensors(v))
    return ()


class Shared[T]:
    """One cached value, handed to each stream only after the work that made it (see the module docstring)."""

    def __init__(self, value: T, ops: StreamOps | None = None) -> None:
        """``ops``: the stream operations for every tensor in ``value`` (default: CUDA's, for its CUDA tensors)."""
        self.value = value
        tensors = _tensors(value)
        if ops is None:  # the engine: CUDA tensors are ordered, others handed out as they are
            tensors = tuple(t for t in tensors if t.device.type == "cuda")
            ops = CUDA_OPS
        self._tensors = tensors
        self._ops = ops if tensors else None
        self._streams: set[Hashable] = set()
        self._lock = threading.Lock()
        if self._ops is not None:
            self._device = tensors[0].device
            maker = self._ops.current(self._device)
            self._ready = self._ops.record(maker)
            self._streams.add(self._ops.key(maker))  # the maker's own stream is in order already

    @property
    def streams(self) -> frozenset[Hashable]:
        """The streams ordered after the value was made (and registered as its users)."""
        return frozenset(self._streams)

    def get(self) -> T:
        """The value, with the current stream ordered after its making (once per stream)."""
        ops = self._ops
        if ops is None:
            return self.value
        stream = ops.current(self._device)
        key = ops.key(stream)
        if key not in self._streams:
            with self._lock:
                # Under capture the device was synchronised when the capture began (torch.cuda.graph does), so
                # every pinned value is complete; a capturing stream cannot wait for an event from outside it.
                if key not in self._streams and not ops.capturing(self._device):
                    ops.wait(stream, self._ready)
                    ops.register(self._tensors, stream)
                    self._streams.add(key)
        return self.value


class Pins:
    """The cached values one warm-up run read, by cache and key: what its CUDA graph capture may read."""

    def __init__(self) -> None:
        self.entries: dict[Hashable, Shared[Any]] = {}

    def __len__(self) -> int:
        return len(self.entries)


class _Frame(threading.local):
    recording: Pins | None = None
    capturing: Pins | None = None


_frame = _Frame()


@contextmanager
def recording(pins: Pins) -> Iterator[Pins]:
    """Every cached value read on this thread inside the block is added to ``pins`` (and kept alive by it)."""
    saved, _frame.recording = _frame.recording, pins
    try:
        yield pins
    finally:
        _frame.recording = saved


@contextmanager
def capturing(pins: Pins) -> Iterator[Pins]:
    """Cached values read on this thread inside the block come from ``pins`` only; anything else is a
    ``CaptureMiss`` (nothing is made)."""
    saved, _frame.capturing = _frame.capturing, pins
    try:
        yield pins
    finally:
        _frame.capturing = saved


def lookup[T](where: Hashable, find: Callable[[], Shared[T] | None], make: Callable[[], Shared[T]]) -> T:
    """The value stored at ``where`` (``find``, else ``make`` stores a new one), as the current thread's recording
    or capture requires, ordered for the current stream."""
    pins = _frame.capturing
    if pins is not None:
        pinned = pins.entries.get(where)
        if pinned is None:
            raise CaptureMiss(
                f"CUDA graph capture needs {where!r}, which the warm-up run did not build (evicted or a "
                "different input); refusing to build it inside the graph"
            )
        value: T = pinned.get()
        return value
    entry = find()
    if entry is None:
        entry = make()
    if _frame.recording is not None:
        _frame.recording.entries[where] = entry
    return entry.get()


class SizeCache:
    """Values keyed by their arguments (sizes and a device), the ``maxsize`` most recently used kept; thread-safe.

    An evicted value is only dropped: the allocator keeps its memory until every stream registered as a user has
    finished the work queued so far, and a CUDA graph that read it keeps it through its pins.
    """

    def __init__(self, maxsize: int = 8, ops: StreamOps | None = None) -> None:
        self.maxsize = maxsize
        self.ops = ops
        self._entries: OrderedDict[Hashable, Shared[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get[T](self, key: Hashable, make: Callable[[], T]) -> T:
        """The value for ``key``, made by ``make()`` (on the current stream) if it is not kept."""

        def find() -> Shared[T] | None:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                return entry

        def build() -> Shared[T]:
            entry = Shared(make(), self.ops)
            with self._lock:
                entry = self._entries.setdefault(key, entry)  # another thread's, if it was first
                self._entries.move_to_end(key)
                while len(self._entries) > self.maxsize:
                    self._entries.popitem(last=False)
            return entry

        return lookup((id(self), key), find, build)
