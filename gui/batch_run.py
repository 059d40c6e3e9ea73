"""Qt-free logic of one run of the app: the run's settings, the events the worker sends, planning the queue into
jobs (through ``hat_plugin.batch.plan_outputs``, as the command line does, videos by the CLI's container rule),
and the window's side of a run: item state transitions, the overall progress (finished work only) and the time
left.

The worker (``runner.run_batch`` on a pool thread) produces the events; ``RunTracker`` applies them on the UI
thread. Neither imports Qt, so both are tested with plain pytest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gui.queue_model import ItemState, QueueItem
from gui.settings import Settings
from hat_plugin import batch
from hat_plugin.batch import Input, OutputOptions
from hat_plugin.options import EngineOptions
from hat_plugin.video import CODECS, EncoderSettings, is_video_name, output_extension
from hat_plugin.video.job import DEFAULT_CHUNK_FRAMES

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

    @property
    def is_video(self) -> bool:
        """True for a video file."""
        return is_video_name(self.source)

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
    rgb_mean: str = ""
    """The user's RGB mean for the model; "" for the one its manifest entry or file states."""
    engine: EngineOptions = field(default_factory=EngineOptions.from_environment)
    """How the engine runs (device, precision, tile, memory limit, and the environment's settings)."""
    output: OutputOptions = field(default_factory=OutputOptions)
    quality: int = 95
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    """How upscaled videos are encoded."""
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    """Frames per resumable chunk of a video."""
    deinterlace: str = "auto"
    on_damage: str = "conceal"

    @classmethod
    def from_settings(cls, settings: Settings) -> RunConfig:
        """The run configuration for what the settings panel shows; ``OptionError`` for a suffix, format or video
        setting that cannot work (checked before any work is done)."""
        spec = CODECS.get(settings.video_codec)
        crf = settings.video_crf if spec is not None and spec.crf is not None and settings.video_crf >= 0 else None
        return cls(
            model=settings.model_source,
            from_file=settings.use_weights_file,
            scale=settings.scale or None,
            rgb_mean=settings.rgb_mean,
            engine=EngineOptions.from_environment(
                device=settings.device,
                precision=settings.precision,
                tile=settings.tile,
                max_memory=settings.max_memory_bytes,
            ),
            output=OutputOptions(
                folder=settings.output_folder,
                suffix=settings.suffix,
                format=None if settings.format == "same" else settings.format,
                overwrite=settings.overwrite,
            ),
            quality=settings.quality,
            encoder=EncoderSettings(
                codec=settings.video_codec, crf=crf, preset=settings.video_preset or None
            ).checked(),
            chunk_frames=max(settings.video_chunk, 1),
            deinterlace=settings.video_deinterlace,
            on_damage=settings.video_on_damage,
        )


# ---------------------------------------------------------------------------------------------------- events


@dataclass(frozen=True)
class ItemUpdate:
    """An item moved on: its state, a short message, and progress (tiles, frames of a video, or bytes of the
    model; 0 = not known)."""

    item_id: int
    state: ItemState
    message: str = ""
    done: int = 0
    total: int = 0
    baseline: int | None = None
    """Set once per item when part of it was done before (a resumed video's finished frames): the time left is
    then estimated from the work done after this point only."""


