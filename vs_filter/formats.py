"""Which clips hat.Upscale takes (constant-size RGBS/RGBH) and what to tell the user about the others."""

from __future__ import annotations

import vapoursynth as vs

from .errors import error

# Compute precision that follows the clip when the caller does not choose one.
NATIVE_PRECISION = {vs.RGBS: "fp32", vs.RGBH: "fp16"}


def check_clip(clip: object) -> vs.VideoNode:
    """Return ``clip`` if hat.Upscale can process it, else raise ``vs.Error`` saying how to convert it."""
    if not isinstance(clip, vs.VideoNode):
        raise error(f"clip must be a video clip, not {type(clip).__name__}")
    fmt = clip.format
    if fmt is None or fmt.id == vs.NONE or clip.width == 0 or clip.height == 0:
        raise error(
            "the clip has a variable format or size; make it constant first, e.g. "
            "clip = core.resize.Bicubic(clip, width=1920, height=1080, format=vs.RGBS, matrix_in_s='709')"
        )
    if fmt.id in NATIVE_PRECISION:
        return clip
    raise error(f"{fmt.name} clips are not supported, only RGBS and RGBH. {_conversion_hint(fmt)}")


def _conversion_hint(fmt: vs.VideoFormat) -> str:
    """The conversion that turns a clip of format ``fmt`` into RGBS."""
    if fmt.color_family == vs.YUV:
        return (
            "Convert it first with clip = core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s='709') "
            "(use the matrix of your source: '709' for HD, '170m' for SD), and back to YUV after upscaling."
        )
    return "Convert it first with clip = core.resize.Point(clip, format=vs.RGBS)."
