"""The model picker's download row: the Download button, a progress bar in bytes and Cancel, and the one
``DownloadTask`` in flight. What a finished download means (a new availability check, a message with Retry or a
model that works offline) is the picker's."""

from __future__ import annotations

from PyQt6.QtCore import QThreadPool, pyqtSignal
from PyQt6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

from gui.formatting import format_size
from gui.worker import DownloadProgress, DownloadTask

__all__ = ["DownloadRow"]


class DownloadRow(QWidget):
    """Download, progress and Cancel for one model at a time."""

    ended = pyqtSignal(object)
    """The download's last event: ``Downloaded``, ``DownloadFailed`` or ``DownloadCancelled``."""

    def __init__(self, pool: QThreadPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self.task: DownloadTask | None = None
        self.button = QPushButton("Download")
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.button)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)
        self.cancel_button.clicked.connect(self.cancel)

    @property
    def busy(self) -> bool:
        """True while a download started here is in flight."""
        return self.task is not None

    def start(self, name: str) -> None:
        """Download the model ``name`` on the pool, the bar saying "connecting…" until bytes arrive."""
        self.bar.setRange(0, 0)
        self.bar.setFormat("connecting…")
        task = DownloadTask(name)
        task.signals.reported.connect(self._on_event)
        self.task = task
        self._pool.start(task)

    def cancel(self) -> None:
        """Stop the download in flight; nothing is kept under the model's file name."""
        if self.task is not None:
            self.task.cancel()
            self.cancel_button.setEnabled(False)

    def show_state(self) -> None:
        """The bar and Cancel while a download runs, else the Download button."""
        busy = self.busy
        self.bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.button.setVisible(not busy)

    def _on_event(self, event: object) -> None:
        if isinstance(event, DownloadProgress):
            self._show_bytes(event.done, event.total)
            return
        self.task = None
        self.ended.emit(event)

    def _show_bytes(self, done: int, total: int) -> None:
        if total <= 0:
            self.bar.setFormat(format_size(done))
            return
        unit = max(1, total // 1_000_000)
        self.bar.setRange(0, total // unit)
        self.bar.setValue(done // unit)
        self.bar.setFormat(f"{format_size(done)} of {format_size(total)}")
