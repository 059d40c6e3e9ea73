"""Before/after comparison: one canvas shows the input left of a split line and the output right of it.

Both images are drawn in the output's pixel grid with one zoom and one pan, so they stay in sync by
construction. The input is enlarged with nearest neighbour by default, so what differs is the model's work; a
toggle shows it smoothed (bilinear) instead, as a plain resize would. ``ComparePanel`` is docked in the main
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
    QBrush,
    QColor,
    QImage,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QShortcut,
    QWheelEvent,
)
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QToolBar, QToolButton, QVBoxLayout, QWidget

from gui.explain_bar import ExplainBar
from gui.qimage import array_to_qimage
from hat_plugin import images

MIN_ZOOM, MAX_ZOOM = 1 / 64, 64.0
ZOOM_STEP = 1.25
HANDLE_GRAB_PX = 8
SPLIT_STEPS = 1000
CLICK_SLOP_PX = 4
"""A press and release this close together is a click (explain this point), not a drag (pan)."""


class CompareCanvas(QWidget):
    """Paints ``before`` (enlarged to ``after``'s size) and ``after`` split at ``split`` with a shared view."""

    view_changed = pyqtSignal()
    split_changed = pyqtSignal(float)
    point_clicked = pyqtSignal(QPointF)
    """In explain mode: a click (not a drag) on the image, in output-pixel coordinates."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.before = QImage()
        self.after = QImage()
        self._before_pixmap = QPixmap()
        self._after_pixmap = QPixmap()
        self.zoom = 1.0
        """Widget (logical) pixels per output pixel."""
        self.offset = QPointF(0, 0)
        """Where the output's top-left corner is, in widget coordinates."""
        self.split = 0.5
        """The split line's position as a fraction of the widget's width."""
        self._fitted = True
        self.smooth = False
        """Enlarge the input with bilinear filtering instead of nearest neighbour."""
        self._drag: str | None = None
        self._last = QPointF()
        self.empty_text = "No image"
        """What the canvas says while it has no images."""
        self.explaining = False
        """Explain mode: a click on the image is reported (``point_clicked``) instead of only panning."""
        self.marker: QRectF | None = None
        """A rectangle drawn over the output, in output pixels (the explained window)."""
        self.before_label = ""
        """The left side's label when it shows something other than the input (a heat map)."""
        self._pressed = QPointF()
        self._checker = self._checker_brush()

    def set_images(self, before: QImage, after: QImage) -> None:
        """Show a new pair and fit it to the window."""
        self.before, self.after = before, after
        self._before_pixmap = QPixmap.fromImage(before)
        self._after_pixmap = QPixmap.fromImage(after)
        self.fit()

    def set_before(self, before: QImage) -> None:
        """Replace the left picture only, keeping the view (e.g. a heat map over the same input)."""
        self.before = before
        self._before_pixmap = QPixmap.fromImage(before)
        self.update()

    def set_marker(self, marker: QRectF | None) -> None:
        """Outline ``marker`` (output pixels) over the output, or nothing (None)."""
        self.marker = marker
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(640, 400)

    @property
    def fitted(self) -> bool:
        """True while the view fits the whole image (it then follows the widget's size)."""
        return self._fitted

    def set_smooth(self, smooth: bool) -> None:
        """Show the input enlarged smoothly (True) or with nearest neighbour (False)."""
        self.smooth = smooth
        self.update()

    def image_rect(self) -> QRectF:
        """The output's rectangle in widget coordinates."""
        return QRectF(self.offset.x(), self.offset.y(), self.after.width() * self.zoom, self.after.height() * self.zoom)

    def map_to_image(self, point: QPointF) -> QPointF:
        """Widget coordinates to output-pixel coordinates (the same for both images)."""
        return (point - self.offset) / self.zoom

    def split_x(self) -> float:
        """The split line's x in widget coordinates."""
        return self.split * self.width()

    def set_split(self, fraction: float) -> None:
        """Move the split line (0 = all output, 1 = all input)."""
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction != self.split:
            self.split = fraction
            self.split_changed.emit(fraction)
            self.update()

    def fit(self) -> None:
        """Zoom so the whole image fits, centred."""
        self._fitted = True
        if self.after.isNull() or self.width() <= 0 or self.height() <= 0:
            return
        zoom = min(self.width() / self.after.width(), self.height() / self.after.height())
        self._set_view(
            zoom,
            QPointF((self.width() - self.after.width() * zoom) / 2, (self.height() - self.after.height() * zoom) / 2),
        )
        self._fitted = True

    def actual_pixels(self, anchor: QPointF | None = None) -> None:
        """1:1: one output pixel per screen pixel, keeping the point under ``anchor`` (default: the centre) still.

        The offset is snapped to whole screen pixels so every image pixel lands on exactly one screen pixel.
        """
        ratio = self.devicePixelRatioF()
        self.zoom_to(1.0 / ratio, anchor if anchor is not None else self._centre())
        snapped = QPointF(round(self.offset.x() * ratio) / ratio, round(self.offset.y() * ratio) / ratio)
        self._set_view(self.zoom, snapped)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Multiply the zoom by ``factor`` keeping the image point under ``anchor`` (default: the centre) still."""
        self.zoom_to(self.zoom * factor, anchor if anchor is not None else self._centre())

    def zoom_to(self, zoom: float, anchor: QPointF) -> None:
        """Set the zoom keeping the image point under ``anchor`` (widget coordinates) still."""
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        fixed = self.map_to_image(anchor)
        self._set_view(zoom, anchor - fixed * zoom)

    def pan_by(self, delta: QPointF) -> None:
        """Move both images by ``delta`` widget pixels."""
        self._set_view(self.zoom, self.offset + delta)

    def _set_view(self, zoom: float, offset: QPointF) -> None:
        self._fitted = False
        self.zoom, self.offset = zoom, offset
        self.view_changed.emit()
        self.update()

    def _centre(self) -> QPointF:
        return QPointF(self.width() / 2, self.height() / 2)

    def _near_split(self, x: float) -> bool:
        return abs(x - self.split_x()) <= HANDLE_GRAB_PX

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().window())
        if self.after.isNull():
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.empty_text)
            return
        target = self.image_rect()
        painter.fillRect(target, self._checker)
        split = self.split_x()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.smooth or self.zoom < 1.0)
        painter.setClipRect(QRectF(0, 0, split, self.height()))
        painter.drawPixmap(target, self._before_pixmap, QRectF(self._before_pixmap.rect()))
        painter.restore()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 1.0)
        painter.setClipRect(QRectF(split, 0, self.width() - split, self.height()))
        painter.drawPixmap(target, self._after_pixmap, QRectF(self._after_pixmap.rect()))
        painter.restore()
        self._paint_marker(painter)
        self._paint_split(painter, split)
        how = "smooth" if self.smooth else "nearest neighbour"
        self._paint_label(painter, self.before_label or f"Before (input, {how})", left=True)
        self._paint_label(painter, "After", left=False)

    def _paint_marker(self, painter: QPainter) -> None:
        if self.marker is None:
            return
        box = QRectF(self.offset + self.marker.topLeft() * self.zoom, self.marker.size() * self.zoom)
        painter.save()
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for colour, width in ((QColor(0, 0, 0), 3), (QColor(255, 255, 255), 1)):
            painter.setPen(QPen(colour, width))
            painter.drawRect(box)
        painter.restore()

    def _paint_split(self, painter: QPainter, x: float) -> None:
        accent = self.palette().highlight().color()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(accent, 2))
        painter.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        centre = QPointF(x, self.height() / 2)
        painter.setBrush(accent)
        painter.drawEllipse(centre, 11, 11)
        painter.setPen(QPen(self.palette().highlightedText().color(), 2))
        for sign in (-1, 1):
            tip = centre + QPointF(7 * sign, 0)
            painter.drawLine(tip, tip + QPointF(-4 * sign, -4))
            painter.drawLine(tip, tip + QPointF(-4 * sign, 4))

    def _paint_label(self, painter: QPainter, text: str, left: bool) -> None:
        metrics = painter.fontMetrics()
        box = QRectF(0, 0, metrics.horizontalAdvance(text) + 16, metrics.height() + 8)
        box.moveTop(8)
        if left:
            box.moveLeft(8)
        else:
            box.moveRight(self.width() - 8)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(box, 4, 4)
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def _checker_brush(self) -> QBrush:
        """A chequerboard behind the images so transparent areas read as transparent."""
        tile = QPixmap(16, 16)
        light, dark = QColor(200, 200, 200), QColor(150, 150, 150)
        tile.fill(light)
        painter = QPainter(tile)
        painter.fillRect(0, 0, 8, 8, dark)
        painter.fillRect(8, 8, 8, 8, dark)
        painter.end()
        return QBrush(tile)

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def wheelEvent(self, event: QWheelEvent | None) -> None:
        if event is None:
            return
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(ZOOM_STEP**steps, event.position())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        if event is None:
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag = "split" if self._near_split(event.position().x()) else "pan"
            self._last = self._pressed = event.position()
            if self._drag == "pan":
                self.setCursor(Qt.CursorShape.ClosedHandCursor)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent | None) -> None:
        if event is None:
            return
        position = event.position()
        if self._drag == "split":
            self.set_split(position.x() / max(self.width(), 1))
        elif self._drag == "pan":
            self.pan_by(position - self._last)
        elif self._near_split(position.x()):
            self.setCursor(Qt.CursorShape.SplitHCursor)
        else:
            self.setCursor(self._hover_cursor())
        self._last = position
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent | None) -> None:
        if event is None:
            return
        moved = (event.position() - self._pressed).manhattanLength()
        if self.explaining and self._drag == "pan" and moved <= CLICK_SLOP_PX:
            point = self.map_to_image(event.position())
            if 0 <= point.x() < self.after.width() and 0 <= point.y() < self.after.height():
                self.point_clicked.emit(point)
        self._drag = None
        self.setCursor(self._hover_cursor())
        event.accept()

    def _hover_cursor(self) -> Qt.CursorShape:
        return Qt.CursorShape.CrossCursor if self.explaining else Qt.CursorShape.OpenHandCursor

    def mouseDoubleClickEvent(self, event: QMouseEvent | None) -> None:
        if event is None:
            return
        if self._fitted:
            self.actual_pixels(event.position())
        else:
            self.fit()
        event.accept()


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
        self.info = QLabel()
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        toolbar = QToolBar()
        toolbar.setIconSize(QSize(16, 16))
        self.previous_action = self._action(
            toolbar,
            "◀ Previous",
            QKeySequence.StandardKey.MoveToPreviousPage,
            self.previous_requested.emit,
            "The previous finished item (Page Up)",
        )
        self.next_action = self._action(
            toolbar,
            "Next ▶",
            QKeySequence.StandardKey.MoveToNextPage,
            self.next_requested.emit,
            "The next finished item (Page Down)",
        )
        toolbar.addSeparator()
        self.fit_action = self._action(toolbar, "Fit", "F", self.canvas.fit, "Fit the image in the window")
        self.actual_action = self._action(toolbar, "1:1", "1", self.canvas.actual_pixels, "One pixel per screen pixel")
        self._action(toolbar, "Zoom in", QKeySequence.StandardKey.ZoomIn, lambda: self.canvas.zoom_by(ZOOM_STEP))
        self._action(toolbar, "Zoom out", QKeySequence.StandardKey.ZoomOut, lambda: self.canvas.zoom_by(1 / ZOOM_STEP))
        self.smooth_action = self._action(
            toolbar, "Smooth before", "S", lambda: None, "Enlarge the input smoothly instead of nearest neighbour"
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
        toolbar.addWidget(self.title)
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
        self._plain_before: QImage | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(toolbar)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.frame_bar)
        layout.addWidget(self.explain_bar)
        layout.addWidget(self.slider)
        layout.addWidget(self.info)
        self.slider.valueChanged.connect(lambda value: self.canvas.set_split(value / SPLIT_STEPS))
        self.canvas.split_changed.connect(self._on_split)
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
        """Read the input and the output and compare them (raises ``hat_plugin.ImageError`` if unreadable)."""
        pictures = (
            array_to_qimage(images.read_image(before).pixels),
            array_to_qimage(images.read_image(after).pixels),
        )
        self.frames, self.frame = 0, -1
        self.frame_bar.hide()
        self.show_pair(*pictures, title=title or after.name)

    def begin_video(self, title: str = "") -> None:
        """Compare a video: its frames come through ``show_frame``; until the first does, the canvas says so."""
        self.frames, self.frame = 0, -1
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
        """Show a LAM heat map over the input in place of the input, the explained window outlined on the output,
        and ``text`` (its Diffusion Index) in the Explain bar."""
        if self._plain_before is None:
            self._plain_before = self.canvas.before
        self.canvas.set_before(heat)
        self.canvas.before_label = "LAM heat map over the input"
        self.canvas.set_marker(QRectF(corner[0], corner[1], window, window))
        self.explain_bar.finished(text)

    def clear_explanation(self, text: str | None = None) -> None:
        """Show the input again in place of a heat map (the Explain bar says ``text``, else its hint)."""
        if self._plain_before is not None:
            self.canvas.set_before(self._plain_before)
        self._forget_explanation()
        if text is None:
            self.explain_bar.idle()
        else:
            self.explain_bar.failed(text)

    def _forget_explanation(self) -> None:
        self._plain_before = None
        self.canvas.before_label = ""
        self.canvas.set_marker(None)

    def _on_explain_toggled(self, on: bool) -> None:
        self.canvas.explaining = on
        self.canvas.setCursor(Qt.CursorShape.CrossCursor if on else Qt.CursorShape.OpenHandCursor)
        self.explain_bar.setVisible(on)
        if not on:
            self.clear_explanation()
        self.explain_toggled.emit(on)

    def _on_split(self, fraction: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(round(fraction * SPLIT_STEPS))
        self.slider.blockSignals(False)

    def _show_zoom(self) -> None:
        self.zoom_label.setText(f"  {self.canvas.zoom * self.canvas.devicePixelRatioF() * 100:.0f}%  ")
