"""Qt-free logic of one run of the app: the run's settings, the events the worker sends, planning the queue into
jobs (through ``hat_plugin.batch.plan_outputs``, as the command line does), and the window's side of a run: item
state transitions, the overall progress (finished work only) and the time left.

The worker (``runner.run_batch`` on a pool thread) produces the events; ``RunTracker`` applies them on the UI
thread. Neither imports Qt, so both are tested with plain pytest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gui.queue_model import ItemState, QueueItem
from gui.settings import Settings
from hat_plugin import batch
from hat_plugin.batch import Input, OutputOptions

__all__ = [
    "ItemFinished",
    "ItemUpdate",
    "Job",
    "ModelChosen",
    "RunConfig",
    "RunEvent",
    "RunStopped",
    "RunTracker",
    "TimeLeft",
    "plan_jobs",
]


@dataclass(frozen=True)
class Job:
    """One queue item as the worker sees it (a snapshot, so the UI may edit the queue meanwhile)."""

    item_id: int
    source: Path
    root: Path | None = None
    """The folder the user added that contained ``source``; None when the file itself was added."""

    def as_input(self) -> Input:
        """The batch planner's view: a file added by itself is explicit, one found in a folder is not."""
        if self.root is None:
            return Input(self.source, Path(), explicit=True)
        return Input(self.source, self.source.parent.relative_to(self.root), explicit=False)


@dataclass(frozen=True)
class RunConfig:
    """The settings a run uses, frozen when it starts."""

    model: str = ""
    """A manifest model name, a weights file path (``from_file``), or "" for the engine's default for ``scale``."""
    from_file: bool = False
    scale: int | None = None
    """The scale asked for when ``model`` is "" (None: the engine's default scale)."""
    device: str = "auto"
    precision: str = "auto"
    tile: int = 0
    output: OutputOptions = field(default_factory=OutputOptions)
    quality: int = 95

    @classmethod
    def from_settings(cls, settings: Settings) -> RunConfig:
        """The run configuration for what the settings panel shows; ``OptionError`` for a suffix or format that
        cannot work (checked before any work is done)."""
        return cls(
            model=settings.model_source,
            from_file=settings.use_weights_file,
            scale=settings.scale or None,
            device=settings.device,
            precision=settings.precision,
            tile=settings.tile,
            output=OutputOptions(
                folder=settings.output_folder,
                suffix=settings.suffix,
                format=None if settings.format == "same" else settings.format,
                overwrite=settings.overwrite,
            ),
            quality=settings.quality,
        )


# ---------------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class ItemUpdate:
    """An item moved on: its state, a short message, and progress (tiles, or bytes of the model; 0 = not known)."""

    item_id: int
    state: ItemState
    message: str = ""
    done: int = 0
    total: int = 0


@dataclass(frozen=True)
class ItemFinished:
    """An item ended: done (``output`` written), skipped, failed or cancelled, with the message to show."""

    item_id: int
    state: ItemState
    message: str = ""
    output: Path | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class ModelChosen:
    """The model of the run is loaded. ``why`` is the engine's reason when it picked the default model; ``notes``
    what it warned about while loading (a precision fallback, say)."""

    label: str
    scale: int
    device: str
    precision: str
    why: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunStopped:
    """The run ended before any image because the model could not be fetched or loaded; the items stay queued."""

    reason: str
    """One short sentence for the user."""
    details: str = ""
    """The engine's full message (URL by URL for a download), folded away until asked for."""
    model: str = ""
    """The manifest name that was unavailable ("" when the problem was not about fetching a listed model)."""


RunEvent = ItemUpdate | ItemFinished | ModelChosen | RunStopped
Emit = Callable[[RunEvent], None]


# -------------------------------------------------------------------------------------------------- planning


def plan_jobs(
    jobs: Sequence[Job], options: OutputOptions, *, scale: int, model: str
) -> tuple[list[tuple[Job, Path]], list[ItemFinished]]:
    """Plan the jobs as the command line plans its inputs (``batch.plan_outputs``): the jobs to run with their
    output files, and the items that end here (skipped, left out, refused), as events."""
    by_input: dict[Input, Job] = {}
    ended: list[ItemFinished] = []
    for job in jobs:
        key = job.as_input()
        if key in by_input:
            ended.append(ItemFinished(job.item_id, ItemState.SKIPPED, "Skipped: the same file is already in this run."))
        else:
            by_input[key] = job
    plan = batch.plan_outputs(list(by_input), options, scale=scale, model=model)
    for item, why in plan.left_out:
        ended.append(ItemFinished(by_input[item].item_id, ItemState.SKIPPED, f"Left out: {why}."))
    for item, why in plan.skipped:
        ended.append(ItemFinished(by_input[item].item_id, ItemState.SKIPPED, f"Skipped: {why}."))
    for item, why in plan.failed:
        ended.append(ItemFinished(by_input[item].item_id, ItemState.FAILED, why))
    return [(by_input[p.input], p.output) for p in plan.todo], ended


# ------------------------------------------------------------------------------------------------ time left


