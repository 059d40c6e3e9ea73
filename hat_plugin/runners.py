"""Optional ways to run the network on CUDA instead of calling the module: ``EngineOptions.runner``.

- ``eager`` (default): the engine calls the module, as on every other device.
- ``graphs``: one CUDA graph per input shape, captured the second time that shape is seen and replayed after:
  a forward becomes one launch instead of a few thousand, which pays when the CPU cannot issue kernels as fast as
  the GPU runs them (small models, video frames). Each graph keeps its activations allocated, so at most ``keep``
  shapes are held.
- ``compile``: ``torch.compile`` with ``EngineOptions.compile_mode`` (default ``max-autotune``). Its
  warm-up takes minutes per shape, so it only pays over a long video.

Both return a fresh tensor per call. Calls that touch shared state (a graph's input buffer, a compiled function)
are serialised by a lock, and CUDA events order the streams of different threads, so the VapourSynth filter's
``num_streams`` stay correct. A shape that fails to capture or compile runs eagerly from then on (with a
warning); out-of-memory errors propagate, so the engine can shrink its tiles.

Opt-in until ``bench/gpu_check.sh`` has measured them on a GPU (see docs/benchmarks.md).
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import is_out_of_memory
from .options import RUNNERS

__all__ = [
    "RUNNERS",
    "CompiledRunner",
    "GraphRunner",
    "Runner",
    "ShapeSlots",
    "make_runner",
]


Runner = Callable[[Tensor], Tensor]


def make_runner(model: nn.Module, device: torch.device, name: str, compile_mode: str = "max-autotune") -> Runner | None:
    """The runner ``name`` (one of ``RUNNERS``) for ``model`` on ``device``; None means call the module (eager,
    or not on CUDA)."""
    if name == "eager":
        return None
    if device.type != "cuda":
        warnings.warn(f"the {name} runner needs a CUDA device; running eagerly on {device}", RuntimeWarning, 2)
        return None
    if name == "graphs":
        return GraphRunner(model, device)
    return CompiledRunner(model, compile_mode)


class ShapeSlots[T]:
    """Per-shape entries: made once a shape has been seen ``after`` times, the ``keep`` most recently used kept.

    A shape marked failed is never made again. Not thread-safe: the runner holds its lock around every use.
    """

    def __init__(self, keep: int = 4, after: int = 2) -> None:
        self.keep, self.after = keep, after
        self._entries: OrderedDict[Hashable, T] = OrderedDict()
        self._seen: Counter[Hashable] = Counter()
        self._failed: set[Hashable] = set()

    def get(self, key: Hashable) -> T | None:
        """The entry for ``key`` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def due(self, key: Hashable) -> bool:
        """Count one sighting of ``key``; True when its entry should be made now."""
        if key in self._failed:
            return False
        self._seen[key] += 1
        return self._seen[key] >= self.after

    def put(self, key: Hashable, entry: T) -> list[T]:
        """Keep ``entry``; returns the entries pushed out (least recently used beyond ``keep``)."""
        self._entries[key] = entry
        evicted = []
        while len(self._entries) > self.keep:
            evicted.append(self._entries.popitem(last=False)[1])
        return evicted

    def fail(self, key: Hashable) -> None:
        """Never make an entry for ``key`` again."""
        self._failed.add(key)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    static_in: Tensor
    static_out: Tensor
    free: torch.cuda.Event  # recorded once the last replay's output was copied out of static_out


class GraphRunner:
    """Replays a CUDA graph of ``model(x)`` per input shape and dtype (see the module docstring)."""

    def __init__(self, model: nn.Module, device: torch.device, keep: int = 4, after: int = 2) -> None:
        self.model, self.device = model, device
        self.slots: ShapeSlots[_Graph] = ShapeSlots(keep, after)
        self._lock = threading.Lock()

    def __call__(self, x: Tensor) -> Tensor:
        key = (tuple(x.shape), x.dtype)
        with self._lock:
            entry = self.slots.get(key)
            if entry is None and self.slots.due(key):
                entry = self._capture(key, x)
            if entry is not None:
                return self._replay(entry, x)
        out: Tensor = self.model(x)  # outside the lock: eager calls of several threads overlap
        return out

    def _capture(self, key: Hashable, x: Tensor) -> _Graph | None:
        stream = torch.cuda.current_stream(self.device)
        static_in = torch.empty(x.shape, dtype=x.dtype, device=self.device)
        static_in.copy_(x)
        side = torch.cuda.Stream(self.device)  # type: ignore[no-untyped-call]
        side.wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.stream(side):
                self.model(static_in)  # warm-up outside the graph: library handles, cached tensors
            stream.wait_stream(side)
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                static_out = self.model(static_in)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            self.slots.fail(key)
            warnings.warn(
                f"CUDA graph capture failed for input {tuple(x.shape)} ({exc}); running it eagerly",
                RuntimeWarning,
                3,
            )
            return None
        entry = _Graph(graph, static_in, static_out, torch.cuda.Event())  # type: ignore[no-untyped-call]
        self.slots.put(key, entry)  # evicted graphs free their memory pool when dropped
        return entry

    def _replay(self, entry: _Graph, x: Tensor) -> Tensor:
        stream = torch.cuda.current_stream(self.device)
        stream.wait_event(entry.free)  # the previous replay (maybe on another thread's stream) was copied out
        entry.static_in.copy_(x)
        entry.graph.replay()  # on the current stream
        out = entry.static_out.clone()
        entry.free.record(stream)
        return out


class CompiledRunner:
    """``torch.compile(model, mode=mode)``, one call at a time, each result copied out of the compiled
    function's buffers (CUDA-graph modes reuse them on the next call)."""

    def __init__(self, model: nn.Module, mode: str) -> None:
        self.model, self.mode = model, mode
        self._compiled = torch.compile(model, mode=mode, dynamic=False)
        self._failed: set[Hashable] = set()
        self._lock = threading.Lock()

    def __call__(self, x: Tensor) -> Tensor:
        key = (tuple(x.shape), x.dtype)
        with self._lock:
            if key not in self._failed:
                try:
                    compiled: Tensor = self._compiled(x)
                    return compiled.clone()
                except Exception as exc:
                    if is_out_of_memory(exc):
                        raise
                    self._failed.add(key)
                    warnings.warn(
                        f"torch.compile(mode={self.mode!r}) failed for input {tuple(x.shape)} "
                        f"({type(exc).__name__}: {exc}); running it eagerly",
                        RuntimeWarning,
                        2,
                    )
        out: Tensor = self.model(x)
        return out
