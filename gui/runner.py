"""What a run does on the worker thread, without Qt: get the model (the engine's default when none is chosen),
plan the jobs, upscale the images through ``hat_plugin.image_work`` as the command line does (``image_items``
turns each image's steps into the item's events), and each video as a ``hat_plugin.video.VideoJob`` (frame
progress, cancel keeps the finished chunks, the next run continues from them), reporting everything as
``batch_run`` events.

``run_batch`` is called by ``worker.UpscaleTask`` on the app's one-thread pool, and directly by tests.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import hat_plugin
from gui.batch_run import Emit, ItemFinished, ItemUpdate, Job, ModelChosen, RunConfig, RunStopped, plan_jobs
from gui.models import friendly_name, unavailable_sentence
from gui.notices import collect_notices
from gui.queue_model import ItemState
from gui.wording import worded
from hat_plugin import weights
from hat_plugin.batch import Planned
from hat_plugin.errors import (
    Cancelled,
    DamagedVideoError,
    DownloadError,
    HATError,
    ImageError,
    ModelNotFoundError,
    OutputError,
    VideoError,
    is_out_of_memory,
    out_of_memory_message,
)
from hat_plugin.files import require_regular_file
from hat_plugin.image_work import ImageOutcome, ImageWatch, ImageWork, upscale_images
from hat_plugin.options import EngineOptions
from hat_plugin.progress import CancelCheck, ProgressFn, is_cancelled, raise_if_cancelled
from hat_plugin.rgb_mean import describe_rgb_mean
from hat_plugin.video import VideoJob
from hat_plugin.weights import ModelEntry
from hat_plugin.workers import Model

__all__ = ["EngineCache", "Throttle", "describe_error", "model_spec", "run_batch"]

EMIT_INTERVAL_S = 0.05


def describe_error(exc: BaseException, device: object = None, tile: int = 0) -> str:
    """A one-line message for the user. The engine's own messages are shown as they come; out-of-memory is the
    engine's one text; other errors get a sentence that names the problem and what to do."""
    if isinstance(exc, HATError):
        return worded(exc)
    if is_out_of_memory(exc):
        return out_of_memory_message(device if device is not None else "this device", tile or None)
    if isinstance(exc, OSError):
        where = exc.filename or ""
        if exc.errno == errno.ENOSPC:
            return f"Disk full while writing {where}: free some space and retry."
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"Cannot write to {where}: choose another output folder."
        return f"{exc.strerror or exc}: {where}".rstrip(": ")
    return f"Unexpected error ({type(exc).__name__}): {exc}"


class Throttle:
    """Passes progress on at most every ``EMIT_INTERVAL_S`` seconds, and always the last step; an unknown total
    (``None``, a download without a length) is passed on as 0."""

    def __init__(self, emit: Callable[[int, int], None]) -> None:
        self._emit = emit
        self._last = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        whole = total or 0
        if (whole and done >= whole) or now - self._last >= EMIT_INTERVAL_S:
            self._last = now
            self._emit(int(done), int(whole))


class EngineCache:
    """Keeps the last loaded ``Upscaler`` so runs with unchanged settings do not load the model again."""

    def __init__(self) -> None:
        self._key: tuple[str, int, EngineOptions, str] | None = None
        self._upscaler: hat_plugin.Upscaler | None = None

    @property
    def loaded(self) -> hat_plugin.Upscaler | None:
        """The engine kept from the last run, if any."""
        return self._upscaler

    def get(self, weights_path: Path, config: RunConfig) -> hat_plugin.Upscaler:
        """The engine for these weights and settings, building it only when they changed."""
        key = (str(weights_path), weights_path.stat().st_mtime_ns, config.engine, config.rgb_mean)
        if key != self._key or self._upscaler is None:
            if self._upscaler is not None:
                self._upscaler.close()
            self._upscaler, self._key = None, None
            network = hat_plugin.load_model(weights_path, rgb_mean=config.rgb_mean) if config.rgb_mean else weights_path
            self._upscaler = hat_plugin.Upscaler(network, config.engine)
            self._key = key
        return self._upscaler


