"""Which part of the input the network sees during LAM: the whole image, or a crop around the window.

HAT's receptive field is the whole image (its channel attention pools over all pixels, and stacked shifted
windows reach far), so only the whole image is exact. A crop keeps ``margin`` input pixels of context on every side
of the window's input footprint, with its edges moved outwards onto the model's attention-window grid so that
inside the crop the windows fall where they fall on the whole image. Path images of a crop are those of the whole
image, cut out (see ``blur.BlurPath``); attribution outside the crop is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import OptionError
from .objective import window_extent

__all__ = ["AUTO_MARGIN", "FULL_IMAGE_LIMIT", "Crop", "CropPolicy", "Region", "plan_region", "window_around"]

CropPolicy = Literal["auto", "full"] | int
"""``"full"``: the whole image; an int: that many input pixels of context around the window; ``"auto"``: the
whole image up to ``FULL_IMAGE_LIMIT`` input pixels, else ``AUTO_MARGIN``."""

FULL_IMAGE_LIMIT = 256 * 256
"""Largest input (in pixels) that ``crop="auto"`` runs whole, hence exactly."""

AUTO_MARGIN = 64
"""Context (input pixels on each side of the window's footprint) of ``crop="auto"`` above the limit."""


@dataclass(frozen=True)
class Crop:
    """A box of the input image, in input pixels."""

    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class Region:
    """Where the network looks (``crop``) and where the objective's window lies in the crop's output."""

    crop: Crop
    window_top: int
    window_left: int
    window_rows: int
    window_cols: int
    exact: bool
    """True when the crop is the whole image (the result is then exactly the official one's)."""


def _span(start: int, end: int, margin: int, snap: int, length: int) -> tuple[int, int]:
    """``[start, end)`` widened by ``margin`` and outwards onto multiples of ``snap``, within ``[0, length)``."""
    lo = max(0, start - margin)
    hi = min(length, end + margin)
    lo = lo // snap * snap
    hi = min(length, -(-hi // snap) * snap)
    return lo, hi


def plan_region(
    size: tuple[int, int], scale: int, x: int, y: int, window: int, crop: CropPolicy, snap: int = 1
) -> Region:
    """The region for a window at output ``(x, y)`` (column, row) of an input of ``size`` ``(H, W)``.

    Raises ``OptionError`` for a window that does not start on the output's gradient grid.
    """
    height, width = size
    out_h, out_w = height * scale, width * scale
    if not (0 <= x < out_w - 1 and 0 <= y < out_h - 1):
        raise OptionError(
            f"the window's corner ({x}, {y}) is outside the output ({out_w}x{out_h}): x must be 0..{out_w - 2} "
            f"and y 0..{out_h - 2} (output pixels, x = column)"
        )
    rows, cols = window_extent(y, window, out_h), window_extent(x, window, out_w)
    if crop == "auto":
        crop = "full" if height * width <= FULL_IMAGE_LIMIT else AUTO_MARGIN
    if crop == "full":
        box = Crop(0, 0, height, width)
    elif isinstance(crop, int) and not isinstance(crop, bool) and crop >= 0:
        # Output rows y .. y + rows (the last one is the neighbour of the window's bottom row) come from these.
        top, bottom = _span(y // scale, (y + rows) // scale + 1, crop, snap, height)
        left, right = _span(x // scale, (x + cols) // scale + 1, crop, snap, width)
        box = Crop(top, left, bottom - top, right - left)
    else:
        raise OptionError(f"crop must be 'auto', 'full' or a margin of 0 or more input pixels, not {crop!r}")
    exact = box == Crop(0, 0, height, width)
    return Region(box, y - box.top * scale, x - box.left * scale, rows, cols, exact)


def window_around(
    point_x: int, point_y: int, output_width: int, output_height: int, window: int = 16
) -> tuple[int, int]:
    """The window corner ``(x, y)`` for a window centred on an output point (e.g. a click in the app), moved inside
    the output's gradient grid so the whole window counts (as far as the output is large enough)."""

    def place(point: int, length: int) -> int:
        return max(0, min(point - window // 2, length - 1 - window))

    return place(point_x, output_width), place(point_y, output_height)
