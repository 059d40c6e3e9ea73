"""Choosing the model: a scale (the engine picks the best model for it) or a model from the manifest, grouped into
ready-to-use, the user's own ("Yours") and downloadable, or a local weights file; downloading a missing model
(``model_download.DownloadRow``) or switching to the bundled model of the nearest scale that works offline; adding a
weights file (dropped on the app) as one of the user's models. The box's groups, tooltips and sentences are
``model_list``'s, its items ``model_items``'.

Which models are ready is checked by a worker (``AvailabilityTask``: checking may hash a large file), never on the
UI thread; the answer is kept until a download asks for a new check.
"""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QThreadPool, pyqtSignal
from PyQt6.QtGui import QStandardItemModel
from PyQt6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.formatting import format_size
from gui.message_bar import MessageBar
from gui.model_download import DownloadRow
from gui.model_items import NAME_ROLE, fill_model_items
from gui.model_list import WEIGHTS_FILE, automatic_sentence, model_groups, model_sentence, suggest_name
from gui.models import Availability, alternative_sentence, friendly_name, ready_alternative
from gui.worker import (
    AvailabilityTask,
    DownloadCancelled,
    Downloaded,
    DownloadFailed,
    DownloadTask,
)
from hat_plugin import weights
from hat_plugin.errors import HATError
from hat_plugin.weights import ModelEntry

__all__ = ["ModelPicker"]


