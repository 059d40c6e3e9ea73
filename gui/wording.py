"""How the app words the engine's errors: each option key as the label of the setting in the settings panel."""

from __future__ import annotations

from hat_plugin.errors import HATError

__all__ = ["LABELS", "spelling", "worded"]

LABELS = {
    "device": "Device",
    "precision": "Precision",
    "tile": "Tile size",
    "max_memory": "Memory limit",
    "format": "Format",
    "quality": "Quality",
    "suffix": "Suffix",
    "overwrite": "If it exists",
    "codec": "Codec",
    "crf": "Quality",
    "preset": "Preset",
    "chunk_frames": "Chunks of",
    "deinterlace": "Deinterlace",
    "on_damage": "Damaged data",
    "model": "Model",
    "weights": "Model",
}
"""The engine's option keys that the settings panel shows, by the panel's label."""


def spelling(option: str) -> str:
    """An option key as the app's user knows it: the panel's label in quotes, else the setting in words."""
    label = LABELS.get(option)
    return f"the \u201c{label}\u201d setting" if label else f"the {option.replace('_', ' ')} setting"


def worded(exc: BaseException) -> str:
    """An error's message for the app: an engine error with its option keys spelled as the panel's labels."""
    return exc.worded(spelling) if isinstance(exc, HATError) else str(exc)
