"""Choosing the model: manifest models (with size and whether they are downloaded) or a local weights file,
and downloading a missing model in-app with progress, cancel and retry."""

from __future__ import annotations

from PyQt6.QtCore import QThreadPool, pyqtSignal
from PyQt6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.message_bar import MessageBar
from gui.queue_model import format_size
from gui.worker import DownloadTask, describe_error
from hat_plugin import weights
from hat_plugin.weights.cache import Settings as CacheSettings

WEIGHTS_FILE = "\0weights-file"
"""Combo data of the entry that switches to a local weights file."""


class ModelPicker(QWidget):
    """A combo of manifest models plus "Weights file…", and the download controls for the chosen model."""

    changed = pyqtSignal()
    downloaded = pyqtSignal(str)
    """A model finished downloading (its name)."""

    def __init__(self, pool: QThreadPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self._task: DownloadTask | None = None
        self._locked = False
        self._entries = {}

        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(24)
        self.combo.setToolTip("HAT models from the manifest; missing ones are downloaded when needed.")
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.file_edit = QLineEdit()
        self.file_edit.setPlaceholderText("path to a .pth or .safetensors HAT checkpoint")
        self.browse = QToolButton(text="…")
        self.browse.setToolTip("Choose a local weights file")
        self.download_button = QPushButton("Download")
        self.download_bar = QProgressBar()
        self.download_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.error = MessageBar()

        file_row = QHBoxLayout()
        file_row.setContentsMargins(0, 0, 0, 0)
        file_row.addWidget(self.file_edit, 1)
        file_row.addWidget(self.browse)
        self._file_row = QWidget()
        self._file_row.setLayout(file_row)
        download_row = QHBoxLayout()
        download_row.setContentsMargins(0, 0, 0, 0)
        download_row.addWidget(self.download_button)
        download_row.addWidget(self.download_bar, 1)
        download_row.addWidget(self.cancel_button)
        self._download_row = QWidget()
        self._download_row.setLayout(download_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.combo, self._file_row, self.info, self._download_row, self.error):
            layout.addWidget(widget)

        self.combo.currentIndexChanged.connect(self._on_choice)
        self.file_edit.editingFinished.connect(self.changed)
        self.browse.clicked.connect(self._browse)
        self.download_button.clicked.connect(self.start_download)
        self.error.action_clicked.connect(self.start_download)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.reload()

    def reload(self) -> None:
        """Fill the combo from the manifest, marking which models are already downloaded."""
        keep = self.combo.currentData()
        self.combo.blockSignals(True)
        self.combo.clear()
        try:
            entries = weights.list_models()
        except Exception as exc:
            entries = []
            self.error.show_message(f"Model list unavailable: {describe_error(exc)}", "error")
        self._entries = {entry.name: entry for entry in entries}
        style = QApplication.style()
        for entry in entries:
            cached = weights.is_cached(entry.name)
            icon = style.standardIcon(
                QStyle.StandardPixmap.SP_DialogApplyButton if cached else QStyle.StandardPixmap.SP_ArrowDown
            )
            status = "downloaded" if cached else "not downloaded"
            size = f", {format_size(entry.size)}" if entry.size else ""
            self.combo.addItem(icon, f"{entry.name} (x{entry.scale}{size}) — {status}", entry.name)
        self.combo.addItem(style.standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon), "Weights file…", WEIGHTS_FILE)
        index = self.combo.findData(keep)
        self.combo.setCurrentIndex(max(index, 0))
        self.combo.blockSignals(False)
        self._update()

    @property
    def model(self) -> str:
        """The chosen manifest model name ("" when a weights file is chosen or the manifest is empty)."""
        data = self.combo.currentData()
        return "" if data in (None, WEIGHTS_FILE) else data

    @property
    def use_weights_file(self) -> bool:
        """True when the user chose a local weights file."""
        return self.combo.currentData() == WEIGHTS_FILE

    @property
    def weights_file(self) -> str:
        """The local weights file path as typed or browsed."""
        return self.file_edit.text().strip()

    def set_choice(self, model: str, weights_file: str, use_weights_file: bool) -> None:
        """Select a model (or the weights file entry) without emitting ``changed``."""
        self.blockSignals(True)
        self.file_edit.setText(weights_file)
        index = self.combo.findData(WEIGHTS_FILE if use_weights_file else model)
        if index < 0 and self.combo.count() > 1:
            index = 0
        self.combo.setCurrentIndex(max(index, 0))
        self.blockSignals(False)
        self._update()

    def lock(self, locked: bool) -> None:
        """Disable changing the model while a run uses it."""
        self._locked = locked
        self._update()

    @property
    def downloading(self) -> bool:
        """True while a download started here is in flight."""
        return self._task is not None

    def start_download(self) -> None:
        """Download the chosen model in the background (also the Retry action after a failure)."""
        if self._task is not None or not self.model:
            return
        self.error.dismiss()
        self.download_bar.setRange(0, 0)
        self.download_bar.setFormat("connecting…")
        task = DownloadTask(self.model)
        task.signals.progress.connect(self._on_progress)
        task.signals.succeeded.connect(self._on_succeeded)
        task.signals.failed.connect(self._on_failed)
        task.signals.cancelled.connect(self._on_cancelled)
        self._task = task
        self._update()
        self._pool.start(task)

    def cancel_download(self) -> None:
        """Stop the download in flight; nothing is kept under the model's file name."""
        if self._task is not None:
            self._task.cancel()
            self.cancel_button.setEnabled(False)

    def _on_progress(self, done: int, total: int) -> None:
        if total <= 0:
            self.download_bar.setFormat(f"{format_size(done)}")
        else:
            scale = max(1, total // 1_000_000)
            self.download_bar.setRange(0, total // scale)
            self.download_bar.setValue(done // scale)
            self.download_bar.setFormat(f"{format_size(done)} of {format_size(total)}")

    def _on_succeeded(self, path: str) -> None:
        name = self._task.name if self._task else ""
        self._task = None
        self.reload()
        self.downloaded.emit(name)

    def _on_failed(self, message: str) -> None:
        self._task = None
        self.error.show_message(f"Download failed: {message}", "error", "Retry")
        self._update()

    def _on_cancelled(self) -> None:
        self._task = None
        self.error.show_message("Download cancelled.", "info", "Retry")
        self._update()

    def _on_choice(self) -> None:
        self.error.dismiss()
        self._update()
        self.changed.emit()

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose HAT weights", self.weights_file, "HAT weights (*.safetensors *.pth);;All files (*)"
        )
        if path:
            self.file_edit.setText(path)
            self.changed.emit()

    def _update(self) -> None:
        """Show the controls that fit the current choice and state."""
        entry = self._entries.get(self.model)
        use_file = self.use_weights_file
        self._file_row.setVisible(use_file)
        self.combo.setEnabled(not self._locked and self._task is None)
        self.file_edit.setEnabled(not self._locked)
        self.browse.setEnabled(not self._locked)
        missing = entry is not None and not weights.is_cached(entry.name)
        offline = CacheSettings.from_env().offline
        busy = self._task is not None
        self._download_row.setVisible(missing or busy)
        self.download_bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.download_button.setVisible(not busy)
        self.download_button.setEnabled(missing and not offline and not self._locked)
        if use_file:
            self.info.setText("A HAT checkpoint on disk; its size and scale are read from the file.")
        elif entry is None:
            self.info.setText("No model in the manifest.")
        else:
            where = "Downloaded." if not missing else "Not downloaded yet: it is fetched when a run starts."
            if missing and offline:
                where = "Not downloaded, and offline mode (HAT_PLUGIN_OFFLINE) is on: downloads are disabled."
            self.info.setText(f"{entry.description.rstrip('.')}. {where}")