def run_batch(jobs: Sequence[Job], config: RunConfig, engines: EngineCache, emit: Emit, cancel: CancelCheck) -> None:
    """Process ``jobs`` in order with one model; stops between images (and within one, between tiles) on
    ``cancel``. Items never reached keep their queued state (no event)."""
    if not jobs:
        return
    loaded = _load(jobs[0], config, engines, emit, cancel)
    if loaded is None:
        return
    upscaler, label, path = loaded
    todo, ended = plan_jobs(jobs, config.output, scale=upscaler.scale, model=label, codec=config.encoder.codec)
    for event in ended:
        emit(event)
    for videos, run in itertools.groupby(todo, key=lambda pair: pair[0].is_video):
        for job, target in run if videos else ():
            if is_cancelled(cancel):
                return
            _process_video(job, target, upscaler, path, config, emit, cancel)
        if not videos and not _upscale_items(list(run), upscaler, label, config, emit, cancel):
            return


def model_spec(config: RunConfig, scale: int | None = None) -> tuple[str | Path, ModelEntry | None, str]:
    """The model a run with ``config`` uses: what ``weights.resolve`` takes, its manifest entry (None for a weights
    file) and why the engine chose it when the settings name none (the default for ``scale``, or the settings')."""
    if config.from_file:
        return Path(config.model), None, ""
    if config.model:
        entry = weights.get_entry(config.model)
        return entry.name, entry, ""
    entry, why = weights.default_model(scale if scale is not None else config.scale)
    return entry.name, entry, why


def _load(
    first: Job, config: RunConfig, engines: EngineCache, emit: Emit, cancel: CancelCheck
) -> tuple[hat_plugin.Upscaler, str, Path] | None:
    """Fetch the model if needed and load it, showing it on the first item: the engine, the model's short name and
    its weights file; None (after an event) when it cannot."""
    emit(ItemUpdate(first.item_id, ItemState.LOADING, "loading the model"))
    entry: ModelEntry | None = None
    why = ""
    try:
        with collect_notices() as notes:
            raise_if_cancelled(cancel, "loading the model")  # cancelled before the worker started: load nothing
            spec, entry, why = model_spec(config)
            announce, progress = _download_reporting(first, emit)
            path = weights.resolve(spec, cancel=cancel, announce=announce, progress=progress)
            raise_if_cancelled(cancel, "loading the model")
            emit(ItemUpdate(first.item_id, ItemState.LOADING, "loading the model"))
            upscaler = engines.get(path, config)
    except Cancelled:
        emit(ItemFinished(first.item_id, ItemState.CANCELLED, "Cancelled before the model was ready; nothing written."))
        return None
    except Exception as exc:
        if not isinstance(exc, HATError | OSError | MemoryError):
            traceback.print_exc()
        emit(_stopped(exc, entry))
        return None
    label = weights.model_label(spec)
    from hat_plugin.precisions import precision_label

    precision = precision_label(upscaler.dtype)
    if upscaler.precision_reason:
        precision += f" (auto: {upscaler.precision_reason})"
    mean = describe_rgb_mean(upscaler.config.input_mean)
    emit(ModelChosen(label, upscaler.scale, str(upscaler.device), precision, why, tuple(notes), path, mean))
    return upscaler, label, path


def _download_reporting(first: Job, emit: Emit) -> tuple[Callable[[ModelEntry], None], Throttle]:
    """``announce`` and ``progress`` for ``weights.resolve``: the first item shows the model's download."""
    message = ["downloading the model"]

    def announce(entry: ModelEntry) -> None:
        message[0] = f"downloading {friendly_name(entry, size=False)}"
        emit(ItemUpdate(first.item_id, ItemState.DOWNLOADING, message[0], 0, entry.size or 0))

    def progress(done: int, total: int) -> None:
        emit(ItemUpdate(first.item_id, ItemState.DOWNLOADING, message[0], done, total))

    return announce, Throttle(progress)