class TimeLeft:
    """Estimates the seconds left in a run from how long finished items and the current item's tiles took."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._durations: list[float] = []
        self._current_start: float | None = None

    def start_item(self) -> None:
        """The worker began computing an item (after any model download)."""
        self._current_start = self._clock()

    def finish_item(self, counted: bool) -> None:
        """The current item ended; ``counted`` is False for skips, failures and cancels, which say little."""
        if counted and self._current_start is not None:
            self._durations.append(self._clock() - self._current_start)
        self._current_start = None

    def estimate(self, done: int, total: int, waiting: int) -> float | None:
        """Seconds left: the rest of the current item (``done`` of ``total`` tiles) plus ``waiting`` more items."""
        current_left = 0.0
        per_item = sum(self._durations) / len(self._durations) if self._durations else None
        if self._current_start is not None:
            elapsed = self._clock() - self._current_start
            if done > 0 and total > 0:
                projected = elapsed * total / done
                current_left = max(projected - elapsed, 0.0)
                per_item = per_item if per_item is not None else projected
            elif per_item is not None:
                current_left = max(per_item - elapsed, 0.0)
            else:
                return None
        if per_item is None:
            return None if waiting else current_left
        return current_left + waiting * per_item


# --------------------------------------------------------------------------------------------------- tracker


class RunTracker:
    """The window's side of one run: applies the worker's events to the run's queue items and says how far the run
    is. Finished work only counts: a failed or cancelled item adds nothing to the overall progress."""

    def __init__(self, items: Sequence[QueueItem], clock: Callable[[], float] = time.monotonic) -> None:
        self.items = list(items)
        self._by_id = {item.id: item for item in self.items}
        self._eta = TimeLeft(clock)
        self.cancelled = False
        self.stopped: RunStopped | None = None
        self.model: ModelChosen | None = None
        self.downloaded = False
        """A model was downloaded during the run (the model list should be checked again)."""

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._by_id

    def apply(self, event: RunEvent) -> QueueItem | None:
        """Apply one event; returns the item it changed (None for run-wide events or items not in this run)."""
        if isinstance(event, ModelChosen):
            self.model = event
            return None
        if isinstance(event, RunStopped):
            self.stopped = event
            for busy in self.items:
                if busy.state.busy:
                    _set(busy, ItemState.QUEUED)
            return None
        item = self._by_id.get(event.item_id)
        if item is None:
            return None
        if isinstance(event, ItemUpdate):
            if event.state is ItemState.RUNNING and item.state is not ItemState.RUNNING:
                self._eta.start_item()
            if event.state is ItemState.DOWNLOADING:
                self.downloaded = True
            _set(item, event.state, event.message, event.done, event.total)
        else:
            self._eta.finish_item(counted=event.state is ItemState.DONE and item.state is ItemState.RUNNING)
            _set(item, event.state, event.message)
            item.output, item.seconds = event.output, event.seconds
        return item

    def end(self) -> list[QueueItem]:
        """The worker has finished: an item still marked busy (the worker died) goes back to the queue, or is
        cancelled when the user cancelled. Returns the items changed."""
        changed = []
        for item in self.items:
            if item.state.busy:
                _set(item, ItemState.CANCELLED if self.cancelled else ItemState.QUEUED)
                changed.append(item)
        return changed

    @property
    def current(self) -> QueueItem | None:
        """The item the worker is on, if any."""
        return next((item for item in self.items if item.state.busy), None)

    def fraction(self) -> float | None:
        """How much of the run's work is finished, from 0 to 1; None while the first item shows no measurable
        progress yet (the model loading, the first tile), for an indeterminate bar."""
        if not self.items:
            return 0.0
        completed = sum(item.state.completed for item in self.items)
        current = self.current
        part = 0.0
        if current is not None and current.state is ItemState.RUNNING and current.total > 0:
            part = min(current.done / current.total, 1.0)
        if current is not None and completed == 0 and part == 0.0:
            return None
        return (completed + part) / len(self.items)

    def counts(self) -> dict[ItemState, int]:
        """How many items of the run are in each state."""
        counts = dict.fromkeys(ItemState, 0)
        for item in self.items:
            counts[item.state] += 1
        return counts

    def time_left(self) -> float | None:
        """Seconds left in the run, or None while there is nothing to estimate from."""
        current = self.current
        running = current is not None and current.state is ItemState.RUNNING
        done, total = (current.done, current.total) if current is not None and running else (0, 0)
        waiting = sum(item.state is ItemState.QUEUED for item in self.items)
        return self._eta.estimate(done, total, waiting)

    def summary(self) -> str:
        """One line for the status bar when the run has ended."""
        counts = self.counts()
        order = (ItemState.DONE, ItemState.SKIPPED, ItemState.FAILED, ItemState.CANCELLED, ItemState.QUEUED)
        parts = [f"{counts[state]} {state.value}" for state in order if counts[state]]
        head = "Cancelled" if self.cancelled else "Stopped" if self.stopped is not None else "Finished"
        return f"{head}: {', '.join(parts) or 'nothing processed'}"


def _set(item: QueueItem, state: ItemState, message: str = "", done: int = 0, total: int = 0) -> None:
    item.state, item.message, item.done, item.total = state, message, done, total
