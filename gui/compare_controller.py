"""The window's comparison: which finished item the Compare dock shows, Previous/Next through the finished items,
a video's frames read one at a time on a pool of their own (only the latest request waits while one is read), and
what Explain (``explainer.Explainer``) works on."""

from __future__ import annotations

import dataclasses

from PyQt6.QtCore import QObject, Qt, QThreadPool
from PyQt6.QtWidgets import QDockWidget

from gui.batch_run import RunConfig
from gui.compare_view import ComparePanel
from gui.explain import ExplainSource
from gui.explainer import Explainer
from gui.queue_model import ItemState
from gui.runner import describe_error
from gui.video_frames import FramePair
from gui.window_parts import WindowParts, one_thread_pool
from gui.worker import FramesFailed, FrameTask, VideoFrame, wait_or_abandon
from hat_plugin import images
from hat_plugin.errors import HATError, OptionError

__all__ = ["CompareController"]


class CompareController(QObject):
    """Feeds ``panel`` (shown in ``dock``) with the before and after of the compared item."""

    def __init__(self, parts: WindowParts, panel: ComparePanel, dock: QDockWidget) -> None:
        super().__init__(parts.window)
        self.parts = parts
        self.panel = panel
        self.dock = dock
        self.frames_pool: QThreadPool = one_thread_pool(parts.window)
        self.item: int | None = None
        """The id of the compared queue item."""
        self.video: FramePair | None = None
        """The finished video in the compare view (its frames are read on ``frames_pool``)."""
        self.frame_task: FrameTask | None = None
        self._frame_wanted: int | None = None
        self._frame_pending = False
        panel.previous_requested.connect(lambda: self.step(-1))
        panel.next_requested.connect(lambda: self.step(1))
        panel.close_requested.connect(self.close)
        panel.frame_requested.connect(self.request_frame)
        self.explainer = Explainer(panel, self.explain_source, parts.window)

    def compare_selected(self) -> bool:
        """Show the before/after view for the first selected finished item."""
        for item_id in self.parts.view.selected_ids():
            if self.parts.queue.get(item_id).state is ItemState.DONE:
                return self.open(item_id)
        self.parts.show("Select a finished item to compare.", "info")
        return False

    def _done_ids(self) -> list[int]:
        return [i.id for i in self.parts.queue.items if i.state is ItemState.DONE and i.output is not None]

    def open(self, item_id: int) -> bool:
        """Show the input and the output of a finished item side by side, in the Compare dock (for a video, a frame
        of each, read in the background: the frame slider chooses which)."""
        item = self.parts.queue.find(item_id)
        if item is None or item.state is not ItemState.DONE or item.output is None:
            return False
        title = self.parts.table_model.shown_name(item)
        self.explainer.clear()
        if item.is_video:
            self._set_video(FramePair(item.source, item.output), title)
        else:
            try:
                self.panel.show_files(item.source, item.output, title)
            except (HATError, ValueError, OSError) as exc:
                self.parts.show(f"Cannot compare: {describe_error(exc)}", "error")
                return False
            self._set_video(None)
        first_time = not self.dock.isVisible()
        self.item = item_id
        done = self._done_ids()
        position = done.index(item_id)
        self.panel.set_neighbours(position > 0, position < len(done) - 1)
        self.dock.setWindowTitle(f"Compare — {item.source.name}")
        self.dock.show()
        self.dock.raise_()
        window = self.parts.window
        if first_time and not self.dock.isFloating():
            window.resizeDocks([self.dock], [max(240, int(window.height() * 0.55))], Qt.Orientation.Vertical)
        self.panel.canvas.setFocus()
        return True

    def step(self, step: int) -> bool:
        """Show the previous (-1) or next (+1) finished item in the comparison."""
        done = self._done_ids()
        if self.item not in done:
            return False
        position = done.index(self.item) + step
        if not 0 <= position < len(done):
            return False
        self.parts.view.selectRow(self.parts.queue.row_of(done[position]))
        return self.open(done[position])

    def close(self) -> None:
        """Hide the comparison (Esc)."""
        self.dock.hide()
        self.item = None
        self.explainer.clear()
        self._set_video(None)
        self.parts.view.setFocus()

    def forget_removed(self) -> None:
        """Close the comparison when its item left the queue."""
        if self.item is not None and self.parts.queue.find(self.item) is None:
            self.close()

    def _set_video(self, pair: FramePair | None, title: str = "") -> None:
        """Compare the frames of ``pair`` from now on (its poster frame first), or no video (None)."""
        previous = self.video
        self.video = pair
        if previous is not None and previous is not pair:
            previous.close()  # waits for a frame being read, at most one decode
        if pair is not None:
            self.panel.begin_video(title, pair.output)
            self._frame_pending = False
            self.request_frame(None)

    def request_frame(self, number: int | None) -> None:
        """Show frame ``number`` of the compared video (None: its poster frame). Frames are read one at a time off
        the UI thread; while one is read, only the latest request waits (dragging the slider skips frames)."""
        pair = self.video
        if pair is None:
            return
        self.explainer.clear()
        if self.frame_task is not None:
            self._frame_wanted, self._frame_pending = number, True
            return
        task = FrameTask(pair, number)
        task.signals.reported.connect(self._on_frame)
        task.signals.finished.connect(self._on_frame_task_done)
        self.frame_task = task
        self.frames_pool.start(task)

    def _on_frame(self, event: object) -> None:
        if isinstance(event, VideoFrame) and event.pair is self.video:
            self.panel.show_frame(event.number, event.frames, event.before, event.after)
        elif isinstance(event, FramesFailed) and event.pair is self.video:
            self.panel.video_failed(event.message)
            self.parts.show(f"Cannot compare: {event.message}", "error")

    def _on_frame_task_done(self) -> None:
        self.frame_task = None
        if self._frame_pending:
            self._frame_pending = False
            self.request_frame(self._frame_wanted)

    def explain_source(self) -> ExplainSource | str:
        """What Explain works on: the compared item's input (for a video, the source frame shown), its output and
        the model that made it (the settings' model for an item restored without one); or why there is nothing to
        explain."""
        item = self.parts.queue.find(self.item) if self.item is not None else None
        if item is None or item.output is None:
            return "Open a finished item in the comparison first."
        try:
            config = RunConfig.from_settings(self.parts.panel.settings())
        except OptionError as exc:
            return f"Cannot explain: {describe_error(exc)}"
        if item.model is not None:
            config = dataclasses.replace(config, model=str(item.model), from_file=True)
        pair, frame, source = self.video, self.panel.frame, item.source
        if item.is_video:
            if pair is None or frame < 0:
                return "Wait for the frame to show, then click it."
            return ExplainSource(lambda: pair.read(frame)[0], item.output, config)
        return ExplainSource(lambda: images.read_image(source).pixels, item.output, config)

    def shutdown(self, wait_ms: int) -> None:
        """Closing: stop Explain, wait for the frame being read at most ``wait_ms``, then let go of the video."""
        self.explainer.shutdown(wait_ms)
        self._frame_pending = False
        if wait_or_abandon(self.frames_pool, [self.frame_task], wait_ms):
            self._set_video(None)
