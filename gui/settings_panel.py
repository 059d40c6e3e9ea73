"""The settings panel: model, device, precision, tile size, memory limit, output folder, format, quality, suffix,
overwrite, and for videos (shown while the queue holds one) codec, constant quality, preset and chunk length."""

from __future__ import annotations

from collections.abc import Iterable

from PyQt6.QtCore import Qt, QThreadPool, pyqtSignal
from PyQt6.QtGui import QPaintEvent
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QStyle,
    QStyleOptionComboBox,
    QStylePainter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.model_picker import ModelPicker
from gui.settings import Settings
from hat_plugin import device as devices
from hat_plugin import images
from hat_plugin.video import CODECS

PRECISIONS = (
    ("auto", "auto (fp16 on CUDA)"),
    ("fp32", "fp32"),
    ("fp16", "fp16"),
    ("bf16", "bf16"),
    ("int8", "int8 (CPU: Linear layers)"),
)
FORMATS = (("same", "same as input"), *((name.lower(), name) for name in images.WRITE_FORMATS))
LOSSY = {"jpeg", "webp", "same"}
CODEC_CHOICES = tuple((spec.name, spec.description.split(":")[0]) for spec in CODECS.values())


class ElidingComboBox(QComboBox):
    """A combo box that shows its current text cut with "…" where its box is too narrow (the list shows it all),
    instead of clipping it mid-word."""

    def shown_text(self) -> str:
        """The current text as drawn: whole, or elided to the width of the box's text field."""
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        style = self.style()
        if style is None:
            return self.currentText()
        field = style.subControlRect(
            QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, self
        )
        room = field.width() - (self.iconSize().width() + 4 if not option.currentIcon.isNull() else 0)
        return self.fontMetrics().elidedText(self.currentText(), Qt.TextElideMode.ElideRight, max(room, 0))

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        option.currentText = self.shown_text()
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


