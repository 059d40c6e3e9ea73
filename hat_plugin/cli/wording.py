"""How the command line words the engine's errors: each option key as the flag (or variable) that sets it."""

from __future__ import annotations

__all__ = ["FLAGS", "spelling", "worded"]

_SAME_NAME = (
    "device precision tile overlap batch max_pixels max_memory model weights format quality suffix overwrite codec crf "
    "preset bitrate pix_fmt start end chunk_frames streams ray out resume init steps ema_decay patch cache_mb threads "
    "val_every save_every log_every on_damage deinterlace deinterlace_rate rgb_mean sha256"
)
FLAGS = {key: "--" + key.replace("_", "-") for key in _SAME_NAME.split()} | {
    "source": "--from",
    "runner": "HAT_PLUGIN_CUDA_RUNNER",
    "compile_mode": "HAT_PLUGIN_COMPILE_MODE",
    "pad_heads": "HAT_PLUGIN_PAD_HEADS",
    "force_precision": "HAT_PLUGIN_FORCE_PRECISION",
}
"""The engine's option keys and what sets them on the command line (a flag, or for the few settings without one,
the environment variable)."""


def spelling(option: str) -> str:
    """An option key as the command line spells it."""
    return FLAGS.get(option, option.replace("_", " "))


def worded(exc: BaseException) -> str:
    """An error's message for the command line: an engine error with its option keys spelled as flags."""
    from hat_plugin.errors import HATError, UnknownModelError

    if not isinstance(exc, HATError):
        return str(exc)
    text = exc.worded(spelling)
    return f"{text} 'hat-upscale models' lists the known ones." if isinstance(exc, UnknownModelError) else text
