"""The degradation HAT is trained and scored with: MATLAB-style bicubic downsampling (antialiased) of 8-bit RGB.

``make_lr`` shrinks a whole image (validation, the cached training pairs); ``lr_window`` makes the LR pixels of one
patch from the HR pixels around it only (training on the fly) and gives exactly the pixels ``make_lr`` would.
"""

from __future__ import annotations

import os

import numpy as np

from ..images import read_image
from ..imresize import imresize
from ..metrics import to_rgb8

__all__ = ["load_rgb8", "lr_window", "make_lr", "mod_crop"]

# LR pixels of context around a patch: MATLAB's antialiased cubic reaches 2 LR pixels (plus its two guard taps).
_MARGIN = 4


def load_rgb8(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as ``HxWx3`` uint8 RGB (grey repeated, alpha dropped, 16-bit rounded); ``ImageError`` if
    it cannot be decoded."""
    return to_rgb8(read_image(path).pixels)


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop bottom and right so both sides are multiples of ``scale`` (the benchmarks' ``GTmod`` images)."""
    h, w = image.shape[:2]
    return image[: h - h % scale, : w - w % scale]


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The benchmark degradation of a (mod-cropped) image: MATLAB bicubic downsampling, rounded to uint8."""
    return imresize(hr, 1.0 / scale)


def lr_window(hr: np.ndarray, scale: int, top: int, left: int, size: int) -> np.ndarray:
    """``make_lr(hr, scale)[top:top+size, left:left+size]`` computed from the HR pixels near that window only.

    ``hr`` must be mod-cropped; ``top``/``left``/``size`` are in LR pixels. The HR box is widened by a margin the
    kernel cannot see past and clipped to the image, where the mirror padding is then the whole image's own.
    """
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    y0, x0 = max(0, top - _MARGIN), max(0, left - _MARGIN)
    y1, x1 = min(h, top + size + _MARGIN), min(w, left + size + _MARGIN)
    lr = make_lr(hr[y0 * scale : y1 * scale, x0 * scale : x1 * scale], scale)
    return np.ascontiguousarray(lr[top - y0 : top - y0 + size, left - x0 : left - x0 + size])