def _stopped(exc: BaseException, entry: ModelEntry | None) -> RunStopped:
    """The run-wide event for a model that could not be had: one sentence, the engine's text folded away."""
    if entry is not None and not entry.bundled and isinstance(exc, DownloadError | ModelNotFoundError):
        return RunStopped(unavailable_sentence(entry, exc, weights.is_offline()), str(exc), entry.name)
    return RunStopped(f"The model could not be loaded: {describe_error(exc)}")


def _ready(job: Job, target: Path) -> None:
    """The input is a regular file (``stat`` only, so a named pipe is never opened) and the output folder exists
    (created if needed); else ``ImageError`` or ``OutputError`` with the item's message."""
    require_regular_file(job.source, "an image file", ImageError)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Cannot create the output folder {target.parent} ({exc.strerror or exc}): choose another one."
        ) from None


def _finisher(job: Job, emit: Emit) -> Callable[..., None]:
    """``finish(state, message, output=None)``: the item's last event, with the time since this call."""
    started = time.monotonic()

    def finish(state: ItemState, message: str, output: Path | None = None, retry: bool = True) -> None:
        emit(ItemFinished(job.item_id, state, message, output, time.monotonic() - started, retry))

    return finish


def _upscale_items(
    pairs: Sequence[tuple[Job, Path]],
    upscaler: hat_plugin.Upscaler,
    label: str,
    config: RunConfig,
    emit: Emit,
    cancel: CancelCheck,
) -> bool:
    """Upscale the image jobs to their outputs as the command line does (``image_work``, in this process), each
    item's events as it goes; stops between images and within one between tiles on ``cancel``. False when
    cancelled: the item under way is marked so, the ones after it keep their queued state."""
    items = _ImageItems(pairs, upscaler, config, emit)
    work = ImageWork(config.output.format, config.quality, config.output.overwrite, watch=items)
    todo = [Planned(job.as_input(), target) for job, target in pairs]
    model = Model(None, config.engine, label, upscaler)
    try:
        upscale_images(todo, work, None, model, on_outcome=items.finished, cancel=cancel)
    except Cancelled:
        return False
    return True


class _ImageItems(ImageWatch):
    """Each image's steps and outcome as its queue item's events: reading, the first tile, tiles (throttled),
    then done (with what the engine warned about), failed (one line naming the file) or cancelled."""

    def __init__(
        self, pairs: Sequence[tuple[Job, Path]], upscaler: hat_plugin.Upscaler, config: RunConfig, emit: Emit
    ) -> None:
        self.jobs = {target: job for job, target in pairs}  # a plan's outputs are unique
        self.upscaler, self.tile, self.emit = upscaler, config.engine.tile, emit
        self.started: dict[Path, float] = {}
        self.notes: dict[Path, list[str]] = {}

    @contextlib.contextmanager
    def image(self, source: Path, output: Path) -> Iterator[None]:
        job = self.jobs[output]
        self.started[output] = time.monotonic()
        self.emit(ItemUpdate(job.item_id, ItemState.RUNNING, "reading the image"))
        _ready(job, output)
        try:
            with collect_notices() as notes:
                yield
        except Cancelled:
            self._finish(output, ItemState.CANCELLED, "Cancelled; no output was written.")
            raise
        self.notes[output] = notes

    @contextlib.contextmanager
    def upscaling(self, source: Path, output: Path) -> Iterator[ProgressFn]:
        item = self.jobs[output].item_id
        self.emit(ItemUpdate(item, ItemState.RUNNING, "working on the first tile"))
        yield Throttle(lambda done, total: self.emit(ItemUpdate(item, ItemState.RUNNING, "", done, total)))

    def finished(self, outcome: ImageOutcome) -> None:
        """The item's last event, from the image's outcome."""
        exc = outcome.error
        if exc is None:
            self._finish(outcome.output, ItemState.DONE, "; ".join(self.notes.pop(outcome.output, [])), True)
            return
        if not isinstance(exc, HATError | OSError | MemoryError) and not is_out_of_memory(exc):
            traceback.print_exception(exc)
        self._finish(outcome.output, ItemState.FAILED, describe_error(exc, self.upscaler.device, self.tile))

    def _finish(self, output: Path, state: ItemState, message: str, written: bool = False) -> None:
        job = self.jobs[output]
        seconds = time.monotonic() - self.started.pop(output, time.monotonic())
        self.emit(ItemFinished(job.item_id, state, message, output if written else None, seconds))


