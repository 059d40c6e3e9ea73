"""The run's progress as a PNG: training loss (log scale) and validation PSNR-Y against the step, drawn with Pillow.

Two panels side by side, each with its value range written at the axis ends; no plotting library needed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from PIL import Image, ImageDraw

from ..files import atomic_path

__all__ = ["draw_progress", "write_progress"]

_W, _H, _PAD = 480, 320, 48
_INK, _GRID, _LOSS, _PSNR = (40, 40, 40), (225, 225, 225), (31, 119, 180), (214, 39, 40)


def _panel(
    draw: ImageDraw.ImageDraw,
    x0: int,
    title: str,
    points: Sequence[tuple[float, float]],
    colour: tuple[int, int, int],
    log_y: bool,
    x_max: float,
) -> None:
    left, top, right, bottom = x0 + _PAD, _PAD // 2 + 12, x0 + _W - 16, _H - _PAD
    draw.rectangle((left, top, right, bottom), outline=_INK)
    draw.text((left, 8), title, fill=_INK)
    draw.text((left, bottom + 6), "0", fill=_INK)
    draw.text((right - 40, bottom + 6), f"{x_max:g}", fill=_INK)
    draw.text((left + (right - left) // 2 - 12, bottom + 20), "step", fill=_INK)
    shown = [(x, math.log10(y) if log_y else y) for x, y in points if math.isfinite(y) and (y > 0 or not log_y)]
    if not shown:
        draw.text((left + 8, top + 8), "no data yet", fill=_INK)
        return
    lo, hi = min(y for _, y in shown), max(y for _, y in shown)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    for i in range(1, 4):
        row = top + (bottom - top) * i // 4
        draw.line((left + 1, row, right - 1, row), fill=_GRID)

    def label(v: float) -> str:
        return f"{10**v:.3g}" if log_y else f"{v:.2f}"

    draw.text((x0 + 2, top), label(hi), fill=_INK)
    draw.text((x0 + 2, bottom - 10), label(lo), fill=_INK)
    xy: list[tuple[float, float]] = [
        (left + (right - left) * x / max(x_max, 1.0), bottom - (bottom - top) * (y - lo) / (hi - lo)) for x, y in shown
    ]
    if len(xy) > 1:
        draw.line(xy, fill=colour, width=2)
    for px, py in xy if len(xy) <= 60 else xy[-1:]:
        draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)


def draw_progress(
    loss: Sequence[tuple[float, float]], psnr: Sequence[tuple[float, float]], total_steps: int
) -> Image.Image:
    """The two-panel picture: ``(step, mean L1 loss)`` and ``(step, validation PSNR-Y)`` points."""
    image = Image.new("RGB", (2 * _W, _H), "white")
    draw = ImageDraw.Draw(image)
    _panel(draw, 0, "training loss (L1, log scale)", loss, _LOSS, True, total_steps)
    _panel(draw, _W, "validation PSNR-Y (dB)", psnr, _PSNR, False, total_steps)
    return image


def write_progress(
    path: str | os.PathLike[str],
    loss: Sequence[tuple[float, float]],
    psnr: Sequence[tuple[float, float]],
    total_steps: int,
) -> None:
    """Draw the picture and write it to ``path`` as PNG, atomically."""
    image = draw_progress(loss, psnr, total_steps)
    with atomic_path(path) as temp:
        image.save(temp, format="PNG")
