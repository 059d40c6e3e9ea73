"""The compare view's Explain bar (shown in Explain mode): the LAM window and steps, progress with Cancel while a
map is computed, the Diffusion Index of the map shown, and Save map."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QPixmap
from PyQt6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gui.explain import map_overlay
from gui.qimage import array_to_qimage

__all__ = ["ExplainBar"]

HINT = "Click a point of the output: the input pixels the model used for the window there are shown in heat colours."
FULL_STEPS, QUICK_STEPS = 50, 10
"""LAM's default blur-path steps, and Quick's (docs/attribution.md measures what Quick changes in the DI)."""


def legend_pixmap(width: int = 96, height: int = 12) -> QPixmap:
    """The heat layer's colour scale from "not used" (0, transparent) to "used most" (1), over white."""
    layer = map_overlay(np.tile(np.linspace(0.0, 1.0, width), (height, 1)), 1).astype(np.float64)
    alpha = layer[..., 3:] / 255.0
    shown = np.round(layer[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return QPixmap.fromImage(array_to_qimage(np.ascontiguousarray(shown)))


class ExplainBar(QWidget):
    """Settings, progress and outcome of Explain; the window does the work and calls ``running``/``progressed``/
    ``finished``/``failed``."""

    cancel_requested = pyqtSignal()
    save_requested = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window_size = QSpinBox()
        self.window_size.setRange(4, 64)
        self.window_size.setValue(16)
        self.window_size.setSuffix(" px")
        self.window_size.setToolTip("Side of the output window explained (LAM's default: 16)")
        self.steps = QSpinBox()
        self.steps.setRange(1, 500)
        self.steps.setValue(FULL_STEPS)
        self.steps.setToolTip("Blur-path steps (LAM's default: 50; fewer are quicker and rougher)")
        self.quick = QCheckBox("Quick")
        self.quick.setToolTip(
            f"{QUICK_STEPS} steps instead of {FULL_STEPS}: several times quicker; the map keeps its shape and the "
            "DI moves a little (measured in docs/attribution.md)"
        )
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        widest = self.progress.fontMetrics().horizontalAdvance("step 500 of 500")
        self.progress.setMinimumWidth(widest + 48)  # the text fits beside the style's chunk margins
        self.legend = QLabel()
        self.legend.setPixmap(legend_pixmap())
        self.legend.setToolTip("Heat colours: how much the model used each input pixel (none: no colour)")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(80)
        self.opacity.setMaximumWidth(90)
        self.opacity.setToolTip("How strongly the heat map covers the picture")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop computing this map")
        self.status = QLabel(HINT)
        self.status.setWordWrap(True)
        self.save_button = QPushButton("Save map…")
        self.save_button.setToolTip("Save the heat map over the input as a PNG image")
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.setMinimumWidth(120)
        settings = QHBoxLayout()
        parts: tuple[QWidget, ...] = (QLabel("Window"), self.window_size, QLabel("Steps"), self.steps, self.quick)
        for part in parts:
            settings.addWidget(part)
        settings.addStretch(1)
        settings.addWidget(self.save_button)
        work = QHBoxLayout()
        work.addWidget(self.progress)
        work.addWidget(self.cancel_button)
        work.addWidget(self.status, 1)
        self.map_tools = QWidget()
        """The colour scale and the opacity: shown while a map is."""
        tools = QHBoxLayout(self.map_tools)
        tools.setContentsMargins(0, 0, 0, 0)
        for part in (QLabel("less"), self.legend, QLabel("more"), QLabel("   opacity"), self.opacity):
            tools.addWidget(part)
        tools.addStretch(1)
        rows = QVBoxLayout(self)
        rows.setContentsMargins(4, 0, 4, 0)
        rows.setSpacing(2)
        rows.addLayout(settings)
        rows.addLayout(work)
        rows.addWidget(self.map_tools)
        self.quick.toggled.connect(lambda on: self.steps.setValue(QUICK_STEPS if on else FULL_STEPS))
        self.cancel_button.clicked.connect(self.cancel_requested.emit)
        self.save_button.clicked.connect(self.save_requested.emit)
        self.idle()

    def idle(self, text: str = HINT) -> None:
        """Nothing computed or shown: the hint (or ``text``)."""
        self._set_busy(False)
        self.map_tools.hide()
        self.save_button.setEnabled(False)
        self.status.setText(text)

    def running(self, corner: tuple[int, int] | None, window: int) -> None:
        """A map is being computed for the window at ``corner`` (None: not known yet)."""
        self._set_busy(True)
        self.save_button.setEnabled(False)
        self.progress.setRange(0, 0)
        where = f" at {corner[0]}, {corner[1]}" if corner is not None else ""
        self.status.setText(f"Explaining the {window}×{window} window{where}…")

    def progressed(self, done: int, total: int) -> None:
        """``done`` of ``total`` blur-path steps are computed."""
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.progress.setFormat(f"step {done} of {total}")

    def finished(self, text: str) -> None:
        """A map is shown; ``text`` says what it is (the DI first)."""
        self._set_busy(False)
        self.save_button.setEnabled(True)
        self.map_tools.show()
        self.status.setText(text)

    def failed(self, text: str) -> None:
        """No map: ``text`` says why (or that it was cancelled)."""
        self.idle(text)

    @property
    def busy(self) -> bool:
        """True while a map is being computed."""
        return not self.cancel_button.isHidden()

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.window_size.setEnabled(not busy)
        self.steps.setEnabled(not busy)
        self.quick.setEnabled(not busy)
        if busy:
            self.progress.setFormat("")
