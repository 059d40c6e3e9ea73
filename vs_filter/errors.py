"""The one way the filter reports a problem to VapourSynth: a ``vs.Error`` prefixed with the function's name."""

from __future__ import annotations

from typing import TYPE_CHECKING

import vapoursynth as vs

if TYPE_CHECKING:
    from hat_plugin.errors import HATError

__all__ = ["ARGUMENTS", "FUNCTION", "engine_error", "error", "message", "spelling", "worded"]

FUNCTION = "hat.Upscale"
ARGUMENTS = {
    "model": "model=",
    "weights": "weights=",
    "tile": "tile=",
    "overlap": "overlap=",
    "batch": "batch=",
    "device": "device=",
    "precision": "fp16=",
    "rgb_mean": "rgb_mean=",
    "max_memory": "max_memory=",
}
"""The engine's option keys that are arguments of ``hat.Upscale``, as a script writes them."""


def spelling(option: str) -> str:
    """An option key as the filter's user knows it: its argument (``tile=``), else the setting in words."""
    return ARGUMENTS.get(option, option.replace("_", " "))


def worded(exc: HATError) -> str:
    """An engine error's message with its option keys spelled the filter's way."""
    return exc.worded(spelling)


def message(text: str) -> str:
    """``hat.Upscale: <text>``: the form of every message the filter shows."""
    return f"{FUNCTION}: {text}"


def error(text: str) -> vs.Error:
    """A ``vs.Error`` for the user: ``hat.Upscale: <text>``."""
    return vs.Error(message(text))


def engine_error(exc: HATError) -> vs.Error:
    """The ``vs.Error`` for an engine error, worded for the filter."""
    return error(worded(exc))
