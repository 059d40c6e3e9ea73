"""The settings panel: model, device, precision, tile size, output folder, format, quality, suffix, overwrite."""

from __future__ import annotations

from collections.abc import Iterable

from PyQt6.QtCore import QThreadPool, pyqtSignal
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.model_picker import ModelPicker
from gui.settings import Settings
from hat_plugin import device as devices
from hat_plugin import images

PRECISIONS = (
    ("auto", "auto (fp16 on CUDA, fp32 elsewhere)"),
    ("fp32", "fp32"),
    ("fp16", "fp16"),
    ("bf16", "bf16"),
)
FORMATS = (("same", "same as input"), *((name.lower(), name) for name in images.WRITE_FORMATS))
LOSSY = {"jpeg", "webp", "same"}


def _combo(choices: Iterable[tuple[str, str]]) -> QComboBox:
    combo = QComboBox()
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)
    for value, label in choices:
        combo.addItem(label, value)
    return combo


def _select(combo: QComboBox, value: str) -> None:
    index = combo.findData(value)
    combo.setCurrentIndex(index if index >= 0 else 0)


class SettingsPanel(QWidget):
    """Edits a ``Settings``; emits ``changed`` after every user edit so the window can save it."""

    changed = pyqtSignal()

    def __init__(self, pool: QThreadPool, checks: QThreadPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.models = ModelPicker(pool, checks)
        found = devices.available_devices()
        self.device = _combo([("auto", f"auto ({found[0]})"), *((name, name) for name in found)])
        self.device.setToolTip("auto picks CUDA, then Apple MPS, then the CPU.")
        self.precision = _combo(PRECISIONS)
        self.precision.setToolTip("fp16/bf16 halve memory on GPUs; the CPU runs fp32.")
        self.tile = QSpinBox()
        self.tile.setRange(0, 4096)
        self.tile.setSingleStep(16)
        self.tile.setSpecialValueText("auto")
        self.tile.setSuffix(" px")
        self.tile.setToolTip("Tile side in input pixels. auto: the whole image when it fits in memory.")
        self.output_dir = QLineEdit()
        self.output_dir.setPlaceholderText("beside each input")
        self.output_dir.setClearButtonEnabled(True)
        self.browse_output = QToolButton()
        self.browse_output.setText("…")
        self.browse_output.setToolTip("Choose the output folder")
        self.format = _combo(FORMATS)
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setToolTip("JPEG and WebP quality")
        self.suffix = QLineEdit()
        self.suffix.setToolTip("Added to the file name; {scale} and {model} are replaced.")
        self.existing = _combo((("skip", "skip"), ("overwrite", "overwrite")))
        self.existing.setToolTip("What to do when the output file already exists.")
        self.recursive = QCheckBox("include sub-folders")

        output_row = QHBoxLayout()
        output_row.setContentsMargins(0, 0, 0, 0)
        output_row.addWidget(self.output_dir, 1)
        output_row.addWidget(self.browse_output)

        model_box = QGroupBox("Model")
        QVBoxLayout(model_box).addWidget(self.models)
        engine_box = QGroupBox("Processing")
        engine_form = QFormLayout(engine_box)
        engine_form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        engine_form.addRow("Device", self.device)
        engine_form.addRow("Precision", self.precision)
        engine_form.addRow("Tile size", self.tile)
        output_box = QGroupBox("Output")
        output_form = QFormLayout(output_box)
        output_form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        output_form.addRow("Folder", output_row)
        output_form.addRow("Format", self.format)
        output_form.addRow("Quality", self.quality)
        output_form.addRow("Suffix", self.suffix)
        output_form.addRow("If it exists", self.existing)
        output_form.addRow("Folders", self.recursive)
        layout = QVBoxLayout(self)
        for box in (model_box, engine_box, output_box):
            layout.addWidget(box)
        layout.addStretch(1)

        self.models.changed.connect(self.changed)
        for combo in (self.device, self.precision, self.format, self.existing):
            combo.currentIndexChanged.connect(self.changed)
        for spin in (self.tile, self.quality):
            spin.valueChanged.connect(self.changed)
        for edit in (self.output_dir, self.suffix):
            edit.editingFinished.connect(self.changed)
        self.output_dir.textChanged.connect(self._on_output_cleared)
        self.recursive.toggled.connect(self.changed)
        self.format.currentIndexChanged.connect(self._update_quality)
        self.browse_output.clicked.connect(self._browse_output)

    def settings(self) -> Settings:
        """The settings as currently shown."""
        return Settings(
            model=self.models.model,
            scale=self.models.current_scale,
            weights_file=self.models.weights_file,
            use_weights_file=self.models.use_weights_file,
            device=self.device.currentData(),
            precision=self.precision.currentData(),
            tile=self.tile.value(),
            output_dir=self.output_dir.text().strip(),
            format=self.format.currentData(),
            quality=self.quality.value(),
            suffix=self.suffix.text(),
            overwrite=self.existing.currentData() == "overwrite",
            recursive=self.recursive.isChecked(),
        )

    def set_settings(self, settings: Settings) -> None:
        """Show ``settings`` without emitting ``changed``."""
        self.blockSignals(True)
        self.models.set_choice(settings.model, settings.weights_file, settings.use_weights_file, settings.scale)
        _select(self.device, settings.device)
        _select(self.precision, settings.precision)
        self.tile.setValue(settings.tile)
        self.output_dir.setText(settings.output_dir)
        _select(self.format, settings.format)
        self.quality.setValue(settings.quality)
        self.suffix.setText(settings.suffix)
        _select(self.existing, "overwrite" if settings.overwrite else "skip")
        self.recursive.setChecked(settings.recursive)
        self.blockSignals(False)
        self._update_quality()

    def lock(self, locked: bool) -> None:
        """Freeze the settings a running job depends on (the next run picks up any change)."""
        self.models.lock(locked)
        for widget in (self.device, self.precision, self.tile):
            widget.setEnabled(not locked)

    def _update_quality(self) -> None:
        self.quality.setEnabled(self.format.currentData() in LOSSY)

    def _on_output_cleared(self, text: str) -> None:
        if not text:
            self.changed.emit()

    def _browse_output(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output_dir.text())
        if folder:
            self.output_dir.setText(folder)
            self.changed.emit()
