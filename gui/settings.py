"""The user's choices for a run, and their persistence in QSettings so they survive a restart."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol


class Store(Protocol):
    """The part of ``QSettings`` used here."""

    def value(self, key: str, defaultValue: Any = ..., type: Any = ...) -> Any: ...

    def setValue(self, key: str, value: Any) -> None: ...


@dataclass
class Settings:
    """Everything the settings panel edits; defaults are what a first run shows."""

    model: str = ""
    """Manifest model name; empty for the engine's default model for ``scale`` (``weights.default_model``)."""
    scale: int = 0
    """The scale last chosen in the Scale box; 0 for the engine's default scale."""
    weights_file: str = ""
    """A local .pth/.safetensors file used instead of ``model`` when ``use_weights_file`` is set."""
    use_weights_file: bool = False
    rgb_mean: str = ""
    """The RGB mean the model was trained with (``official``, ``0.5``, ``R,G,B``); "" for what the model says."""
    device: str = "auto"
    precision: str = "auto"
    tile: int = 0
    """Tile side in input pixels; 0 = auto."""
    max_memory_gib: float = 0.0
    """The most memory (GiB) the process should reach with the CPU's automatic tile (the engine's ``max_memory``);
    0 = no limit beyond a share of the free memory."""
    output_dir: str = ""
    """Empty = write beside each input."""
    format: str = "same"
    quality: int = 95
    suffix: str = "_x{scale}"
    overwrite: bool = False
    """Replace existing outputs; when False, items whose output exists are skipped."""
    recursive: bool = True
    """Include sub-folders when a folder is added."""
    video_codec: str = "x264"
    """Codec of upscaled videos (a ``hat_plugin.video.CODECS`` name)."""
    video_crf: int = -1
    """Constant quality of upscaled videos; -1 for the codec's default (ignored by lossless codecs and ProRes)."""
    video_preset: str = ""
    """Encoder speed preset (ProRes: the profile); "" for the codec's default."""
    video_chunk: int = 240
    """Frames per resumable chunk of a video: a cancelled video continues from its last finished chunk."""
    video_deinterlace: str = "auto"
    """Deinterlacing of interlaced videos: ``auto``, ``off``, ``bwdif`` or ``yadif`` (the engine's ``deinterlace``)."""
    video_on_damage: str = "conceal"
    """Damaged or truncated video data: ``conceal`` (warn, as a player) or ``stop`` (the engine's ``on_damage``)."""

    @property
    def model_source(self) -> str:
        """What the engine is given: the weights file path or the manifest name."""
        return self.weights_file if self.use_weights_file else self.model

    @property
    def max_memory_bytes(self) -> int:
        """``max_memory_gib`` in bytes, as the engine takes it (0: no limit)."""
        return round(self.max_memory_gib * (1 << 30))

    @property
    def output_folder(self) -> Path | None:
        """The chosen output folder, or None for "beside the input"."""
        return Path(self.output_dir) if self.output_dir else None


_PREFIX = "settings/"


def load_settings(store: Store) -> Settings:
    """Read the saved settings, falling back to the defaults for anything missing or malformed."""
    defaults = Settings()
    values = {}
    for f in fields(Settings):
        default = getattr(defaults, f.name)
        try:
            values[f.name] = store.value(_PREFIX + f.name, default, type=type(default))
        except (TypeError, ValueError):
            values[f.name] = default
    return Settings(**values)


def save_settings(store: Store, settings: Settings) -> None:
    """Write every setting so the next start shows the same choices."""
    for key, value in asdict(settings).items():
        store.setValue(_PREFIX + key, value)