class ModelPicker(QWidget):
    """Scale and model boxes, a line saying which model is used and why, and the download controls."""

    changed = pyqtSignal()
    downloaded = pyqtSignal(str)
    """A model finished downloading (its name)."""
    availability_changed = pyqtSignal(object)
    """A new ``Availability`` arrived from the worker."""
    failed = pyqtSignal()
    """A download started here failed (its message shows here, so others can go)."""

    def __init__(self, pool: QThreadPool, checks: QThreadPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._checks = checks
        self._check: AvailabilityTask | None = None
        self._check_again = False
        self._locked = False
        self._entries: dict[str, ModelEntry] = {}
        self._automatic = True
        self._wanted_scale = 0
        self.availability: Availability | None = None
        self.list_problem = ""

        self.scale = QComboBox()
        self.scale.setToolTip("The enlargement; choosing one picks the best model for it that works right away.")
        self.combo = QComboBox()
        self.combo.setModel(QStandardItemModel(self.combo))
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(12)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.info.setMinimumWidth(60)
        self.file_edit = QLineEdit()
        self.file_edit.setPlaceholderText("path to a .pth or .safetensors HAT checkpoint")
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip("Choose a local weights file")
        self._offered: list[Path] = []
        self._download_row = DownloadRow(pool)
        self.download_button = self._download_row.button
        self.download_bar = self._download_row.bar
        self.cancel_button = self._download_row.cancel_button
        self.use_button = QPushButton()
        self.use_button.setToolTip("Use a model that is on this computer instead")
        self.error = MessageBar()
        self.mean = QComboBox()
        for text, value in (("as the model says", ""), ("official", "official"), ("0.5 (neosr)", "0.5")):
            self.mean.addItem(text, value)
        self.mean.setToolTip(
            "The RGB mean the model was trained with: the official HAT files use the DF2K mean, HATs trained with "
            "neosr since 2024 use 0.5. A wrong mean gives a colour cast."
        )

        scale_row = QHBoxLayout()
        scale_row.setContentsMargins(0, 0, 0, 0)
        scale_row.addWidget(QLabel("Scale"))
        scale_row.addWidget(self.scale, 1)
        file_row = QHBoxLayout()
        file_row.setContentsMargins(0, 0, 0, 0)
        file_row.addWidget(self.file_edit, 1)
        file_row.addWidget(self.browse)
        self._file_row = QWidget()
        self._file_row.setLayout(file_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(scale_row)
        mean_row = QHBoxLayout()
        mean_row.setContentsMargins(0, 0, 0, 0)
        mean_row.addWidget(QLabel("RGB mean"))
        mean_row.addWidget(self.mean, 1)
        for widget in (self.combo, self._file_row, self.info, self._download_row, self.use_button, self.error):
            layout.addWidget(widget)
        layout.addLayout(mean_row)

        self.scale.activated.connect(self._on_scale)
        self.combo.activated.connect(self._on_model)
        self.file_edit.editingFinished.connect(self.changed)
        self.mean.activated.connect(lambda _index: self.changed.emit())
        self.browse.clicked.connect(self._browse)
        self.download_button.clicked.connect(self.start_download)
        self._download_row.ended.connect(self._on_download)
        self.use_button.clicked.connect(self.use_alternative)
        self.reload()
        self.check_availability()

    # ------------------------------------------------------------------------------------------ contents

    def reload(self) -> None:
        """Fill the boxes from the manifest and what is known about which models are ready."""
        try:
            entries = weights.list_models()
            self.list_problem = ""
        except HATError as exc:
            entries = []
            self.list_problem = str(exc)
        self._entries = {entry.name: entry for entry in entries}
        scales = sorted({entry.scale for entry in entries})
        keep_scale = self.current_scale
        self.scale.blockSignals(True)
        self.scale.clear()
        for scale in scales:
            self.scale.addItem(f"×{scale}", scale)
        self.scale.blockSignals(False)
        self._fill_models()
        self._select_scale(keep_scale)
        self._apply_choice(self._chosen_name())
        self._update()

    def _ready(self, entry: ModelEntry) -> bool | None:
        if self.availability is None:
            return True if entry.bundled else None
        return self.availability.is_ready(entry.name)

    def _fill_models(self) -> None:
        model = self.combo.model()
        assert isinstance(model, QStandardItemModel)
        keep = self.combo.currentData(NAME_ROLE)
        self.combo.blockSignals(True)
        fill_model_items(model, model_groups(self._entries.values(), self._ready), self._ready)
        self.combo.setCurrentIndex(self.combo.findData(keep, NAME_ROLE) if keep is not None else -1)
        self.combo.blockSignals(False)
        view = self.combo.view()
        if view is not None:
            view.setMinimumWidth(view.sizeHintForColumn(0) + 24)

    # -------------------------------------------------------------------------------------- availability

    def check_availability(self) -> None:
        """Ask a worker which models are ready (again, e.g. after a download); the answer updates the boxes."""
        if self._check is not None:
            self._check_again = True
            return
        task = AvailabilityTask()
        task.signals.reported.connect(self._on_availability)
        task.signals.finished.connect(self._on_check_finished)
        self._check = task
        self._checks.start(task)

    @property
    def check_task(self) -> AvailabilityTask | None:
        """The availability check in flight, if any."""
        return self._check

    @property
    def checking(self) -> bool:
        """True while a worker is checking which models are ready."""
        return self._check is not None

    def _on_check_finished(self) -> None:
        self._check = None
        if self._check_again:
            self._check_again = False
            self.check_availability()

    def _on_availability(self, availability: object) -> None:
        if not isinstance(availability, Availability):
            return
        self.availability = availability
        if availability.problem:
            self.list_problem = availability.problem
        self._fill_models()
        if not self._wanted_scale:
            self._select_scale(0)
        self._apply_choice(self._chosen_name())
        self._update()
        self.availability_changed.emit(availability)

    # -------------------------------------------------------------------------------------------- choice

    @property
    def automatic(self) -> bool:
        """True when the engine's default model for the scale is used (no model chosen by name)."""
        return self._automatic and not self.use_weights_file

    @property
    def model(self) -> str:
        """The model chosen by name; "" when the engine's default for the scale is used or a file is chosen."""
        if self.automatic or self.use_weights_file:
            return ""
        return self.shown_model

    @property
    def shown_model(self) -> str:
        """The manifest name the model box shows ("" for the weights file entry or while nothing is shown)."""
        data = self.combo.currentData(NAME_ROLE)
        return "" if data in (None, WEIGHTS_FILE) else str(data)

    @property
    def use_weights_file(self) -> bool:
        """True when the user chose a local weights file."""
        return self.combo.currentData(NAME_ROLE) == WEIGHTS_FILE

    @property
    def rgb_mean(self) -> str:
        """The RGB mean chosen for the model ("" for what the model's manifest entry or file says)."""
        return str(self.mean.currentData() or "")

    def set_rgb_mean(self, value: str) -> None:
        """Show a saved RGB mean choice (an unknown spelling is added as it is)."""
        index = self.mean.findData(value)
        if index < 0:
            self.mean.addItem(value, value)
            index = self.mean.count() - 1
        self.mean.setCurrentIndex(index)

    @property
    def weights_file(self) -> str:
        """The local weights file path as typed or browsed."""
        return self.file_edit.text().strip()

    @property
    def current_scale(self) -> int:
        """The scale the Scale box shows (0 when it shows none yet)."""
        data = self.scale.currentData()
        return int(data) if data is not None else self._wanted_scale

    def entry(self, name: str) -> ModelEntry | None:
        """The manifest entry called ``name``, if listed."""
        return self._entries.get(name)

    def default_for(self, scale: int) -> tuple[str, str] | None:
        """The engine's default model for ``scale`` and why, once the check has answered."""
        if self.availability is None:
            return None
        return self.availability.defaults.get(scale)

    def alternative_to(self, name: str) -> ModelEntry | None:
        """A ready model to offer instead of ``name`` when it cannot be had (``models.ready_alternative``)."""
        entry = self._entries.get(name)
        scale = entry.scale if entry is not None else self.current_scale
        return ready_alternative(self.availability, self._entries.values(), scale, name)

    def use_alternative(self) -> None:
        """Show the ready model offered instead of the one shown (as if the user picked it)."""
        alternative = self.alternative_to(self.shown_model)
        if alternative is not None:
            self.error.dismiss()
            self.select_model(alternative.name)

    def set_choice(self, model: str, weights_file: str, use_weights_file: bool, scale: int = 0) -> None:
        """Show a saved choice without emitting ``changed``: a model by name, the weights file, or (``model`` "")
        the engine's default for ``scale`` (0: the engine's default scale)."""
        self.file_edit.setText(weights_file)
        named = self._entries.get(model)
        self._automatic = named is None and not use_weights_file
        self._wanted_scale = named.scale if named is not None else scale
        self._select_scale(self._wanted_scale)
        if use_weights_file:
            self._apply_choice(WEIGHTS_FILE)
        else:
            self._apply_choice(named.name if named is not None else self._chosen_name())
        self._update()

    def select_model(self, name: str) -> None:
        """Choose a listed model by name (or ``WEIGHTS_FILE``), as a user would in the model box."""
        index = self.combo.findData(name, NAME_ROLE)
        if index >= 0:
            self.combo.setCurrentIndex(index)
            self._on_model(index)

    def select_scale(self, scale: int) -> None:
        """Choose a scale, as a user would in the Scale box: the engine's default model for it is used."""
        index = self.scale.findData(scale)
        if index >= 0:
            self.scale.setCurrentIndex(index)
            self._on_scale(index)

    def _select_scale(self, scale: int) -> None:
        """Show ``scale`` in the Scale box (the engine's default scale for 0, once known; else nothing)."""
        if not scale and self.availability is not None:
            scale = self.availability.default_scale
        self.scale.blockSignals(True)
        self.scale.setCurrentIndex(self.scale.findData(scale) if scale else -1)
        self.scale.blockSignals(False)

    def _chosen_name(self) -> str:
        """What the model box should show for the current choice: the engine's default for the scale (once
        known) when automatic, else what it shows now."""
        if self._automatic:
            default = self.default_for(self.current_scale)
            return default[0] if default is not None else ""
        return str(self.combo.currentData(NAME_ROLE) or "")

    def _apply_choice(self, name: str) -> None:
        self.combo.blockSignals(True)
        self.combo.setCurrentIndex(self.combo.findData(name, NAME_ROLE) if name else -1)
        self.combo.blockSignals(False)

    def _on_scale(self, _index: int) -> None:
        self._automatic = True
        self._wanted_scale = self.current_scale
        self._apply_choice(self._chosen_name())
        self.error.dismiss()
        self._update()
        self.changed.emit()

    def _on_model(self, _index: int) -> None:
        entry = self._entries.get(str(self.combo.currentData(NAME_ROLE)))
        self._automatic = False
        if entry is not None:
            self._wanted_scale = entry.scale
            self._select_scale(entry.scale)
        self.error.dismiss()
        self._update()
        self.changed.emit()

    def lock(self, locked: bool) -> None:
        """Disable changing the model while a run uses it."""
        self._locked = locked
        self._update()

    # -------------------------------------------------------------------------------------------- your models

    def offer_to_add(self, paths: list[Path]) -> None:
        """Dropped weights files: offer to add them as the user's models (under names made from the file names)."""
        self._offered = list(paths)
        names = ", ".join(path.name for path in paths)
        self.error.show_message(
            f"{names}: model weights, not images. Add {'it' if len(paths) == 1 else 'them'} to your models?",
            "info",
            [("Add to my models", self._add_offered)],
        )

    def _add_offered(self) -> None:
        offered, self._offered = self._offered, []
        for path in offered:
            self.add_model_file(path, self.suggest_name(path))

    def suggest_name(self, path: Path) -> str:
        """A model name from a file name, not taken by a listed model (``-2``, ``-3``... appended)."""
        return suggest_name(path, self._entries)

    def add_model_file(self, path: Path, name: str, rgb_mean: str | None = None) -> bool:
        """Add a weights file as the user's model ``name`` and choose it; a refusal is shown, nothing recorded."""
        from hat_plugin.user_models import add_model  # PyTorch loads to check the file, not at start-up

        try:
            entry = add_model(path, name, rgb_mean=rgb_mean)
        except HATError as exc:
            self.error.show_message(f"{path.name} was not added to your models.", "error", details=str(exc))
            return False
        self.reload()
        self.check_availability()
        self.select_model(entry.name)
        self.error.show_message(f"Added {path.name} to your models as {entry.name}.", "info")
        return True

    # ------------------------------------------------------------------------------------------ download

    @property
    def downloading(self) -> bool:
        """True while a download started here is in flight."""
        return self._download_row.busy

    def start_download(self) -> None:
        """Download the shown model in the background (also the Retry action after a failure)."""
        name = self.shown_model
        if self.downloading or not name or self.use_weights_file:
            return
        self.error.dismiss()
        self._download_row.start(name)
        self._update()

    def cancel_download(self) -> None:
        """Stop the download in flight; nothing is kept under the model's file name."""
        self._download_row.cancel()

    @property
    def download_task(self) -> DownloadTask | None:
        """The download in flight, if any."""
        return self._download_row.task

    def _on_download(self, event: object) -> None:
        if isinstance(event, Downloaded):
            self.downloaded.emit(event.name)
            self.check_availability()
        elif isinstance(event, DownloadFailed):
            reason, actions = event.reason, [("Retry", self.start_download)]
            alternative = self.alternative_to(event.name)
            entry = self._entries.get(event.name)
            if alternative is not None and entry is not None:
                reason += " " + alternative_sentence(alternative, entry.scale)
                actions.insert(0, (f"Use {friendly_name(alternative, size=False)}", self.use_alternative))
            self.error.show_message(reason, "error", actions, event.details)
            self.failed.emit()
        elif isinstance(event, DownloadCancelled):
            self.error.show_message("Download cancelled.", "info", [("Retry", self.start_download)])
        self._update()

    # -------------------------------------------------------------------------------------------- display

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose HAT weights", self.weights_file, "HAT weights (*.safetensors *.pth);;All files (*)"
        )
        if path:
            self.file_edit.setText(path)
            self.changed.emit()

    def _update(self) -> None:
        """Show the controls and the sentence that fit the current choice and state."""
        entry = self._entries.get(self.shown_model)
        use_file = self.use_weights_file
        busy = self.downloading
        ready = self._ready(entry) if entry is not None else None
        offline = self.availability.offline if self.availability is not None else weights.is_offline()
        missing = entry is not None and ready is False
        self._file_row.setVisible(use_file)
        self.scale.setEnabled(not self._locked and not busy)
        self.combo.setEnabled(not self._locked and not busy)
        self.file_edit.setEnabled(not self._locked)
        self.mean.setEnabled(not self._locked)
        self.browse.setEnabled(not self._locked)
        self._download_row.setVisible((missing and not use_file) or busy)
        self._download_row.show_state()
        # a scale no model is picked for automatically (x1: only community models) offers a ready one too
        no_pick = entry is None and self.automatic and self.availability is not None and bool(self.current_scale)
        wanted = entry.name if entry is not None else ""
        alternative = self.alternative_to(wanted) if (missing or no_pick) and not use_file else None
        self.use_button.setVisible(alternative is not None and not busy)
        if alternative is not None:
            self.use_button.setText(f"Use {friendly_name(alternative, size=False)}")
        self.download_button.setEnabled(missing and not offline and not self._locked)
        if entry is not None:
            self.download_button.setText(f"Download ({format_size(entry.size)})")
        self.info.setText(self._sentence(entry, ready, offline))

    def _sentence(self, entry: ModelEntry | None, ready: bool | None, offline: bool) -> str:
        if self.list_problem:
            return f"The model list cannot be read: {self.list_problem}"
        if self.use_weights_file:
            return "A HAT checkpoint on disk; its scale is read from the file."
        if self.automatic:
            return automatic_sentence(
                self.current_scale, self.default_for(self.current_scale), self.availability is not None
            )
        if entry is None:
            return "No model in the manifest."
        return model_sentence(entry, ready, offline, self.alternative_to(entry.name))
