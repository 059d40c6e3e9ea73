"""The one way the filter reports a problem to VapourSynth: a ``vs.Error`` prefixed with the function's name."""

from __future__ import annotations

import vapoursynth as vs

__all__ = ["FUNCTION", "error", "message"]

FUNCTION = "hat.Upscale"


def message(text: str) -> str:
    """``hat.Upscale: <text>``: the form of every message the filter shows."""
    return f"{FUNCTION}: {text}"


def error(text: str) -> vs.Error:
    """A ``vs.Error`` for the user: ``hat.Upscale: <text>``."""
    return vs.Error(message(text))
