"""MATLAB-style bicubic resizing (``imresize(img, scale, 'bicubic')``), the degradation of the SR benchmarks.

Cubic kernel with a = -0.5; when shrinking, the kernel is widened by ``1/scale`` (antialiasing); borders are
mirrored symmetrically (edge pixel repeated), and each axis is resized separately, rows first. Arithmetic is in
float64 with one rounding at the end for integer images (BasicSR's ``imresize`` convention).
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = ["cubic", "imresize", "resize_weights"]


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``bicubic``), support [-2, 2]."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = 1.5 * ax3 - 2.5 * ax2 + 1.0
    far = -0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0
    return np.where(ax <= 1.0, near, np.where(ax <= 2.0, far, 0.0))


@functools.lru_cache(maxsize=64)
def resize_weights(in_len: int, out_len: int, scale: float, antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per output sample: the input indices it reads (mirrored at the borders) and their weights.

    Returns ``(indices, weights)``, both ``(out_len, taps)``; the weights of each row sum to 1.
    """
    shrink = scale < 1.0 and antialias
    width = 4.0 / scale if shrink else 4.0
    centre = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    first = np.floor(centre - width / 2.0)
    taps = int(np.ceil(width)) + 2
    one_based = first[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    distance = centre[:, None] - one_based
    weights = scale * cubic(distance * scale) if shrink else cubic(distance)
    weights = weights / weights.sum(axis=1, keepdims=True)
    keep = np.any(weights != 0.0, axis=0)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = mirror[np.mod(one_based.astype(np.int64) - 1, 2 * in_len)]
    return np.ascontiguousarray(indices[:, keep]), np.ascontiguousarray(weights[:, keep])


def _resize_axis(image: np.ndarray, axis: int, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    indices, weights = resize_weights(image.shape[axis], out_len, scale, antialias)
    moved = np.moveaxis(image, axis, 0)
    shape = (-1,) + (1,) * (moved.ndim - 1)
    out = np.zeros((out_len, *moved.shape[1:]), dtype=np.float64)
    for tap in range(indices.shape[1]):
        out += weights[:, tap].reshape(shape) * moved[indices[:, tap]]
    return np.moveaxis(out, 0, axis)


def imresize(image: np.ndarray, scale: float, antialias: bool = True) -> np.ndarray:
    """Resize an ``HxW`` or ``HxWxC`` image by ``scale`` (e.g. 1/4 to make a x4 LR image, 2 to upscale).

    The output size is ``ceil(H * scale) x ceil(W * scale)``. ``uint8``/``uint16`` inputs are rounded (halves
    away from zero) and clipped back to their type, as MATLAB does; float inputs come back as float64, unclipped.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {image.shape}")
    out = image.astype(np.float64)
    for axis in (0, 1):
        out_len = int(np.ceil(image.shape[axis] * scale - 1e-9))
        out = _resize_axis(out, axis, out_len, scale, antialias)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return np.clip(np.floor(out + 0.5), info.min, info.max).astype(image.dtype)
    return out
