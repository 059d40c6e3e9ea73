"""Background work for the desktop app, superqt style: one ``Worker`` base (a ``QRunnable`` that owns a
``WorkerSignals`` QObject) and the tasks built on it: upscaling the queue, downloading a model, checking which
models are on this computer, making queue thumbnails, reading a video's frames for the compare view, and
explaining a point of an output (LAM).

Signals carry objects (the dataclasses of ``batch_run`` and below), never strings the window parses back. They are
emitted on the pool thread and delivered on the UI thread. ``cancel()`` only sets a ``threading.Event`` that the
work polls (the engine between tiles, the downloader between chunks).
"""

from __future__ import annotations

import contextlib
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PyQt6 import sip
from PyQt6.QtCore import QObject, QRunnable, QSize, QThreadPool, pyqtSignal
from PyQt6.QtGui import QImage

from gui.batch_run import Job, RunConfig
from gui.explain import ExplainModels, ExplainRequest, Explanation, explain
from gui.models import check_availability, unavailable_sentence
from gui.qimage import array_to_qimage
from gui.runner import EngineCache, Throttle, describe_error, run_batch
from gui.thumbnails import make_thumbnail, poster_frame
from gui.video_estimate import VideoEstimate, estimate_video, preview_video
from gui.video_frames import FramePair
from gui.wording import worded
from hat_plugin import weights
from hat_plugin.errors import Cancelled, DownloadError, HATError

__all__ = [
    "AvailabilityTask",
    "DownloadCancelled",
    "DownloadFailed",
    "DownloadProgress",
    "DownloadTask",
    "Downloaded",
    "ExplainFailed",
    "ExplainProgress",
    "EstimateFailed",
    "ExplainTask",
    "Explained",
    "FrameTask",
    "FramesFailed",
    "Thumbnail",
    "ThumbnailTask",
    "UpscaleTask",
    "PreviewDone",
    "PreviewTask",
    "VideoEstimateTask",
    "VideoFrame",
    "Worker",
    "WorkerSignals",
    "has_abandoned",
    "wait_or_abandon",
]


class WorkerSignals(QObject):
    """What a worker reports. ``reported`` carries the task's dataclasses; ``errored`` an exception that escaped the
    work (a bug); ``finished`` always comes last."""

    reported = pyqtSignal(object)
    errored = pyqtSignal(object)
    finished = pyqtSignal()


class Worker(QRunnable):
    """Runs ``work(emit, cancel)`` on a pool thread; never lets an exception escape; always emits ``finished``."""

    def __init__(self) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.signals = WorkerSignals()
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop; safe from any thread. It stops at its next check (a tile, a chunk, a file)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        """True once ``cancel`` was called."""
        return self._cancel.is_set()

    def run(self) -> None:
        """Entry point on the pool thread."""
        try:
            self.work(self.signals.reported.emit, self._cancel)
        except Exception as exc:  # a bug: report it rather than die silently on a pool thread
            traceback.print_exc()
            self.signals.errored.emit(exc)
        finally:
            self.signals.finished.emit()

    def work(self, emit: Callable[[object], None], cancel: threading.Event) -> None:
        """The task's work, on the pool thread; reports through ``emit``. Subclasses implement it."""
        raise NotImplementedError

    def detach(self) -> None:
        """Cut every connection, so a worker left running after its window closed reaches nothing."""
        self.cancel()
        for signal in (self.signals.reported, self.signals.errored, self.signals.finished):
            with contextlib.suppress(TypeError, RuntimeError):  # no connection left
                signal.disconnect()


class UpscaleTask(Worker):
    """Upscales a list of jobs one after another with one model (``runner.run_batch``); events of ``batch_run``."""

    def __init__(self, jobs: Sequence[Job], config: RunConfig, engines: EngineCache) -> None:
        super().__init__()
        self.jobs = list(jobs)
        self.config = config
        self.engines = engines

    def work(self, emit: Callable[[object], None], cancel: threading.Event) -> None:
        run_batch(self.jobs, self.config, self.engines, emit, cancel)


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes received of the model being downloaded (``total`` 0 when the size is not known)."""

    done: int
    total: int


@dataclass(frozen=True)
class Downloaded:
    """The model's verified file is in the cache."""

    name: str
    path: Path


@dataclass(frozen=True)
class DownloadFailed:
    """The download failed: one sentence, and the engine's full text for the details."""

    name: str
    reason: str
    details: str


@dataclass(frozen=True)
class DownloadCancelled:
    """The download was cancelled; the partial file is kept only under a temporary name, for resuming."""

    name: str


class DownloadTask(Worker):
    """Fetches one manifest model into the cache (the model picker's Download button)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def work(self, emit: Callable[[object], None], cancel: threading.Event) -> None:
        report = Throttle(lambda done, total: emit(DownloadProgress(done, total)))
        try:
            path = weights.fetch(self.name, progress=report, cancel=cancel)
        except Cancelled:
            emit(DownloadCancelled(self.name))
        except (HATError, OSError) as exc:
            reason = describe_error(exc)
            if isinstance(exc, DownloadError):
                reason = unavailable_sentence(weights.get_entry(self.name), exc, weights.is_offline())
            emit(DownloadFailed(self.name, reason, worded(exc)))
        else:
            emit(Downloaded(self.name, path))


class AvailabilityTask(Worker):
    """Checks which models are on this computer (``models.check_availability``: it may hash a large file)."""

    def work(self, emit: Callable[[object], None], cancel: threading.Event) -> None:
        emit(check_availability())


@dataclass(frozen=True)
class Thumbnail:
    """A small picture of ``path`` for the queue (a null image when it could not be read)."""

    path: Path
    image: QImage


class ThumbnailTask(Worker):
    """Makes thumbnails of image files one after another, stopping when cancelled."""

    def __init__(self, paths: Iterable[Path], size: QSize) -> None:
        super().__init__()
        self.paths = list(paths)
        self.size = size

    def work(self, emit: Callable[[object], None], cancel: threading.Event) -> None:
        for path in self.paths:
            if cancel.is_set():
                return
            emit(Thumbnail(path, make_thumbnail(path, self.size)))


@dataclass(frozen=True)
class VideoFrame:
    """Frame ``number`` of a compared video: the source's (``before``) and the output's (``after``)."""

    pair: FramePair
    number: int
    frames: int
    before: QImage
    after: QImage


@dataclass(frozen=True)
class FramesFailed:
    """The frames of a compared video could not be read: the engine's one-line message."""

    pair: FramePair
    message: str


