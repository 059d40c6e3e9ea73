"""Drawing a LAM map: the heat map alone and blended over the input, as RGB numpy arrays (no Qt, no matplotlib),
shared by the command line's figure and the desktop app.

Colours as in the LAM paper: a map value ``m`` in [0, 1] is the upper half of the diverging "seismic" scale,
white at 0, pure red at 0.5, dark red (0.5, 0, 0) at 1. Blending follows the official demo: heat map and input
(upsampled) mixed half and half.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image as PILImage

from ..errors import ImageError
from ..pixels import from_unit_float, to_unit_float

__all__ = ["colorize", "render_heatmap", "to_rgb8"]

DEFAULT_ALPHA = 0.5
"""Weight of the input in the blend (the official demo's ``alpha``)."""


def colorize(amap: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """The map as an ``(h, w, 3)`` uint8 heat map; ``size`` ``(h, w)`` enlarges it with square pixel blocks
    (nearest neighbour), default the map's own size. Values are clipped to [0, 1]; NaN counts as 0."""
    values = np.asarray(amap, dtype=np.float64)
    if values.ndim != 2 or values.size == 0:
        raise ImageError(f"expected a 2-D attribution map, got shape {values.shape}")
    m = np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0)
    low = m <= 0.5
    red = np.where(low, 1.0, 1.5 - m)
    fade = np.where(low, 1.0 - 2.0 * m, 0.0)
    rgb = np.stack([red, fade, fade], axis=-1)
    out = np.round(rgb * 255.0).astype(np.uint8)
    if size is not None and tuple(size) != out.shape[:2]:
        out = np.asarray(PILImage.fromarray(out).resize((size[1], size[0]), PILImage.Resampling.NEAREST))
    return out


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any ``HxW``/``HxWx1..4`` image as ``HxWx3`` uint8 (grey repeated, alpha dropped)."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ImageError(f"expected an HxW or HxWxC image array, got {getattr(image, 'shape', type(image))}")
    pixels = image[..., None] if image.ndim == 2 else image
    if pixels.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"expected 1 to 4 channels, got shape {image.shape}")
    if pixels.shape[2] in (1, 2):
        pixels = np.repeat(pixels[..., :1], 3, axis=2)
    values: Any = pixels[..., :3]
    if values.dtype != np.uint8:
        values = from_unit_float(to_unit_float(values), np.uint8)
    return np.ascontiguousarray(values)


def render_heatmap(
    image: np.ndarray,
    amap: np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The heat map of ``amap`` blended over ``image`` (the LAM input, same height and width as the map), as an
    ``(h, w, 3)`` uint8 array of ``size`` ``(h, w)`` (default: the map's size). The input is enlarged bicubically,
    the map in square blocks; ``alpha`` is the input's weight (0: heat map only, 1: input only)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], not {alpha}")
    rgb = to_rgb8(image)
    if rgb.shape[:2] != np.shape(amap)[:2]:
        raise ImageError(f"the map is {np.shape(amap)} but the image {rgb.shape[:2]}: they must be the same size")
    height, width = size if size is not None else rgb.shape[:2]
    heat = colorize(amap, (height, width)).astype(np.float64)
    if (height, width) != rgb.shape[:2]:
        rgb = np.asarray(PILImage.fromarray(rgb).resize((width, height), PILImage.Resampling.BICUBIC))
    mixed = heat * (1.0 - alpha) + rgb.astype(np.float64) * alpha
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)
