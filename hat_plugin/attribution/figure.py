"""A LAM figure in the style of the paper's: per model, one row with the input (the output window marked), the
heat map, and the heat map blended over the input, headed by the model's name and its Diffusion Index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from ..errors import OptionError
from .lam import LAMResult
from .render import colorize, render_heatmap, to_rgb8

__all__ = ["lam_figure"]

MAX_PANEL = 512
"""Longest side of one panel, in figure pixels (the input is shown at the output's size up to this)."""
_GAP = 8
_TEXT = 22
_WINDOW_COLOUR = (0, 160, 255)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _panel_size(height: int, width: int, scale: int) -> tuple[int, int]:
    """Display size of a panel: the output's size, shrunk to fit ``MAX_PANEL``."""
    zoom = min(float(scale), MAX_PANEL / max(height, width))
    return max(1, round(height * zoom)), max(1, round(width * zoom))


def lam_figure(image: np.ndarray, rows: Sequence[tuple[str, LAMResult]]) -> np.ndarray:
    """The figure for ``rows`` of ``(label, result)`` computed on ``image`` (the LAM input) for one window, as an
    ``(h, w, 3)`` uint8 array. All results must share the window and the scale."""
    if not rows:
        raise OptionError("a LAM figure needs at least one result")
    first = rows[0][1]
    for label, res in rows:
        same = (res.x, res.y, res.window, res.scale) == (first.x, first.y, first.window, first.scale)
        if not same or res.map.shape != first.map.shape:
            raise OptionError(f"{label}: its LAM is of another window, scale or image; a figure shows one window")
    rgb = to_rgb8(image)
    height, width = rgb.shape[:2]
    if (height, width) != first.map.shape:
        raise OptionError(f"the image is {width}x{height} but the LAM maps are of another size")
    ph, pw = _panel_size(height, width, first.scale)
    zoom = pw / (width * first.scale)  # display pixels per output pixel
    title = (
        f"LAM: {first.window}x{first.window} output window at x={first.x}, y={first.y}, x{first.scale} "
        f"({first.steps} steps, sigma {first.sigma:g}, kernel {first.kernel_size})"
    )
    marked = PILImage.fromarray(rgb).resize((pw, ph), PILImage.Resampling.BICUBIC)
    draw = ImageDraw.Draw(marked)
    left, top = first.x * zoom, first.y * zoom
    side = max(first.window * zoom, 3.0)
    draw.rectangle((left, top, left + side, top + side), outline=_WINDOW_COLOUR, width=2)
    font = _font(14)
    row_h = _TEXT + ph + _GAP
    fig_w = max(3 * pw + 4 * _GAP, int(font.getlength(title)) + 2 * _GAP)
    fig_h = 2 * _TEXT + _GAP + len(rows) * row_h
    canvas = PILImage.new("RGB", (fig_w, fig_h), (255, 255, 255))
    pen = ImageDraw.Draw(canvas)
    pen.text((_GAP, 4), title, fill=(0, 0, 0), font=font)
    for column, caption in enumerate(("input + window", "LAM", "LAM over input")):
        pen.text((_GAP + column * (pw + _GAP), _TEXT + 4), caption, fill=(90, 90, 90), font=font)
    for index, (label, res) in enumerate(rows):
        y0 = 2 * _TEXT + _GAP + index * row_h
        crop_note = "" if res.exact else f"  (input crop {res.crop.width}x{res.crop.height})"
        pen.text((_GAP, y0 + 2), f"{label}    DI {res.di:.2f}{crop_note}", fill=(0, 0, 0), font=font)
        panels = [
            marked,
            PILImage.fromarray(colorize(res.map, (ph, pw))),
            PILImage.fromarray(render_heatmap(rgb, res.map, size=(ph, pw))),
        ]
        for column, panel in enumerate(panels):
            corner = (_GAP + column * (pw + _GAP), y0 + _TEXT)
            canvas.paste(panel, corner)
            pen.rectangle((corner[0] - 1, corner[1] - 1, corner[0] + pw, corner[1] + ph), outline=(170, 170, 170))
    return np.asarray(canvas)
