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
``num_streams`` stay correct. A graph reads the network's cached tensors only through the pins of its warm-up run
(``streams.recording``/``capturing``): they live as long as the graph; a second, eager warm-up reads only the pins,
so a lookup the capture would miss refuses the capture before it starts (and one inside the capture still builds
nothing); an evicted graph is dropped only once its last replay is done. A shape that fails to capture or compile
runs eagerly from then on with a warning, or raises ``RunnerFallback`` where ``strict`` is set (the test suite sets
``STRICT``, so a passing "graphs" test ran graphs); out-of-memory errors propagate, so the engine can shrink its
tiles.
``torch.compile`` on CUDA needs Triton, which builds a C helper: without a C compiler or Python's headers the
runner is not available (``compile_unavailable`` says why) and the engine runs eagerly.

Opt-in until ``bench/gpu_check.sh`` has measured them on a GPU (see docs/benchmarks.md).
"""

from __future__ import annotations

import os
import shutil
import sysconfig
import threading
import warnings
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import is_out_of_memory
from .options import RUNNERS
from .streams import CaptureMiss, Pins, capturing, recording

__all__ = [
    "RUNNERS",
    "STRICT",
    "CompiledRunner",
    "GraphRunner",
    "Runner",
    "RunnerFallback",
    "ShapeSlots",
    "compile_unavailable",
    "make_runner",
]


Runner = Callable[[Tensor], Tensor]

STRICT = False
"""Whether a runner that cannot do what was asked raises ``RunnerFallback`` instead of warning and running
eagerly: the default of every runner's ``strict``. The test suite sets it."""


class RunnerFallback(RuntimeError):
    """A runner could not run as asked (no CUDA, a failed capture or compile) and ``strict`` forbids running
    eagerly instead."""


def _fall_back(message: str, strict: bool, cause: BaseException | None = None, stacklevel: int = 3) -> None:
    """Warn that the runner runs eagerly; raise ``RunnerFallback`` instead when ``strict``."""
    if strict:
        raise RunnerFallback(message) from cause
    warnings.warn(message, RuntimeWarning, stacklevel)


def compile_unavailable() -> str | None:
    """Why ``torch.compile`` cannot build CUDA kernels here (Triton compiles a C helper with the system's C
    compiler against Python's headers), or None when it can."""
    compiler = os.environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if compiler is None or shutil.which(compiler) is None:
        return "no C compiler (cc, gcc or clang; Triton builds a helper with it)"
    header = os.path.join(sysconfig.get_paths()["include"], "Python.h")
    if not os.path.isfile(header):
        return f"no Python headers ({header} is missing; Triton builds a helper against them)"
    return None


def make_runner(
    model: nn.Module, device: torch.device, name: str, compile_mode: str = "max-autotune", strict: bool | None = None
) -> Runner | None:
    """The runner ``name`` (one of ``RUNNERS``) for ``model`` on ``device``; None means call the module (eager, or
    not available here: a warning, or ``RunnerFallback`` when ``strict``, default ``STRICT``)."""
    strict = STRICT if strict is None else strict
    if name == "eager":
        return None
    if device.type != "cuda":
        _fall_back(f"the {name} runner needs a CUDA device; running eagerly on {device}", strict)
        return None
    if name == "graphs":
        return GraphRunner(model, device, strict=strict)
    missing = compile_unavailable()
    if missing is not None:
        _fall_back(f"the compile runner is not available: {missing}; running eagerly", strict)
        return None
    return CompiledRunner(model, compile_mode, strict=strict)


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
    pins: Pins  # the cached tensors the graph reads, kept as long as the graph


class Retired[G]:
    """Evicted graphs kept until their last replay is done (``done(graph)``), then dropped: freeing a graph's
    memory or the tensors it reads while a replay is queued would let other work overwrite them mid-replay."""

    def __init__(self, done: Callable[[G], bool]) -> None:
        self._done = done
        self._held: list[G] = []

    def add(self, graphs: list[G]) -> None:
        self._held += graphs
        self.sweep()

    def sweep(self) -> None:
        """Drop the graphs whose replays are all done (a non-blocking query each)."""
        self._held = [g for g in self._held if not self._done(g)]

    def __len__(self) -> int:
        return len(self._held)


class GraphRunner:
    """Replays a CUDA graph of ``model(x)`` per input shape and dtype (see the module docstring)."""

    def __init__(
        self, model: nn.Module, device: torch.device, keep: int = 4, after: int = 2, strict: bool | None = None
    ) -> None:
        self.model, self.device = model, device
        self.strict = STRICT if strict is None else strict
        self.slots: ShapeSlots[_Graph] = ShapeSlots(keep, after)
        self.retired: Retired[_Graph] = Retired(lambda g: bool(g.free.query()))  # type: ignore[no-untyped-call]
        self._lock = threading.Lock()

    def __call__(self, x: Tensor) -> Tensor:
        key = (tuple(x.shape), x.dtype)
        with self._lock:
            self.retired.sweep()
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
        pins = Pins()
        try:
            with torch.cuda.stream(side):
                with recording(pins):
                    self.model(static_in)  # warm-up outside the graph: library handles, cached tensors (pinned)
                with capturing(pins):
                    self.model(static_in)  # the capture's lookups, run eagerly: a miss refuses before it starts
            stream.wait_stream(side)
            with torch.cuda.graph(graph, capture_error_mode="thread_local"), capturing(pins):
                static_out = self.model(static_in)
        except Exception as exc:
            if is_out_of_memory(exc):
                raise
            self.slots.fail(key)
            miss = _capture_miss(exc)  # ending the broken capture may raise on top of it
            what = f"refused ({miss})" if miss else f"failed ({exc})"
            _fall_back(f"CUDA graph capture {what} for input {tuple(x.shape)}; running it eagerly", self.strict, exc, 4)
            return None
        entry = _Graph(graph, static_in, static_out, torch.cuda.Event(), pins)  # type: ignore[no-untyped-call]
        self.retired.add(self.slots.put(key, entry))
        return entry

    def _replay(self, entry: _Graph, x: Tensor) -> Tensor:
        stream = torch.cuda.current_stream(self.device)
        stream.wait_event(entry.free)  # the previous replay (maybe on another thread's stream) was copied out
        entry.static_in.copy_(x)
        entry.graph.replay()  # on the current stream
        out = entry.static_out.clone()
        entry.free.record(stream)
        return out


def _capture_miss(exc: BaseException | None) -> CaptureMiss | None:
    """The ``CaptureMiss`` behind ``exc`` (itself, or what it was raised while handling), if any."""
    while exc is not None and not isinstance(exc, CaptureMiss):
        exc = exc.__cause__ or exc.__context__
    return exc


class CompiledRunner:
    """``torch.compile(model, mode=mode)``, one call at a time, each result copied out of the compiled
    function's buffers (CUDA-graph modes reuse them on the next call)."""

    def __init__(self, model: nn.Module, mode: str, strict: bool | None = None) -> None:
        self.model, self.mode = model, mode
        self.strict = STRICT if strict is None else strict
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
                    _fall_back(
                        f"torch.compile(mode={self.mode!r}) failed for input {tuple(x.shape)} "
                        f"({type(exc).__name__}: {exc}); running it eagerly",
                        self.strict,
                        exc,
                    )
        out: Tensor = self.model(x)
        return out
