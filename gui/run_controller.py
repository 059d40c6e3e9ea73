"""The window's runs: Start, Cancel and Retry, the ``UpscaleTask`` on the one-thread work pool (shared with model
downloads), the run's events applied to the queue through ``RunTracker``, and the overall progress bar with the
time left."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from PyQt6.QtCore import QObject, QThreadPool, QTimer, QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices
from PyQt6.QtWidgets import QLabel, QProgressBar

from gui.batch_run import ItemFinished, ItemUpdate, Job, ModelChosen, RunConfig, RunEvent, RunStopped, RunTracker
from gui.formatting import format_seconds
from gui.message_bar import Action
from gui.models import alternative_sentence, friendly_name
from gui.queue_model import ItemState, QueueItem, describe_items
from gui.queue_view import PROGRESS
from gui.runner import EngineCache, describe_error
from gui.settings import Settings
from gui.video_estimate import PREVIEW_SECONDS, VideoEstimate
from gui.window_parts import WindowParts
from gui.worker import EstimateFailed, PreviewDone, PreviewTask, UpscaleTask, VideoEstimateTask, Worker
from hat_plugin.errors import OptionError

__all__ = ["PROGRESS_STEPS", "RunController"]

PROGRESS_STEPS = 1000


class RunController(QObject):
    """Runs the queue on ``pool``; ``save_queue`` is called after each run so a restart shows what happened."""

    finished = pyqtSignal()
    """A run ended (all items processed, cancelled, or stopped by a model problem)."""
    changed = pyqtSignal()
    """The run started, an item finished, or cancelling began: what the window enables may differ."""

    def __init__(self, parts: WindowParts, pool: QThreadPool, save_queue: Callable[[], None]) -> None:
        super().__init__(parts.window)
        self.parts = parts
        self.pool = pool
        self.save_queue = save_queue
        self.engines = EngineCache()
        self.task: UpscaleTask | None = None
        self.tracker: RunTracker | None = None
        self.estimating: VideoEstimateTask | PreviewTask | None = None
        self.closing = False
        """Set when the window closes: the run's end then changes nothing else."""
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(0)
        self.time_left = QLabel()
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self.update_overall)
        self._busy_ticker = QTimer(self)
        self._busy_ticker.setInterval(80)
        self._busy_ticker.timeout.connect(self._repaint_busy)

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self.task is not None

    @property
    def cancelling(self) -> bool:
        """True from Cancel until the run has stopped."""
        return self.tracker is not None and self.tracker.cancelled and self.task is not None

    def start(self) -> bool:
        """Process the queued and cancelled items in the background; False (with a message) when it cannot."""
        if self.task is not None:
            return False
        queue = self.parts.queue
        items = queue.startable()
        if not items:
            failed = any(item.state is ItemState.FAILED and item.retry for item in queue.items)
            hint = "use Retry failed to try the failed ones again" if failed else "add images or videos first"
            self.parts.show(f"Nothing to process: {hint}.", "info")
            return False
        settings = self.parts.panel.settings()
        problem = _model_problem(settings)
        if problem:
            self.parts.show(problem, "error")
            return False
        try:
            config = RunConfig.from_settings(settings)
        except OptionError as exc:
            self.parts.show(f"Cannot start: {describe_error(exc)}", "error")
            return False
        queue.requeue(item for item in items if item.state is ItemState.CANCELLED)
        self._run(items, config)
        return True

    def _run(self, items: list[QueueItem], config: RunConfig) -> None:
        task = UpscaleTask([Job(i.id, i.source, i.root) for i in items], config, self.engines)
        task.signals.reported.connect(self._on_event)
        task.signals.errored.connect(self._on_errored)
        task.signals.finished.connect(self._on_finished)
        self.task = task
        self.tracker = RunTracker(items)
        for item in items:
            self.parts.table_model.changed(item.id)
        self.parts.message_bar.dismiss()
        self.parts.panel.lock(True)
        self.parts.status(f"Processing {describe_items(items)}…")
        self._ticker.start()
        self._busy_ticker.start()
        self.changed.emit()
        self.update_overall()
        self.pool.start(task)

    def cancel(self) -> None:
        """Stop the run: the current image stops within a tile and writes nothing, a video between frames keeping
        its finished chunks (Start continues from them); the rest stay queued."""
        if self.task is not None and self.tracker is not None:
            self.tracker.cancelled = True
            self.task.cancel()
            self.parts.status("Cancelling…")
            self.changed.emit()

    def retry_failed(self) -> None:
        """Queue the failed items again and start."""
        self.retry([item.id for item in self.parts.queue.items if item.state is ItemState.FAILED and item.retry])

    def retry(self, item_ids: Sequence[int]) -> None:
        """Queue the given finished items (failed, cancelled, skipped) again and start, or join the next run."""
        wanted = set(item_ids)
        queue = self.parts.queue
        again = queue.requeue(item for item in queue.items if item.id in wanted and item.state is not ItemState.DONE)
        for item in again:
            self.parts.table_model.changed(item.id)
        self.changed.emit()
        if again and self.task is None:
            self.start()

    def estimate(self, item_ids: Sequence[int]) -> bool:
        """Time a few frames of the first of ``item_ids`` that is a video, with the settings a run would use, and
        say how long the whole video would take (in the background; the answer comes in the message bar)."""
        return self._try_video(item_ids, VideoEstimateTask, "Timing a few frames of")

    def preview(self, item_ids: Sequence[int]) -> bool:
        """Upscale the first seconds of the first of ``item_ids`` that is a video, with the settings a run would
        use, so its quality can be judged before the whole video runs (the file is offered when written)."""
        return self._try_video(item_ids, PreviewTask, f"Upscaling the first {PREVIEW_SECONDS} s of")

    def _try_video(self, item_ids: Sequence[int], kind: type[VideoEstimateTask | PreviewTask], doing: str) -> bool:
        queue = self.parts.queue
        video = next((item for item in map(queue.find, item_ids) if item is not None and item.is_video), None)
        if video is None:
            self.parts.show("Select a video in the queue first.", "info")
            return False
        try:
            config = RunConfig.from_settings(self.parts.panel.settings())
        except OptionError as exc:
            self.parts.show(f"Cannot start: {describe_error(exc)}", "error")
            return False
        task = kind(video.source, config, self.engines)
        task.signals.reported.connect(self._on_estimate)
        task.signals.finished.connect(lambda: setattr(self, "estimating", None))
        self.estimating = task
        self.parts.status(f"{doing} {video.source.name}…")
        self.pool.start(task)
        return True

    def _on_estimate(self, event: object) -> None:
        if isinstance(event, VideoEstimate):
            self.parts.show(f"{event.sentence()} Start runs it; Cancel keeps the finished chunks.", "info")
        elif isinstance(event, PreviewDone):
            output = event.output
            self.parts.show(
                f"The first {PREVIEW_SECONDS} s of {event.source.name} upscaled: {output.name}.",
                "info",
                [("Open", lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(output))))],
            )
        elif isinstance(event, EstimateFailed):
            self.parts.show(f"Cannot do that with {event.source.name}: {event.message}", "error")
        self.parts.status("")

    def busy_ids(self) -> set[int]:
        """The items of the run in progress (they cannot be removed)."""
        return {i.id for i in self.tracker.items} if self.tracker is not None and self.task is not None else set()

    def use_model(self, name: str) -> None:
        """Switch the Model box to ``name`` (as the user would) and start again."""
        self.parts.panel.models.select_model(name)
        self.start()

    def shutdown(self) -> list[Worker | None]:
        """Closing: cancel the run; returns the work to wait for."""
        self.closing = True
        self.cancel()
        if self.estimating is not None:
            self.estimating.cancel()
        return [self.task, self.estimating]

    def abandon(self) -> None:
        """Closing, after waiting: whatever did not finish counts as cancelled in the saved queue."""
        if self.tracker is not None:
            self.tracker.cancelled = True
            self.tracker.end()

    def _on_event(self, event: RunEvent) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        item = tracker.apply(event)
        if isinstance(event, ItemUpdate | ItemFinished | RunStopped):
            self.update_overall()
        if item is not None:
            self.parts.table_model.changed(item.id)
            if isinstance(event, ItemFinished):
                self.changed.emit()
        elif isinstance(event, ModelChosen):
            model = event.why or event.label  # the engine's sentence starts with the model's name
            where = f"on {event.device} in {event.precision}"
            self.parts.status(f"Processing with {model}, ×{event.scale}, RGB mean {event.mean}, {where}")
            if event.notes:
                self.parts.show("; ".join(event.notes), "info")
        elif isinstance(event, RunStopped):
            self._on_stopped(event)

    def _on_stopped(self, event: RunStopped) -> None:
        for item in self.tracker.items if self.tracker is not None else []:
            self.parts.table_model.changed(item.id)
        picker = self.parts.panel.models
        picker.error.dismiss()  # one message: this one
        actions: list[Action] = []
        reason = event.reason
        alternative = picker.alternative_to(event.model) if event.model else None
        if alternative is not None:
            entry = picker.entry(event.model)
            reason += " " + alternative_sentence(alternative, entry.scale if entry else alternative.scale)
            label = friendly_name(alternative, size=False)
            actions.append((f"Use {label}", lambda: self.use_model(alternative.name)))
        actions.append(("Retry", self.start))
        self.parts.show(reason, "error", actions, event.details)

    def _on_errored(self, exc: object) -> None:
        text = describe_error(exc) if isinstance(exc, BaseException) else str(exc)
        self.parts.show(f"The run stopped because of an unexpected error: {text}", "error", [("Retry", self.start)])

    def _on_finished(self) -> None:
        tracker = self.tracker
        self.task = None
        self._ticker.stop()
        self._busy_ticker.stop()
        self.parts.panel.lock(False)
        if tracker is not None:
            for item in tracker.end():
                self.parts.table_model.changed(item.id)
            if tracker.downloaded:
                self.parts.panel.models.check_availability()
        if self.closing:
            return
        self.save_queue()
        follow_up = tracker is not None and not tracker.cancelled and tracker.stopped is None
        if follow_up and self.parts.queue.queued() and self.start():
            return
        self.changed.emit()
        self.update_overall()
        self.time_left.clear()
        if tracker is not None:
            self.parts.status(tracker.summary())
        self.finished.emit()

    def reset_overall(self) -> None:
        """Between runs, once items are added or removed: the bar speaks of the next run, not the last."""
        if self.task is None:
            self.progress.setRange(0, PROGRESS_STEPS)
            self.progress.setValue(0)
            waiting = self.parts.queue.startable()
            self.progress.setFormat(f"{describe_items(waiting)} to do" if waiting else "")
            self.time_left.clear()

    def update_overall(self) -> None:
        """The overall bar: finished work of the run (busy while nothing is measured yet) and the time left."""
        tracker = self.tracker
        if tracker is None:
            self.progress.setRange(0, PROGRESS_STEPS)
            self.progress.setValue(0)
            return
        fraction = tracker.fraction()
        counts = tracker.counts()
        finished = counts[ItemState.DONE] + counts[ItemState.SKIPPED]
        if fraction is None and self.task is not None:
            self.progress.setRange(0, 0)  # busy: the model loads or the first tile is being computed
        else:
            self.progress.setRange(0, PROGRESS_STEPS)
            self.progress.setValue(round(PROGRESS_STEPS * (fraction or 0.0)))
        self.progress.setFormat(f"{finished} of {len(tracker.items)} done")
        if self.task is not None:
            current = tracker.current
            if current is not None and current.state in (ItemState.LOADING, ItemState.DOWNLOADING):
                self.time_left.setText(current.state.value + "…")
            else:
                estimate = tracker.time_left()
                self.time_left.setText(f"{format_seconds(estimate)} left" if estimate is not None else "estimating…")

    def _repaint_busy(self) -> None:
        current = self.tracker.current if self.tracker is not None else None
        if current is not None and current.total == 0:
            model = self.parts.table_model
            index = model.index(self.parts.queue.row_of(current.id), PROGRESS)
            model.dataChanged.emit(index, index)


def _model_problem(settings: Settings) -> str | None:
    """Why the chosen weights file cannot be used, if it cannot."""
    if settings.use_weights_file:
        if not settings.weights_file:
            return "Choose a weights file (.pth or .safetensors) in the Model box, or pick a listed model."
        if not Path(settings.weights_file).is_file():
            return f"Weights file not found: {settings.weights_file}. Choose an existing file."
    return None
