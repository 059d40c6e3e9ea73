"""Upscaling chunks across machines with Ray: one task per chunk, one GPU (or a few CPUs) each.

Every node must see the source and the work folder at the same paths (a shared file system) and have hat-plugin
installed. The driver ships the model's weights once through Ray's object store; each worker process builds the
engine on first use and keeps it for its later chunks. A task whose worker or node dies is retried by Ray from
the start of its chunk (``max_retries``); the segment is published atomically, so a half-written one never
counts. Workers report frames to a small actor that the driver polls for one progress figure.

Each task runs the same pipeline (``runner.run_chunks``) as a local run, with the same fixed encoder settings,
so a cluster of like devices produces the same segments, and the same output file, as one machine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import ClusterError, HATError
from ..options import EngineOptions
from ..progress import CancelCheck, raise_if_cancelled
from .board import Board
from .index import FrameIndex
from .probe import VideoInfo
from .runner import frame_upscaler, run_chunks
from .segment import Chunk, OutputFormat

if TYPE_CHECKING:
    from ..engine import Upscaler

__all__ = ["RayRunner", "WorkerStatus"]

_POLL = 0.5  # seconds between the driver's looks at the tasks and the progress board
_REPORT = 0.2  # seconds between a worker's progress reports (besides its first and last frame)
_RETRIES = 3
_MAX_CPUS_PER_TASK = 4


@dataclass(frozen=True)
class WorkerStatus:
    """Where a chunk is being upscaled and how far it is."""

    chunk: int
    frames: int
    node: str
    pid: int


@dataclass(frozen=True)
class _TaskSpec:
    """Everything a chunk task needs besides the model and the index (which travel as object references)."""

    version: str
    model_key: str
    engine: EngineOptions
    cpus: int
    info: VideoInfo
    fmt: OutputFormat
    chunk: Chunk
    segment: str
    job: str
    streams: int
    rgb_mean: tuple[float, ...] | None = None
    """The model's RGB mean: a property of the weights the state_dict does not carry."""


@dataclass
class RayRunner:
    """Runs a video job's chunks as Ray tasks on the cluster at ``address``.

    ``address`` is ``auto`` (the cluster this machine belongs to, e.g. started with ``ray start --head``) or a
    cluster address (``HOST:6379`` or ``ray://HOST:10001``). If this process is already connected to Ray, that
    connection is used. ``cpus_per_task`` applies on clusters without GPUs (default: up to 4, no more than the
    smallest node has).
    """

    address: str = "auto"
    cpus_per_task: int | None = None
    workers: dict[int, WorkerStatus] = field(default_factory=dict)
    """The latest report from each running chunk (updated while ``run`` polls)."""

    def run(
        self,
        *,
        info: VideoInfo,
        index: FrameIndex,
        fmt: OutputFormat,
        chunks: Sequence[Chunk],
        segment: Callable[[Chunk], Path],
        job: str,
        model: dict[str, Any],
        model_key: str,
        engine: EngineOptions,
        streams: int = 1,
        rgb_mean: tuple[float, ...] | None = None,
        on_progress: Callable[[int], None] | None = None,
        on_chunk: Callable[[Chunk], None] | None = None,
        cancel: CancelCheck = None,
    ) -> None:
        """Upscale ``chunks`` into their segments on the cluster. ``model`` is the network's state_dict (the config
        is detected from it; ``rgb_mean`` is the network's mean, which it does not hold); ``on_progress(frames)``
        gets the frames done by this run (finished chunks and the running ones' frames so far), ``on_chunk`` each
        finished chunk."""
        ray = _import_ray()
        with self._cluster(ray):
            gpus = ray.cluster_resources().get("GPU", 0)
            cpus = 1 if gpus else self._cpus(ray)
            resources = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": cpus}
            task = ray.remote(max_retries=_RETRIES, retry_exceptions=False)(_chunk_task).options(**resources)
            board = ray.remote(num_cpus=0)(Board).remote()
            model_ref, index_ref = ray.put(model), ray.put(index)
            refs = {}
            for chunk in chunks:
                spec = _TaskSpec(
                    __version__, model_key, engine, cpus, info, fmt, chunk, str(segment(chunk)), job, streams, rgb_mean
                )
                refs[task.remote(spec, [model_ref], index_ref, board)] = chunk
            done: set[int] = set()
            finished = 0
            remaining = list(refs)
            try:
                while remaining:
                    raise_if_cancelled(cancel, "upscaling")
                    ready, remaining = ray.wait(remaining, num_returns=1, timeout=_POLL)
                    for ref in ready:
                        _result(ray, ref)
                        done.add(refs[ref].number)
                        finished += refs[ref].frames
                        if on_chunk is not None:
                            on_chunk(refs[ref])
                    reports = ray.get(board.snapshot.remote())
                    self.workers = {
                        n: WorkerStatus(n, frames, node, pid)
                        for n, (frames, node, pid) in reports.items()
                        if n not in done
                    }
                    if on_progress is not None:
                        on_progress(finished + sum(status.frames for status in self.workers.values()))
            except BaseException:
                for ref in remaining:
                    ray.cancel(ref, force=True)
                raise
            finally:
                ray.kill(board)

    @contextlib.contextmanager
    def _cluster(self, ray: Any) -> Iterator[None]:
        """Connected to the cluster at ``self.address`` for the block (left connected if it already was)."""
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level="warning")
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ClusterError(
                    f"cannot reach a Ray cluster at {self.address} ({exc}); start one with 'ray start --head' "
                    "(and 'ray start --address HEAD:6379' on the other machines)"
                ) from None
        try:
            yield
        finally:
            if started_here:
                ray.shutdown()

    def _cpus(self, ray: Any) -> int:
        if self.cpus_per_task is not None:
            return max(1, self.cpus_per_task)
        sizes = [node["Resources"].get("CPU", 1) for node in ray.nodes() if node.get("Alive")]
        return int(max(1, min(_MAX_CPUS_PER_TASK, min(sizes, default=1))))


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError("{ray} needs Ray on this machine: pip install 'hat-plugin[cluster]'", option="ray") from None
    return ray


