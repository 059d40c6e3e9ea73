"""Background work for the desktop app: upscaling queue items and downloading models off the UI thread.

Each task is a ``QRunnable`` that owns a ``QObject`` of signals (the superqt worker pattern). Signals are emitted
from the pool thread and delivered on the UI thread. Cancel only sets a ``threading.Event``; the engine and the
downloader check it between tiles and chunks and raise ``hat_plugin.Cancelled``.
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from PyQt6.QtCore import QObject, QRunnable, pyqtSignal

import hat_plugin
from gui.queue_model import ItemState, output_path
from gui.settings import Settings
from hat_plugin import batch, images, weights
from hat_plugin.errors import is_out_of_memory

_EMIT_INTERVAL_S = 0.05


@dataclass(frozen=True)
class Job:
    """One queue item as the worker sees it (a snapshot, so the UI may edit the queue meanwhile)."""

    item_id: int
    source: Path
    root: Path | None = None


@dataclass(frozen=True)
class RunConfig:
    """The settings a run uses, frozen when it starts."""

    model: str
    """A manifest model name, or a weights file path when ``from_file``."""
    from_file: bool = False
    device: str = "auto"
    precision: str = "auto"
    tile: int = 0
    output_dir: Path | None = None
    suffix: str = "_x{scale}"
    format: str = "same"
    quality: int = 95
    overwrite: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> RunConfig:
        """The run configuration for what the settings panel shows."""
        return cls(
            model=settings.model_source,
            from_file=settings.use_weights_file,
            device=settings.device,
            precision=settings.precision,
            tile=settings.tile,
            output_dir=settings.output_folder,
            suffix=settings.suffix,
            format=settings.format,
            quality=settings.quality,
            overwrite=settings.overwrite,
        )

    @property
    def model_label(self) -> str:
        """The model's short name for output suffixes."""
        return Path(self.model).stem if self.from_file else self.model


def describe_error(exc: BaseException) -> str:
    """A one-line message for the user that names the problem and what to do about it."""
    if is_out_of_memory(exc):
        return "Out of memory: choose a smaller tile size (or the CPU device) and retry."
    if isinstance(exc, hat_plugin.HATError):
        return str(exc)
    if isinstance(exc, OSError):
        where = exc.filename or ""
        if exc.errno == errno.ENOSPC:
            return f"Disk full while writing {where}: free some space and retry."
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"Cannot write to {where}: choose another output folder."
        return f"{exc.strerror or exc}: {where}".rstrip(": ")
    return f"Unexpected error ({type(exc).__name__}): {exc}"


class _Throttle:
    """Passes progress on at most every ``_EMIT_INTERVAL_S`` seconds, and always the last step.

    An unknown total (``None``, a download without a length) is passed on as 0.
    """

    def __init__(self, emit: Callable[[int, int], None]) -> None:
        self._emit = emit
        self._last = 0.0

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        total = total or 0
        if (total and done >= total) or now - self._last >= _EMIT_INTERVAL_S:
            self._last = now
            self._emit(int(done), int(total))


