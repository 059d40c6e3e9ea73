"""The before/after canvas: the input left of a split line and the output right of it, both drawn in the output's
pixel grid with one zoom and one pan, so they stay in sync by construction. The input is enlarged with nearest
neighbour by default, so what differs is the model's work; a toggle shows it smoothed (bilinear) instead."""

from __future__ import annotations

from PyQt6.QtCore import QPointF, QRectF, QSize, Qt, pyqtSignal
from PyQt6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PyQt6.QtWidgets import QSizePolicy, QWidget

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
        """The split line's place as a fraction of the picture's width (0: all output, 1: all input)."""
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
        self.overlay: QPixmap | None = None
        """A layer drawn over both sides (Explain's heat map), so the split never hides it."""
        self.overlay_opacity = 0.8
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

    def set_overlay(self, overlay: QImage | None) -> None:
        """Draw ``overlay`` (the output's size) over the whole picture, or nothing (None)."""
        self.overlay = QPixmap.fromImage(overlay) if overlay is not None else None
        self.update()

    def set_overlay_opacity(self, opacity: float) -> None:
        """How strongly the overlay covers the picture, 0 to 1."""
        self.overlay_opacity = min(max(opacity, 0.0), 1.0)
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
        """The split line's x in widget coordinates (on the picture, kept within the widget)."""
        rect = self.image_rect()
        return min(max(rect.left() + self.split * rect.width(), 0.0), float(self.width()))

    def fraction_at(self, x: float) -> float:
        """The split fraction that puts the line at widget x."""
        rect = self.image_rect()
        return (x - rect.left()) / rect.width() if rect.width() > 0 else 0.5

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
        if self.overlay is not None:
            painter.save()
            painter.setOpacity(self.overlay_opacity)
            painter.drawPixmap(target, self.overlay, QRectF(self.overlay.rect()))
            painter.restore()
        self._paint_marker(painter)
        self._paint_split(painter, split)
        visible = target.intersected(QRectF(self.rect()))
        how = "smooth" if self.smooth else "nearest neighbour"
        if split > visible.left() + 1:  # each label only while its side shows, at that side's edge
            self._paint_label(painter, f"Before (input, {how})", visible.left() + 8, left=True)
        if split < visible.right() - 1:
            self._paint_label(painter, "After", visible.right() - 8, left=False)

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

    def _paint_label(self, painter: QPainter, text: str, x: float, left: bool) -> None:
        metrics = painter.fontMetrics()
        box = QRectF(0, 0, metrics.horizontalAdvance(text) + 16, metrics.height() + 8)
        box.moveTop(8)
        if left:
            box.moveLeft(x)
        else:
            box.moveRight(x)
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
            self.set_split(self.fraction_at(position.x()))
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