@dataclass(frozen=True)
class ItemFinished:
    """An item ended: done (``output`` written), skipped, failed or cancelled, with the message to show."""

    item_id: int
    state: ItemState
    message: str = ""
    output: Path | None = None
    seconds: float = 0.0
    retry: bool = True
    """Whether running the item again can end otherwise (False: the input itself cannot be upscaled)."""


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
    weights: Path | None = None
    """The weights file the run loaded: what each of its outputs was made with (Explain uses it)."""
    mean: str = "official"
    """The model's RGB mean, as ``rgb_mean.describe_rgb_mean`` spells it."""


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
    jobs: Sequence[Job], options: OutputOptions, *, scale: int, model: str, codec: str = "x264"
) -> tuple[list[tuple[Job, Path]], list[ItemFinished]]:
    """Plan the jobs as the command line plans its inputs (``batch.plan_outputs``; videos as its video command
    does, the container by ``output_extension`` for ``codec``): the jobs to run with their output files, in queue
    order, and the items that end here (skipped, left out, refused), as events."""
    by_input: dict[Input, Job] = {}
    ended: list[ItemFinished] = []
    for job in jobs:
        key = job.as_input()
        if key in by_input:
            ended.append(ItemFinished(job.item_id, ItemState.SKIPPED, "Skipped: the same file is already in this run."))
        else:
            by_input[key] = job
    images = [key for key, job in by_input.items() if not job.is_video]
    videos = [key for key, job in by_input.items() if job.is_video]
    plans = []
    if images:
        plans.append(batch.plan_outputs(images, options, scale=scale, model=model))
    if videos:
        video_options = replace(options, format=None, kind="video")
        plans.append(
            batch.plan_outputs(
                videos, video_options, scale=scale, model=model, extension=lambda path: output_extension(path, codec)
            )
        )
    todo: list[tuple[Job, Path]] = []
    for plan in plans:
        todo.extend((by_input[p.input], p.output) for p in plan.todo)
        for item, why in plan.left_out:
            ended.append(ItemFinished(by_input[item].item_id, ItemState.SKIPPED, f"Left out: {why}."))
        for item, why in plan.skipped:
            ended.append(ItemFinished(by_input[item].item_id, ItemState.SKIPPED, f"Skipped: {why}."))
        for item, why in plan.failed:
            ended.append(ItemFinished(by_input[item].item_id, ItemState.FAILED, why))
    order = {job.item_id: position for position, job in enumerate(jobs)}
    todo.sort(key=lambda pair: order[pair[0].item_id])
    return todo, ended


# ------------------------------------------------------------------------------------------------ time left


class TimeLeft:
    """Estimates the seconds left in a run: the current item from its rate (tiles, or frames of a video, per
    second), the waiting ones from how long finished items of the same kind (image or video) took."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._durations: dict[str, list[float]] = {}
        self._kind = "image"
        self._current_start: float | None = None
        self._base = 0

    def start_item(self, kind: str = "image") -> None:
        """The worker began computing an item (after any model download)."""
        self._kind, self._current_start, self._base = kind, self._clock(), 0

    def rebase(self, done: int) -> None:
        """``done`` of the current item's work was done before (a resumed video): count the rate from here."""
        if self._current_start is not None:
            self._current_start, self._base = self._clock(), done

    def finish_item(self, counted: bool, total: int = 0) -> None:
        """The current item ended; ``counted`` is False for skips, failures and cancels, which say little. A
        resumed item counts as the time the whole of it (``total``) would have taken at its rate."""
        if counted and self._current_start is not None:
            took = self._clock() - self._current_start
            if 0 < self._base < total:
                took *= total / (total - self._base)
            self._durations.setdefault(self._kind, []).append(took)
        self._current_start = None

    def _mean(self, kind: str) -> float | None:
        durations = self._durations.get(kind)
        return sum(durations) / len(durations) if durations else None

    def estimate(self, done: int, total: int, waiting: Mapping[str, int]) -> float | None:
        """Seconds left: the rest of the current item (``done`` of ``total``) plus the ``waiting`` items of each
        kind; None while a kind that is still to come has nothing to estimate from."""
        per_item = {kind: self._mean(kind) for kind in (*self._durations, *waiting, self._kind)}
        current_left = 0.0
        if self._current_start is not None:
            elapsed = self._clock() - self._current_start
            mean = per_item[self._kind]
            if done > self._base and total > 0:
                rate = elapsed / (done - self._base)
                current_left = max(rate * (total - done), 0.0)
                per_item[self._kind] = mean if mean is not None else rate * total
            elif mean is not None:
                current_left = max(mean - elapsed, 0.0)
            else:
                return None
        left = current_left
        for kind, count in waiting.items():
            if count:
                mean = per_item[kind]
                if mean is None:
                    return None
                left += count * mean
        return left


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
                self._eta.start_item(item.kind)
            if event.baseline is not None:
                self._eta.rebase(event.baseline)
            if event.state is ItemState.DOWNLOADING:
                self.downloaded = True
            _set(item, event.state, event.message, event.done, event.total)
        else:
            counted = event.state is ItemState.DONE and item.state is ItemState.RUNNING
            self._eta.finish_item(counted, item.total)
            _set(item, event.state, event.message)
            item.output, item.seconds, item.retry = event.output, event.seconds, event.retry
            weights = self.model.weights if self.model is not None else None
            item.model = weights if event.state is ItemState.DONE and event.output is not None else None
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
        waiting: dict[str, int] = {}
        for item in self.items:
            if item.state is ItemState.QUEUED:
                waiting[item.kind] = waiting.get(item.kind, 0) + 1
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