class EngineCache:
    """Keeps the last loaded ``Upscaler`` so runs with unchanged settings do not load the model again."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._upscaler: hat_plugin.Upscaler | None = None

    def get(self, weights_path: str, config: RunConfig) -> hat_plugin.Upscaler:
        """The engine for these weights and settings, building it only when they changed."""
        key = (weights_path, Path(weights_path).stat().st_mtime_ns, config.device, config.precision, config.tile)
        if key != self._key or self._upscaler is None:
            self._upscaler = None
            self._upscaler = hat_plugin.Upscaler(
                weights_path, device=config.device, precision=config.precision, tile=config.tile
            )
            self._key = key
        return self._upscaler


class RunSignals(QObject):
    """What an ``UpscaleTask`` reports; ids are ``QueueItem.id``."""

    state_changed = pyqtSignal(int, str, str)
    """id, ItemState value (downloading model / running), message."""
    progress = pyqtSignal(int, "qlonglong", "qlonglong")
    """id, done, total (bytes while downloading, tiles while running; total 0 when unknown)."""
    item_finished = pyqtSignal(int, str, str, str, float)
    """id, ItemState value (done / skipped / failed / cancelled), message, output path or "", seconds."""
    notice = pyqtSignal(str)
    """Something the user should know about the whole run (e.g. a precision fallback)."""
    stopped = pyqtSignal(str)
    """The run stopped early because the model could not be fetched or loaded; the reason."""
    finished = pyqtSignal()


class UpscaleTask(QRunnable):
    """Upscales a list of jobs one after another with one model, stopping early when cancelled."""

    def __init__(self, jobs: list[Job], config: RunConfig, engines: EngineCache) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.jobs = jobs
        self.config = config
        self.engines = engines
        self.signals = RunSignals()
        self._cancel = threading.Event()
        self._claims = batch.OutputClaims([])
        self._outputs: set[Path] = set()

    def cancel(self) -> None:
        """Ask the run to stop; safe from any thread. The current item stops within a tile."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """True once ``cancel`` was called."""
        return self._cancel.is_set()

    def run(self) -> None:
        """Entry point on the pool thread: never lets an exception escape, always emits ``finished``."""
        try:
            self._run()
        except Exception as exc:  # a bug: report it rather than die silently on a pool thread
            traceback.print_exc()
            self.signals.stopped.emit(describe_error(exc))
        finally:
            self.signals.finished.emit()

    def _run(self) -> None:
        upscaler = None
        for job in self.jobs:
            if self._cancel.is_set():
                return
            if upscaler is None:
                upscaler = self._prepare(job)
                if upscaler is None:
                    return
                self._plan(upscaler.scale)
            self._process(job, upscaler)

    def _plan(self, scale: int) -> None:
        """As the CLI does: queued files that are outputs of other queued files are left out, and the rest may
        not write over each other or over an input."""
        self._outputs = set()
        for job in self.jobs:
            with contextlib.suppress(hat_plugin.HATError):  # reported on the item itself when it runs
                self._outputs.add(self._output(job, scale).resolve())
        self._claims = batch.OutputClaims(
            [job.source for job in self.jobs if job.source.resolve() not in self._outputs]
        )

    def _output(self, job: Job, scale: int) -> Path:
        cfg = self.config
        return output_path(job.source, job.root, cfg.output_dir, cfg.suffix, cfg.format, scale, cfg.model_label)

    def _prepare(self, job: Job) -> hat_plugin.Upscaler | None:
        """Fetch the model if needed and load it; on failure report it on ``job`` and stop the run."""
        started = time.monotonic()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                path = self._weights_path(job)
                upscaler = self.engines.get(path, self.config)
            if caught:
                self.signals.notice.emit(_notes(caught))
            return upscaler
        except hat_plugin.Cancelled:
            self._finish(job, ItemState.CANCELLED, "Cancelled while fetching the model.", started)
        except Exception as exc:
            message = describe_error(exc)
            self._finish(job, ItemState.FAILED, message, started)
            self.signals.stopped.emit(message)
        return None

    def _weights_path(self, job: Job) -> str:
        if self.config.from_file:
            return self.config.model
        if not weights.is_cached(self.config.model):
            self.signals.state_changed.emit(
                job.item_id, ItemState.DOWNLOADING.value, f"Downloading {self.config.model}"
            )
        report = _Throttle(lambda done, total: self.signals.progress.emit(job.item_id, done, total))
        return str(weights.fetch(self.config.model, progress=report, cancel=self._cancel))

    def _process(self, job: Job, upscaler: hat_plugin.Upscaler) -> None:
        """Upscale one image and write it atomically; every failure is reported on the item."""
        started = time.monotonic()
        try:
            target = self._target(job, upscaler.scale)
        except (hat_plugin.HATError, OSError) as exc:
            self._finish(job, ItemState.FAILED, describe_error(exc), started)
            return
        if job.source.resolve() in self._outputs:
            self._finish(job, ItemState.SKIPPED, "It is the output of another image in this run.", started)
            return
        conflict = self._claims.conflict(job.source, target)
        if conflict:
            self._finish(job, ItemState.FAILED, conflict[0].upper() + conflict[1:] + ".", started)
            return
        if target.exists() and not self.config.overwrite:
            self._finish(job, ItemState.SKIPPED, f"{target.name} already exists (overwrite is off).", started)
            return
        self.signals.state_changed.emit(job.item_id, ItemState.RUNNING.value, "")
        report = _Throttle(lambda done, total: self.signals.progress.emit(job.item_id, done, total))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                image = images.read_image(job.source)
                pixels = upscaler.upscale(image.pixels, progress=report, cancel=self._cancel)
                images.write_image(target, replace(image, pixels=pixels), quality=self.config.quality)
        except hat_plugin.Cancelled:
            self._finish(job, ItemState.CANCELLED, "Cancelled; no output was written.", started)
        except Exception as exc:
            if not isinstance(exc, hat_plugin.HATError | OSError | MemoryError):
                traceback.print_exc()
            self._finish(job, ItemState.FAILED, describe_error(exc), started)
        else:
            self._finish(job, ItemState.DONE, _notes(caught), started, target)

    def _target(self, job: Job, scale: int) -> Path:
        """The output path, with its folder created, checked before any pixels are computed."""
        target = self._output(job, scale)
        if target.resolve() == job.source.resolve():
            raise hat_plugin.OutputError("The output would replace the input: change the suffix or the output folder.")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise hat_plugin.OutputError(
                f"Cannot create the output folder {target.parent} ({exc.strerror or exc}): choose another one."
            ) from exc
        return target

    def _finish(self, job: Job, state: ItemState, message: str, started: float, target: Path | None = None) -> None:
        seconds = time.monotonic() - started
        self.signals.item_finished.emit(job.item_id, state.value, message, str(target or ""), seconds)


def _notes(caught: list[warnings.WarningMessage]) -> str:
    """The distinct warning messages, joined for display."""
    return "; ".join(dict.fromkeys(str(w.message) for w in caught))


class DownloadSignals(QObject):
    """What a ``DownloadTask`` reports."""

    progress = pyqtSignal("qlonglong", "qlonglong")
    """bytes done, bytes total (0 when unknown)."""
    succeeded = pyqtSignal(str)
    """the verified local file."""
    failed = pyqtSignal(str)
    """the reason, for the user."""
    cancelled = pyqtSignal()


class DownloadTask(QRunnable):
    """Fetches one manifest model into the cache (from the settings panel's Download button)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.name = name
        self.signals = DownloadSignals()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop the download at the next chunk; the partial file is not kept under the final name."""
        self._cancel.set()

    def run(self) -> None:
        """Entry point on the pool thread."""
        try:
            path = weights.fetch(self.name, progress=_Throttle(self.signals.progress.emit), cancel=self._cancel)
        except hat_plugin.Cancelled:
            self.signals.cancelled.emit()
        except Exception as exc:
            if not isinstance(exc, hat_plugin.HATError | OSError):
                traceback.print_exc()
            self.signals.failed.emit(describe_error(exc))
        else:
            self.signals.succeeded.emit(str(path))