def _combo(choices: Iterable[tuple[str, str]]) -> QComboBox:
    combo = ElidingComboBox()
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
        self.precision.setToolTip(
            "auto: fp16 on CUDA; on a CPU the fastest that keeps the quality, measured once. fp16/bf16 halve memory "
            "on GPUs."
        )
        self.tile = QSpinBox()
        self.tile.setRange(0, 4096)
        self.tile.setSingleStep(16)
        self.tile.setSpecialValueText("auto")
        self.tile.setSuffix(" px")
        self.tile.setToolTip("Tile side in input pixels. auto: the whole image when it fits in memory.")
        self.max_memory = QDoubleSpinBox()
        self.max_memory.setRange(0.0, 1024.0)
        self.max_memory.setDecimals(1)
        self.max_memory.setSingleStep(0.5)
        self.max_memory.setSpecialValueText("no limit")
        self.max_memory.setSuffix(" GiB")
        self.max_memory.setToolTip(
            "On the CPU, the most memory the app should reach while upscaling with the automatic tile size: "
            "a lower limit gives smaller tiles. no limit: a quarter of the free memory goes to a tile."
        )
        self.output_dir = QLineEdit()
        self.output_dir.setPlaceholderText("beside each input")
        self.output_dir.setClearButtonEnabled(True)
        placeholder = self.output_dir.fontMetrics().horizontalAdvance(self.output_dir.placeholderText())
        self.output_dir.setMinimumWidth(placeholder + 40)  # the hint is never cut
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
        self.codec = _combo(CODEC_CHOICES)
        for index, spec in enumerate(CODECS.values()):
            self.codec.setItemData(index, spec.description, Qt.ItemDataRole.ToolTipRole)
        self.codec.setToolTip("The codec of upscaled videos; audio, subtitles and chapters are copied as they are.")
        self.crf = QSpinBox()
        self.crf.setToolTip("Constant quality (CRF): lower is better and bigger.")
        self.preset = _combo(())
        self.chunk = QSpinBox()
        self.chunk.setRange(1, 100_000)
        self.chunk.setSingleStep(60)
        self.chunk.setSuffix(" frames")
        self.chunk.setToolTip(
            "Frames per chunk. A cancelled video keeps its finished chunks; Start continues from them."
        )

        self.deinterlace = _combo(
            (("auto", "when interlaced"), ("off", "off"), ("bwdif", "always (bwdif)"), ("yadif", "always (yadif)"))
        )
        self.deinterlace.setToolTip("Deinterlace with FFmpeg's bwdif or yadif before upscaling (DVD, broadcast).")
        self.on_damage = _combo((("conceal", "conceal and warn"), ("stop", "stop")))
        self.on_damage.setToolTip(
            "Damaged or truncated data: use the decoder's concealed pictures and list them, as a player does, or stop."
        )

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
        engine_form.addRow("Memory limit", self.max_memory)
        output_box = QGroupBox("Output")
        output_form = QFormLayout(output_box)
        output_form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        output_form.addRow("Folder", output_row)
        output_form.addRow("Format", self.format)
        output_form.addRow("Quality", self.quality)
        output_form.addRow("Suffix", self.suffix)
        output_form.addRow("If it exists", self.existing)
        output_form.addRow("Folders", self.recursive)
        self.video_box = QGroupBox("Video")
        video_form = QFormLayout(self.video_box)
        video_form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        video_form.addRow("Codec", self.codec)
        video_form.addRow("Quality", self.crf)
        self.preset_label = QLabel("Preset")
        video_form.addRow(self.preset_label, self.preset)
        video_form.addRow("Chunks of", self.chunk)
        video_form.addRow("Deinterlace", self.deinterlace)
        video_form.addRow("Damaged data", self.on_damage)
        self.video_box.hide()
        layout = QVBoxLayout(self)
        for box in (model_box, engine_box, output_box, self.video_box):
            layout.addWidget(box)
        layout.addStretch(1)

        self.models.changed.connect(self.changed)
        self.codec.currentIndexChanged.connect(self._codec_changed)
        combos = (self.device, self.precision, self.format, self.existing, self.codec, self.preset)
        for combo in (*combos, self.deinterlace, self.on_damage):
            combo.currentIndexChanged.connect(self.changed)
        for spin in (self.tile, self.quality, self.crf, self.chunk):
            spin.valueChanged.connect(self.changed)
        self.max_memory.valueChanged.connect(self.changed)
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
            rgb_mean=self.models.rgb_mean,
            device=self.device.currentData(),
            precision=self.precision.currentData(),
            tile=self.tile.value(),
            max_memory_gib=self.max_memory.value(),
            output_dir=self.output_dir.text().strip(),
            format=self.format.currentData(),
            quality=self.quality.value(),
            suffix=self.suffix.text(),
            overwrite=self.existing.currentData() == "overwrite",
            recursive=self.recursive.isChecked(),
            video_codec=self.codec.currentData(),
            video_crf=self.crf.value() if self.crf.isEnabled() and self.crf.value() >= self.crf.minimum() + 1 else -1,
            video_preset=self.preset.currentData() or "",
            video_chunk=self.chunk.value(),
            video_deinterlace=self.deinterlace.currentData(),
            video_on_damage=self.on_damage.currentData(),
        )

    def set_settings(self, settings: Settings) -> None:
        """Show ``settings`` without emitting ``changed``."""
        self.blockSignals(True)
        self.models.set_choice(settings.model, settings.weights_file, settings.use_weights_file, settings.scale)
        self.models.set_rgb_mean(settings.rgb_mean)
        _select(self.device, settings.device)
        _select(self.precision, settings.precision)
        self.tile.setValue(settings.tile)
        self.max_memory.setValue(settings.max_memory_gib)
        self.output_dir.setText(settings.output_dir)
        _select(self.format, settings.format)
        self.quality.setValue(settings.quality)
        self.suffix.setText(settings.suffix)
        _select(self.existing, "overwrite" if settings.overwrite else "skip")
        self.recursive.setChecked(settings.recursive)
        _select(self.codec, settings.video_codec)
        self._codec_changed(crf=settings.video_crf, preset=settings.video_preset)
        self.chunk.setValue(settings.video_chunk)
        _select(self.deinterlace, settings.video_deinterlace)
        _select(self.on_damage, settings.video_on_damage)
        self.blockSignals(False)
        self._update_quality()

    def show_video_settings(self, shown: bool) -> None:
        """Show the Video group (while the queue holds a video) or hide it."""
        self.video_box.setVisible(shown)

    def _codec_changed(self, _index: int = 0, crf: int = -1, preset: str = "") -> None:
        """Fit the quality and preset controls to the chosen codec: its CRF range and presets, its defaults
        selected (or ``crf``/``preset`` where the codec takes them)."""
        spec = CODECS[self.codec.currentData()]
        self.crf.blockSignals(True)
        if spec.crf is None:
            self.crf.setRange(-1, -1)
            self.crf.setSpecialValueText("lossless" if spec.lossless else "set by the profile")
            self.crf.setEnabled(False)
        else:
            low, high = (int(limit) for limit in spec.crf_range)
            self.crf.setRange(low - 1, high)
            self.crf.setSpecialValueText(f"default ({spec.crf:g})")
            self.crf.setValue(crf if low <= crf <= high else low - 1)
            self.crf.setEnabled(True)
        self.crf.blockSignals(False)
        self.preset.blockSignals(True)
        self.preset.clear()
        if spec.presets:
            self.preset.addItem(f"default ({spec.preset})", "")
            for name in spec.presets:
                self.preset.addItem(name, name)
        _select(self.preset, preset)
        self.preset.setEnabled(bool(spec.presets))
        self.preset_label.setText("Profile" if spec.name == "prores" else "Preset")
        self.preset.blockSignals(False)

    def lock(self, locked: bool) -> None:
        """Freeze the settings a running job depends on (the next run picks up any change)."""
        self.models.lock(locked)
        for widget in (self.device, self.precision, self.tile, self.max_memory):
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