def _result(ray: Any, ref: Any) -> None:
    """Wait for a finished task; a hat-plugin error in it is raised as itself, anything else as ClusterError."""
    from ray.exceptions import RayError, RayTaskError

    try:
        ray.get(ref)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, HATError):
            raise cause from None
        raise ClusterError(f"a chunk failed on the cluster: {cause or exc}") from None
    except RayError as exc:
        raise ClusterError(f"a chunk failed on the cluster after {_RETRIES} retries: {exc}") from None


# ------------------------------------------------------------------------------------------------ on the workers

_engines: dict[tuple[str, EngineOptions], Upscaler] = {}
_engines_lock = threading.Lock()


def _chunk_task(spec: _TaskSpec, model_box: list[Any], index: FrameIndex, board: Any) -> int:
    """One chunk on a worker: the same pipeline as a local run. Returns the frames written."""
    if spec.version != __version__:
        raise ClusterError(f"this worker runs hat-plugin {__version__}, the driver {spec.version}: install the same")
    engine = _engine(spec, model_box)
    node, pid = socket.gethostname(), os.getpid()
    last = [0.0]

    def report(chunk: Chunk, frames: int) -> None:
        now = time.monotonic()
        if now - last[0] >= _REPORT or frames in (1, chunk.frames):
            last[0] = now
            board.report.remote(chunk.number, frames, node, pid)

    board.report.remote(spec.chunk.number, 0, node, pid)
    run_chunks(
        spec.info,
        index,
        spec.fmt,
        [spec.chunk],
        lambda _chunk: Path(spec.segment),
        spec.job,
        frame_upscaler(engine, spec.info, spec.fmt, spec.streams),
        streams=spec.streams,
        on_frame=report,
    )
    return spec.chunk.frames


def _engine(spec: _TaskSpec, model_box: list[Any]) -> Upscaler:
    """This worker's engine for the job's model, built from the shipped weights on first use."""
    import ray
    import torch

    from ..checkpoint import load_model
    from ..engine import Upscaler

    key = (spec.model_key, spec.engine)
    with _engines_lock:
        if key not in _engines:
            if not ray.get_gpu_ids():
                torch.set_num_threads(spec.cpus)
            state = ray.get(model_box[0])
            _engines.clear()  # one model per worker: a new job's model replaces the last one
            net = load_model(state, rgb_mean=spec.rgb_mean)  # fresh aligned copies, as locally
            _engines[key] = Upscaler(net, spec.engine)
        return _engines[key]
