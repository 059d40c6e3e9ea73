"""Units of work run with an engine, here or on a Ray cluster, through one call.

A *unit* is the smallest piece a run hands out and resumes by (a video chunk, a group of images); its ``size`` is
what progress counts (frames, images). A *work* says how to run units with a loaded engine; it is picklable, so
the same object runs in this process or in a Ray worker::

    run_units(work, units, runner, model=Model(net, options, key), progress=..., on_done=..., cancel=event)

``runner`` is ``None`` or a ``LocalRunner`` (every unit in this process, handed to ``work.run`` in one call, so a
video keeps one decode/infer/encode pipeline over consecutive chunks) or a ``RayRunner`` (one Ray task per unit,
see ``workers.ray_runner``). Either way ``progress(done)`` gets the size done by this run (finished units and the
running ones so far), ``on_done(unit, result)`` each finished unit's result, and ``cancel`` stops the run.

Retries: on Ray a task whose worker or node dies is run again from the start of its unit; here a failure is not
transient (the engine, the disk, the input) and is raised, keeping the units already finished. Resume: the
caller's plan hands over only the units not done (finished segments, existing outputs), and a work writes each
result atomically, so a unit cut short leaves nothing that counts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..options import EngineOptions
from ..progress import CancelCheck

if TYPE_CHECKING:
    from ..arch import HAT
    from ..engine import Upscaler

__all__ = ["Events", "Hooks", "LocalRunner", "Model", "Progress", "Runner", "Unit", "Work", "run_units"]


class Unit(Protocol):
    """A piece of work: ``key`` tells it apart within a run, ``size`` is what progress counts in it."""

    @property
    def key(self) -> Hashable: ...

    @property
    def size(self) -> int: ...


@dataclass(frozen=True)
class Events[U: Unit, R]:
    """What a work tells its runner as it goes, and the runner's cancel check."""

    report: Callable[[U, int], None]
    """``report(unit, done)``: how far ``unit`` is (0 to its size; a unit run again starts from 0)."""
    done: Callable[[U, R], None]
    """``done(unit, result)``: ``unit`` is finished."""
    cancel: CancelCheck = None


class Work[U: Unit, R](Protocol):
    """How to run units of one kind with a loaded engine (picklable: it travels to Ray workers)."""

    def run(self, engine: Upscaler, units: Sequence[U], events: Events[U, R]) -> None:
        """Run ``units`` in order, telling ``events`` how far each is and each finished one's result."""


@dataclass(frozen=True)
class Model:
    """The network a run upscales with: an engine is built from it here, or its weights are shipped to each worker.

    ``key`` names the weights and their mean (a worker keeps its engine for later units of the same key);
    ``upscaler`` is an engine already loaded with the network, used by local runs instead of building one.
    """

    net: HAT | None
    options: EngineOptions
    key: str
    upscaler: Upscaler | None = None


@dataclass(frozen=True)
class Hooks[U: Unit, R]:
    """What a runner reports to its caller, and the caller's cancel check (see ``run_units``)."""

    progress: Progress
    on_done: Callable[[U, R], None]
    on_failed: Callable[[U, Exception], None] | None
    cancel: CancelCheck


class Runner(Protocol):
    """Where units run: ``LocalRunner`` or ``RayRunner``."""

    def run[U: Unit, R](self, work: Work[U, R], units: Sequence[U], model: Model, hooks: Hooks[U, R]) -> None: ...


class Progress:
    """Turns unit reports into one ``progress(done)`` figure: finished units plus the running ones (thread-safe;
    a late report for a finished unit is ignored, so nothing counts twice)."""

    def __init__(self, progress: Callable[[int], None] | None) -> None:
        self.progress = progress
        self.finished = 0
        self.closed: set[Hashable] = set()
        self.running: dict[Hashable, int] = {}
        self.lock = threading.Lock()

    def report(self, unit: Unit, done: int) -> None:
        """``unit`` is ``done`` far."""
        with self.lock:
            if unit.key not in self.closed:
                self.running[unit.key] = done
                self._emit()

    def finish(self, unit: Unit) -> None:
        """``unit`` is done: its whole size counts."""
        with self.lock:
            if unit.key not in self.closed:
                self.closed.add(unit.key)
                self.running.pop(unit.key, None)
                self.finished += unit.size
                self._emit()

    def replace(self, running: dict[Hashable, int]) -> None:
        """The running units' figures as a whole (a cluster's snapshot)."""
        with self.lock:
            self.running = {key: done for key, done in running.items() if key not in self.closed}
            self._emit()

    def _emit(self) -> None:
        """Called with the lock held, so the figures go out in the order they were made."""
        if self.progress is not None:
            self.progress(self.finished + sum(self.running.values()))


@dataclass(frozen=True)
class LocalRunner:
    """Runs every unit in this process, with ``model.upscaler`` or an engine built from ``model.net`` (closed
    after the run). ``work.run`` gets all the units in one call."""

    def run[U: Unit, R](self, work: Work[U, R], units: Sequence[U], model: Model, hooks: Hooks[U, R]) -> None:
        owned = model.upscaler is None
        if model.upscaler is not None:
            upscaler = model.upscaler
        else:
            from ..engine import Upscaler

            assert model.net is not None, "a local run needs the network or an engine"
            upscaler = Upscaler(model.net, model.options)

        def done(unit: U, result: R) -> None:
            hooks.progress.finish(unit)
            hooks.on_done(unit, result)

        try:
            work.run(upscaler, units, Events(hooks.progress.report, done, hooks.cancel))
        finally:
            if owned:
                upscaler.close()


def run_units[U: Unit, R](
    work: Work[U, R],
    units: Sequence[U],
    runner: Runner | None = None,
    *,
    model: Model,
    progress: Callable[[int], None] | None = None,
    on_done: Callable[[U, R], None] | None = None,
    on_failed: Callable[[U, Exception], None] | None = None,
    cancel: CancelCheck = None,
) -> None:
    """Run ``units`` of ``work`` on ``runner`` (``LocalRunner`` when None); see the module docstring.

    ``on_failed(unit, error)``, when given, takes a unit lost on a cluster (its retries spent, or an error raised
    by it) and the run goes on; without it that error is raised. Local failures are raised.
    """
    if not units:
        return
    hooks = Hooks(Progress(progress), on_done or (lambda unit, result: None), on_failed, cancel)
    (runner or LocalRunner()).run(work, units, model, hooks)
