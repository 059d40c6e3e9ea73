"""Before/after comparison around the canvas (``compare_canvas.CompareCanvas``): ``ComparePanel`` is docked in the main
window (it can float as its own window); it steps through the finished items and closes with Esc. For a video it
shows source frame k beside output frame k, with a frame slider and previous/next frame; the window reads the
frames off the UI thread and hands them to ``show_frame``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import (
    QAction,
    QImage,
    QKeySequence,
    QShortcut,
)
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolBar, QToolButton, QVBoxLayout, QWidget

from gui.compare_canvas import SPLIT_STEPS, ZOOM_STEP, CompareCanvas
from gui.explain_bar import ExplainBar
from gui.qimage import array_to_qimage
from hat_plugin import images


class ComparePanel(QWidget):
    """The comparison canvas with its tools: previous/next finished item, fit, 1:1, zoom, smooth or nearest
        "before", a split slider, a close button (Esc or Ctrl+W also close it), for videos a frame bar, and Explain mode
    (a click on the output asks for its LAM map, shown over the input)."""

    previous_requested = pyqtSignal()
    next_requested = pyqtSignal()
    close_requested = pyqtSignal()
    frame_requested = pyqtSignal(int)
    """A video's frame was asked for (the frame slider, or previous/next frame)."""
    explain_requested = pyqtSignal(int, int)
    """Explain mode: the output pixel ``(x, y)`` was clicked."""
    explain_toggled = pyqtSignal(bool)
    """Explain mode was turned on or off."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = CompareCanvas()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SPLIT_STEPS)
        self.slider.setValue(SPLIT_STEPS // 2)
        self.slider.setToolTip("Drag to move the split between input and output")
        self.zoom_label = QLabel()
        self.title = QLabel()
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.info = QLabel()
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        toolbar = QToolBar()
        toolbar.setIconSize(QSize(16, 16))
        self.previous_action = self._action(
            toolbar,
            "◀",
            QKeySequence.StandardKey.MoveToPreviousPage,
            self.previous_requested.emit,
            "The previous finished item (Page Up)",
        )
        self.next_action = self._action(
            toolbar,
            "▶",
            QKeySequence.StandardKey.MoveToNextPage,
            self.next_requested.emit,
            "The next finished item (Page Down)",
        )
        toolbar.addSeparator()
        self.fit_action = self._action(toolbar, "Fit", "F", self.canvas.fit, "Fit the image in the window")
        self.actual_action = self._action(toolbar, "1:1", "1", self.canvas.actual_pixels, "One pixel per screen pixel")
        self._action(toolbar, "+", QKeySequence.StandardKey.ZoomIn, lambda: self.canvas.zoom_by(ZOOM_STEP), "Zoom in")
        self._action(
            toolbar, "−", QKeySequence.StandardKey.ZoomOut, lambda: self.canvas.zoom_by(1 / ZOOM_STEP), "Zoom out"
        )
        self.smooth_action = self._action(
            toolbar, "Smooth", "S", lambda: None, "Enlarge the input smoothly instead of nearest neighbour"
        )
        self.smooth_action.setCheckable(True)
        self.smooth_action.toggled.connect(self.canvas.set_smooth)
        self.explain_action = self._action(
            toolbar,
            "Explain",
            "E",
            lambda: None,
            "Explain mode (E): click a point of the output to see which input pixels the model used there (LAM)",
        )
        self.explain_action.setCheckable(True)
        self.explain_action.toggled.connect(self._on_explain_toggled)
        toolbar.addSeparator()
        toolbar.addWidget(self.zoom_label)
        self.toolbar = toolbar
        spacer = QWidget()
        spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        toolbar.addWidget(spacer)
        self.close_action = self._action(
            toolbar, "Close", QKeySequence.StandardKey.Close, self.close_requested.emit, "Close the comparison (Esc)"
        )
        escape = QShortcut(QKeySequence(Qt.Key.Key_Escape), self, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        escape.activated.connect(self.close_requested.emit)
        self.frames = 0
        """Frames of the video shown (0: an image is shown)."""
        self.frame = -1
        """The video frame on the canvas (-1: none yet)."""
        self.frame_bar = self._build_frame_bar()
        self.explain_bar = ExplainBar()
        self.explain_bar.hide()
        self._splits: dict[str, float] = {}
        """Where the user left the split for each compared file (a fraction of its picture)."""
        self._split_key = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(toolbar)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.frame_bar)
        layout.addWidget(self.explain_bar)
        layout.addWidget(self.slider)
        info_row = QHBoxLayout()
        info_row.addWidget(self.title, 1)
        info_row.addWidget(self.info, 3)
        layout.addLayout(info_row)
        self.slider.valueChanged.connect(lambda value: self.canvas.set_split(value / SPLIT_STEPS))
        self.canvas.split_changed.connect(self._on_split)
        self.explain_bar.opacity.valueChanged.connect(lambda value: self.canvas.set_overlay_opacity(value / 100))
        self.canvas.view_changed.connect(self._show_zoom)
        self.canvas.point_clicked.connect(lambda point: self.explain_requested.emit(int(point.x()), int(point.y())))

    def _build_frame_bar(self) -> QWidget:
        """Frame slider, previous/next frame (, and .) and "frame k of n": shown for videos only."""
        bar = QWidget()
        row = QHBoxLayout(bar)
        row.setContentsMargins(4, 0, 4, 0)
        self.frame_slider = QSlider(Qt.Orientation.Horizontal)
        self.frame_slider.setToolTip("Drag to choose the frame (source frame k beside output frame k)")
        self.frame_label = QLabel()
        self.previous_frame_action = QAction("◀ Frame", self)
        self.previous_frame_action.setShortcut(QKeySequence(","))
        self.previous_frame_action.setToolTip("The previous frame (,)")
        self.previous_frame_action.triggered.connect(lambda _checked=False: self.step_frame(-1))
        self.next_frame_action = QAction("Frame ▶", self)
        self.next_frame_action.setShortcut(QKeySequence("."))
        self.next_frame_action.setToolTip("The next frame (.)")
        self.next_frame_action.triggered.connect(lambda _checked=False: self.step_frame(1))
        for action in (self.previous_frame_action, self.next_frame_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(action)
        previous, following = QToolButton(), QToolButton()
        previous.setDefaultAction(self.previous_frame_action)
        following.setDefaultAction(self.next_frame_action)
        row.addWidget(previous)
        row.addWidget(self.frame_slider, 1)
        row.addWidget(following)
        row.addWidget(self.frame_label)
        self.frame_slider.valueChanged.connect(self._on_frame_slider)
        bar.hide()
        return bar

    def _action(
        self,
        toolbar: QToolBar,
        text: str,
        shortcut: str | QKeySequence.StandardKey,
        slot: Callable[[], object],
        tip: str = "",
    ) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.setToolTip(tip or text)
        action.triggered.connect(lambda _checked=False: slot())
        toolbar.addAction(action)
        self.addAction(action)
        return action

    def set_neighbours(self, has_previous: bool, has_next: bool) -> None:
        """Enable the previous/next buttons as there are finished items before/after the one shown."""
        self.previous_action.setEnabled(has_previous)
        self.next_action.setEnabled(has_next)

    def show_pair(self, before: QImage, after: QImage, title: str = "") -> None:
        """Compare two images already in memory."""
        self._forget_explanation()
        keep_view = not self.canvas.after.isNull() and self.canvas.after.size() == after.size()
        zoom, offset, fitted = self.canvas.zoom, self.canvas.offset, self.canvas.fitted
        self.canvas.set_images(before, after)
        if keep_view and not fitted:  # stepping through same-sized results keeps the zoom and the place
            self.canvas.zoom_to(zoom, QPointF(0, 0))
            self.canvas.pan_by(offset - self.canvas.offset)
        scale = after.width() / before.width() if before.width() else 0
        self.info.setText(
            f"  input {before.width()}×{before.height()}  →  output {after.width()}×{after.height()}"
            f"  (×{scale:g})   ·   wheel: zoom   drag: pan   double-click: 1:1 / fit   Esc: close"
        )
        self.title.setText(f"  {title}  ")
        self._show_zoom()

    def show_files(self, before: Path, after: Path, title: str = "") -> None:
        """Read the input and the output and compare them (raises ``hat_plugin.ImageError`` if unreadable), with
        the split where it was left for this output (the middle at first)."""
        pictures = (
            array_to_qimage(images.read_image(before).pixels),
            array_to_qimage(images.read_image(after).pixels),
        )
        self.frames, self.frame = 0, -1
        self.frame_bar.hide()
        self._use_split_of(after)
        self.show_pair(*pictures, title=title or after.name)

    def _use_split_of(self, output: Path) -> None:
        self._split_key = str(output)
        self.canvas.set_split(self._splits.get(self._split_key, 0.5))

    def begin_video(self, title: str = "", output: Path | None = None) -> None:
        """Compare a video: its frames come through ``show_frame``; until the first does, the canvas says so."""
        self.frames, self.frame = 0, -1
        self._use_split_of(output if output is not None else Path(title))
        self.frame_bar.show()
        self.frame_slider.setEnabled(False)
        self.frame_label.setText("")
        self.title.setText(f"  {title}  ")
        self.info.setText("  reading the frames…")
        self.canvas.empty_text = "Reading the frames…"
        self.canvas.set_images(QImage(), QImage())
        self._update_frame_actions()

    def show_frame(self, number: int, frames: int, before: QImage, after: QImage) -> None:
        """Show frame ``number`` (of ``frames``) of the source (``before``) and of the output (``after``)."""
        self.frame = number
        self.show_pair(before, after, self.title.text().strip())
        self.frame_slider.blockSignals(True)
        if frames != self.frames:
            self.frames = frames
            self.frame_slider.setRange(0, max(frames - 1, 0))
        self.frame_slider.setValue(number)
        self.frame_slider.setEnabled(True)
        self.frame_slider.blockSignals(False)
        self.frame_label.setText(f"frame {number}  ({frames} frames)")  # numbered from 0, as --start is
        self.info.setText(f"{self.info.text()}   ·   , and .: previous / next frame")
        self._update_frame_actions()

    def video_failed(self, message: str) -> None:
        """The frames cannot be read: say so on the canvas and below it."""
        self.canvas.empty_text = "Cannot show the frames"
        self.canvas.update()
        self.info.setText(f"  {message}")

    def step_frame(self, step: int) -> None:
        """Ask for the frame ``step`` frames from the one the slider is on (within the video)."""
        if self.frames:
            self.frame_slider.setValue(min(max(self.frame_slider.value() + step, 0), self.frames - 1))

    def _on_frame_slider(self, value: int) -> None:
        self._update_frame_actions()
        self.frame_requested.emit(value)

    def _update_frame_actions(self) -> None:
        value = self.frame_slider.value()
        self.previous_frame_action.setEnabled(self.frames > 0 and value > 0)
        self.next_frame_action.setEnabled(value < self.frames - 1)

    def show_explanation(self, heat: QImage, corner: tuple[int, int], window: int, text: str) -> None:
        """Show a LAM heat layer over the whole comparison (both sides of the split, at the Explain bar's
        opacity), the explained window outlined, and ``text`` (its Diffusion Index) in the Explain bar."""
        self.canvas.set_overlay(heat)
        self.canvas.set_marker(QRectF(corner[0], corner[1], window, window))
        self.explain_bar.finished(text)

    def clear_explanation(self, text: str | None = None) -> None:
        """Take the heat layer away (the Explain bar says ``text``, else its hint)."""
        self._forget_explanation()
        if text is None:
            self.explain_bar.idle()
        else:
            self.explain_bar.failed(text)

    def _forget_explanation(self) -> None:
        self.canvas.set_overlay(None)
        self.canvas.set_marker(None)

    def _on_explain_toggled(self, on: bool) -> None:
        self.canvas.explaining = on
        self.canvas.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.OpenHandCursor)
        self.explain_bar.setVisible(on)
        if not on:
            self.clear_explanation()
        self.explain_toggled.emit(on)

    def _on_split(self, fraction: float) -> None:
        if self._split_key:
            self._splits[self._split_key] = fraction
        self.slider.blockSignals(True)
        self.slider.setValue(round(fraction * SPLIT_STEPS))
        self.slider.blockSignals(False)

    def _show_zoom(self) -> None:
        self.zoom_label.setText(f"  {self.canvas.zoom * self.canvas.devicePixelRatioF() * 100:.0f}%  ")
