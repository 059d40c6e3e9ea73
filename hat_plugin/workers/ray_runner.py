"""Units of work across machines with Ray: one task per unit, one GPU (or a few CPUs) each.

Every node must see the inputs and the outputs at the same paths (a shared file system) and have hat-plugin
installed. The driver ships the model's weights and the work once through Ray's object store; each worker process
builds the engine on first use and keeps it for its later units. A task whose worker or node dies is retried by
Ray from the start of its unit (``max_retries``); works publish their results atomically, so a half-written one
never counts. Workers report progress to a small actor that the driver polls for one progress figure.

Each task runs the work's own ``run`` on its one unit, as a local run does on all of them, so a cluster of like
devices produces the same files as one machine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import ClusterError, HATError
from ..options import EngineOptions
from ..progress import raise_if_cancelled
from .board import Board
from .units import Events, Hooks, Model, Unit, Work

if TYPE_CHECKING:
    from ..engine import Upscaler

__all__ = ["RayRunner", "WorkerStatus"]

_POLL = 0.5  # seconds between the driver's looks at the tasks and the progress board
_REPORT = 0.2  # seconds between a worker's progress reports (besides its first and last step)
_RETRIES = 3
_MAX_CPUS_PER_TASK = 4


@dataclass(frozen=True)
class WorkerStatus:
    """Where a unit is being worked on and how far it is."""

    unit: Hashable
    done: int
    node: str
    pid: int


@dataclass(frozen=True)
class _TaskSpec:
    """What every task of a run needs besides the model, the work and its unit (which travel separately)."""

    version: str
    model_key: str
    engine: EngineOptions
    cpus: int
    rgb_mean: tuple[float, ...] | None = None
    """The model's RGB mean: a property of the weights the state_dict does not carry."""


@dataclass
class RayRunner:
    """Runs units as Ray tasks on the cluster at ``address``.

    ``address`` is ``auto`` (the cluster this machine belongs to, e.g. started with ``ray start --head``) or a
    cluster address (``HOST:6379`` or ``ray://HOST:10001``). If this process is already connected to Ray, that
    connection is used. Each task takes one GPU; on clusters without GPUs, ``cpus_per_task`` CPUs (default: up to
    4, no more than the smallest node has).
    """

    address: str = "auto"
    cpus_per_task: int | None = None
    workers: dict[Hashable, WorkerStatus] = field(default_factory=dict)
    """The latest report from each running unit (updated while ``run`` polls)."""

    def run[U: Unit, R](self, work: Work[U, R], units: Sequence[U], model: Model, hooks: Hooks[U, R]) -> None:
        """Run ``units`` on the cluster (see ``workers.run_units``)."""
        if model.net is None:
            raise ClusterError("a Ray run ships the network to its workers: give the network, not only an engine")
        ray = _import_ray()
        with self._cluster(ray):
            gpus = ray.cluster_resources().get("GPU", 0)
            cpus = 1 if gpus else self._cpus(ray)
            resources = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": cpus}
            task = ray.remote(max_retries=_RETRIES, retry_exceptions=False)(_unit_task).options(**resources)
            board = ray.remote(num_cpus=0)(Board).remote()
            spec = _TaskSpec(__version__, model.key, model.options, cpus, model.net.config.rgb_mean)
            model_ref, work_ref = ray.put(model.net.state_dict()), ray.put(work)
            refs = {task.remote(spec, work_ref, unit, [model_ref], board): unit for unit in units}
            done: set[Hashable] = set()
            remaining = list(refs)
            try:
                while remaining:
                    raise_if_cancelled(hooks.cancel, "upscaling")
                    ready, remaining = ray.wait(remaining, num_returns=1, timeout=_POLL)
                    if ready and remaining:  # and every other task finished meanwhile
                        more, remaining = ray.wait(remaining, num_returns=len(remaining), timeout=0)
                        ready += more
                    for ref in ready:
                        unit = refs[ref]
                        done.add(unit.key)
                        try:
                            result = _result(ray, ref)
                        except HATError as exc:
                            if hooks.on_failed is None:
                                raise
                            hooks.on_failed(unit, exc)
                            continue
                        hooks.progress.finish(unit)
                        hooks.on_done(unit, result)
                    reports = ray.get(board.snapshot.remote())
                    self.workers = {
                        key: WorkerStatus(key, count, node, pid)
                        for key, (count, node, pid) in reports.items()
                        if key not in done
                    }
                    hooks.progress.replace({key: status.done for key, status in self.workers.items()})
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


def _result(ray: Any, ref: Any) -> Any:
    """A finished task's result; a hat-plugin error in it is raised as itself, anything else as ClusterError."""
    from ray.exceptions import RayError, RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, HATError):
            raise cause from None
        raise ClusterError(f"a task failed on the cluster: {cause or exc}") from None
    except RayError as exc:
        raise ClusterError(f"a task failed on the cluster after {_RETRIES} retries: {exc}") from None


# ------------------------------------------------------------------------------------------------ on the workers

_engines: dict[tuple[str, EngineOptions], Upscaler] = {}
_engines_lock = threading.Lock()


def _unit_task[U: Unit, R](spec: _TaskSpec, work: Work[U, R], unit: U, model_box: list[Any], board: Any) -> R:
    """One unit on a worker: the work's own ``run``, as a local run does. Returns the unit's result."""
    if spec.version != __version__:
        raise ClusterError(f"this worker runs hat-plugin {__version__}, the driver {spec.version}: install the same")
    engine = _engine(spec, model_box)
    node, pid = socket.gethostname(), os.getpid()
    last = [0.0]

    def report(_unit: U, done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= _REPORT or done in (1, unit.size):
            last[0] = now
            board.report.remote(unit.key, done, node, pid)

    results: list[R] = []
    board.report.remote(unit.key, 0, node, pid)
    work.run(engine, [unit], Events(report, lambda _unit, result: results.append(result)))
    if not results:
        raise ClusterError(f"a task on {node} finished without a result")
    return results[0]


def _engine(spec: _TaskSpec, model_box: list[Any]) -> Upscaler:
    """This worker's engine for the run's model, built from the shipped weights on first use."""
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
            _engines.clear()  # one model per worker: a new run's model replaces the last one
            net = load_model(state, rgb_mean=spec.rgb_mean)  # fresh aligned copies, as locally
            _engines[key] = Upscaler(net, spec.engine)
        return _engines[key]