def _process_video(
    job: Job,
    target: Path,
    upscaler: hat_plugin.Upscaler,
    weights_path: Path,
    config: RunConfig,
    emit: Emit,
    cancel: CancelCheck,
) -> None:
    """Upscale one video in resumable chunks (``VideoJob``); progress in frames. On cancel the finished chunks stay
    in the work folder beside the output, and the next run of the same item continues from them."""
    finish = _finisher(job, emit)
    emit(ItemUpdate(job.item_id, ItemState.RUNNING, "reading the video"))
    try:
        _ready(job, target)
    except HATError as exc:
        finish(ItemState.FAILED, str(exc))
        return
    video: VideoJob | None = None
    note = ""
    reached = [0, 0]

    def frames(done: int, total: int) -> None:
        reached[:] = done, total
        joining = "joining the chunks" if total and done >= total else note
        emit(ItemUpdate(job.item_id, ItemState.RUNNING, joining, done, total))

    try:
        with collect_notices() as notes:
            video = VideoJob(
                job.source,
                target,
                weights_path,
                encoder=config.encoder,
                chunk_frames=config.chunk_frames,
                deinterlace=config.deinterlace,
                on_damage=config.on_damage,
                upscaler=upscaler,
                overwrite=config.output.overwrite,
                notify=lambda message: None,  # the item shows the progress and the outcome
            )
            plan = video.prepare(cancel)
            if plan.done:
                note = f"resumed: {len(plan.done)} of {len(plan.chunks)} chunks kept"
            emit(ItemUpdate(job.item_id, ItemState.RUNNING, note, plan.frames_done, plan.frames, plan.frames_done))
            result = video.run(progress=Throttle(frames), cancel=cancel)
    except Cancelled:
        kept = video.plan if video is not None else None
        if kept is not None and kept.done:
            message = f"Cancelled; {len(kept.done)} of {len(kept.chunks)} chunks are kept: Start continues from them."
        elif reached[0]:
            message = (
                f"Cancelled after {reached[0]} of {reached[1]} frames, before the first chunk of "
                f"{config.chunk_frames} frames was finished, so nothing is kept (shorter chunks keep more)."
            )
        else:
            message = "Cancelled; no output was written."
        finish(ItemState.CANCELLED, message)
    except Exception as exc:
        if not isinstance(exc, HATError | OSError | MemoryError) and not is_out_of_memory(exc):
            traceback.print_exc()
        message = describe_error(exc, upscaler.device, config.engine.tile)
        # the file itself cannot be upscaled (not a video, a format the path cannot carry): Retry cannot help;
        # damaged data stopped by the Damaged data setting can go on with the other choice
        retry = not isinstance(exc, VideoError) or isinstance(exc, DamagedVideoError)
        finish(ItemState.FAILED, message.removeprefix(f"{job.source}: "), retry=retry)  # the queue names the file
    else:
        reused = [f"{result.reused} of {result.chunks} chunks reused"] if result.reused else []
        finish(ItemState.DONE, "; ".join([*reused, *notes]), target)