class FrameTask(Worker):
    """Reads one frame of a compared video and its output (opening both on first use): frame ``number``, or the
    poster frame (the one the thumbnail shows) when None."""

    def __init__(self, pair: FramePair, number: int | None) -> None:
        super().__init__()
        self.pair = pair
        self.number = number

    def work(self, emit: Callable[[object], None], cancel: threading.Event) -> None:
        try:
            frames = self.pair.open()
            number = poster_frame(frames) if self.number is None else min(max(self.number, 0), frames - 1)
            before, after = self.pair.read(number)
        except (HATError, OSError, ValueError, MemoryError) as exc:
            emit(FramesFailed(self.pair, describe_error(exc)))
            return
        emit(VideoFrame(self.pair, number, frames, array_to_qimage(before), array_to_qimage(after)))


@dataclass(frozen=True)
class ExplainProgress:
    """Blur-path steps of the LAM map done so far."""

    done: int
    total: int


@dataclass(frozen=True)
class Explained:
    """The map is ready: the explanation and its heat layer (RGBA) as a picture to show over the comparison."""

    explanation: Explanation
    heat: QImage


@dataclass(frozen=True)
class ExplainFailed:
    """No map: the one-line reason, and whether it was the user's cancel."""

    message: str
    cancelled: bool = False


class ExplainTask(Worker):
    """Computes the LAM map of one clicked point (``explain.explain``), with step progress; cancel stops it between
    passes."""

    def __init__(self, request: ExplainRequest, models: ExplainModels) -> None:
        super().__init__()
        self.request = request
        self.models = models

    def work(self, emit: Callable[[object], None], cancel: threading.Event) -> None:
        try:
            done = explain(
                self.request, self.models, lambda step, steps: emit(ExplainProgress(step, steps or 0)), cancel
            )
        except Cancelled:
            emit(ExplainFailed("Explain cancelled.", cancelled=True))
            return
        except (HATError, OSError, ValueError, MemoryError) as exc:
            emit(ExplainFailed(f"Cannot explain: {describe_error(exc)}"))
            return
        emit(Explained(done, array_to_qimage(done.overlay)))


_ABANDONED: list[tuple[QThreadPool, list[Worker]]] = []


def wait_or_abandon(pool: QThreadPool, tasks: Iterable[Worker | None], timeout_ms: int) -> bool:
    """Wait up to ``timeout_ms`` for ``pool``'s work to end. When it does not (work stuck in a system call cannot
    be interrupted), cut the tasks' connections and let the pool run on its own: it is detached from its parent
    and never destroyed, because destroying a ``QThreadPool`` waits for its threads. Returns True when all ended."""
    if pool.waitForDone(timeout_ms):
        return True
    stuck = [task for task in tasks if task is not None]
    for task in stuck:
        task.detach()
    pool.setParent(None)
    sip.transferto(pool, None)  # type: ignore[arg-type]  # None: owned by C++ with no owner, never deleted
    _ABANDONED.append((pool, stuck))
    return False


def has_abandoned() -> bool:
    """True when work left behind at a close is still running (the process should then exit without waiting)."""
    return any(pool.activeThreadCount() > 0 for pool, _tasks in _ABANDONED)


@dataclass(frozen=True)
class EstimateFailed:
    """No estimate: the one-line reason."""

    source: Path
    message: str


class VideoEstimateTask(Worker):
    """Times a few frames of a queued video with the run's settings (``video_estimate.estimate_video``); runs on
    the work pool, so it shares the loaded model and never competes with a run."""

    def __init__(self, source: Path, config: RunConfig, engines: EngineCache) -> None:
        super().__init__()
        self.source, self.config, self.engines = source, config, engines

    def work(self, emit: Callable[[object], None], cancel: threading.Event) -> None:
        try:
            estimate: VideoEstimate = estimate_video(self.source, self.config, self.engines, cancel)
        except Cancelled:
            return
        except (HATError, OSError) as exc:
            emit(EstimateFailed(self.source, describe_error(exc)))
        else:
            emit(estimate)


@dataclass(frozen=True)
class PreviewDone:
    """The preview of a video's first seconds is written."""

    source: Path
    output: Path


class PreviewTask(Worker):
    """Upscales the first seconds of a queued video with the run's settings (``video_estimate.preview_video``) on
    the work pool; failures come as ``EstimateFailed``."""

    def __init__(self, source: Path, config: RunConfig, engines: EngineCache) -> None:
        super().__init__()
        self.source, self.config, self.engines = source, config, engines

    def work(self, emit: Callable[[object], None], cancel: threading.Event) -> None:
        try:
            output = preview_video(self.source, self.config, self.engines, cancel=cancel)
        except Cancelled:
            return
        except (HATError, OSError) as exc:
            emit(EstimateFailed(self.source, describe_error(exc)))
        else:
            emit(PreviewDone(self.source, output))
